"""The `xrg` command: LightningCLI for fit/validate/test/predict plus a few extra sub-commands.

One `main(args=None)` serves the console script, the tests and notebooks (torchgeo's pattern).
"""

from __future__ import annotations

import importlib
import sys

# Extra sub-commands, imported only when used so `xrg fit` never pays for them.
# Each module exposes `main(argv: list[str]) -> int | None`.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("xrg.data.cli", "build datasets (`xrg data synth --out DIR`)"),
    "evaluate": ("xrg.metrics.evaluate", "score predictions JSONL with NLG and clinical-efficacy metrics"),
    "label": ("xrg.metrics.labeler.cli", "label reports with the rule-based CheXpert labeler"),
    "chat": ("xrg.chat", "talk with a trained model about an image"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _print_overview() -> None:
    print("usage: xrg <command> [options]\n\ncommands:")
    for name in LIGHTNING_COMMANDS:
        print(f"  {name:<10} LightningCLI `{name}` (see `xrg {name} --help`)")
    for name, (_, help_text) in EXTRA_COMMANDS.items():
        print(f"  {name:<10} {help_text}")
    print()


def main(args: list[str] | None = None) -> int | None:
    explicit = args is not None
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0] in EXTRA_COMMANDS:
        module = importlib.import_module(EXTRA_COMMANDS[args[0]][0])
        return module.main(args[1:])
    if not args or args[0] in ("-h", "--help"):
        _print_overview()
    from xrg.lightning_cli import run_lightning_cli

    # LightningCLI reads sys.argv itself when not handed args; handing both makes it warn.
    run_lightning_cli(args if explicit else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
