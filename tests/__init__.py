"""The test suite as a regular package: spawned DDP workers import their test module as
`tests.<folder>.<file>`, and a dependency's own top-level `tests` package (radeval installs one)
would otherwise shadow this namespace package."""
