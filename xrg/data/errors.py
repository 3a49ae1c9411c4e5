"""Exception types for bad input, so callers can catch user mistakes without catching bugs.

`DataError` is the root: the `xrg` command prints any of them as one line (file / row / key and
what was expected) and exits with code 2; `--debug` or `XRG_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the file, study or line and what was expected."""


class ConfigError(DataError):
    """A recipe or command line that cannot work. The message names the key and what it expects."""


class CheckpointError(DataError):
    """A checkpoint that is missing, truncated, not a checkpoint, or of another task than asked for."""
