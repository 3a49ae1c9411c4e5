"""The `xrg` command: LightningCLI for fit/validate/test/predict plus a few extra sub-commands.

One `main(args=None)` serves the console script, the tests and notebooks (torchgeo's pattern).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xrg.data.errors import DataError
from xrg.metrics.model_based._loading import MissingPackageError
from xrg.progress import set_quiet, silence_known_noise

# Extra sub-commands, imported only when used so `xrg fit` never pays for them.
# Each module exposes `main(argv: list[str]) -> int | None`.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("xrg.data.cli", "build datasets (`xrg data synth --out DIR`)"),
    "evaluate": ("xrg.metrics.evaluate", "score predictions JSONL with NLG and clinical-efficacy metrics"),
    "label": ("xrg.metrics.labeler.cli", "label reports with the rule-based CheXpert labeler"),
    "chat": ("xrg.chat", "talk with a trained model about an image"),
    "serve": ("xrg.serve", "a local web page: upload a study, read its report, findings and heatmaps, ask"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _print_overview() -> None:
    print("usage: xrg <command> [options] [--debug] [--quiet]\n\ncommands:")
    for name in LIGHTNING_COMMANDS:
        print(f"  {name:<10} LightningCLI `{name}` (see `xrg {name} --help`)")
    for name, (_, help_text) in EXTRA_COMMANDS.items():
        print(f"  {name:<10} {help_text}")
    print("\nA mistake in the input (data, recipe, checkpoint, path) is one line on stderr and exit code 2;")
    print("--debug (or XRG_DEBUG=1) shows its traceback instead.")
    print("--quiet (or XRG_QUIET=1): no progress bars, for batch jobs and logs.\n")


# Mistakes in what the user gave (data, recipe, command line, checkpoint, paths): one line, exit 2.
# Everything else is a bug in xrg or a library and keeps its traceback.
# A missing optional package (a model-based metric's) is the user's to install: the line says how.
USER_ERRORS = (DataError, argparse.ArgumentError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
               PermissionError, MissingPackageError)


class CommandParser(argparse.ArgumentParser):
    """argparse for the extra sub-commands: a usage mistake raises (one line from `main`) instead
    of printing the whole usage block and exiting."""

    def error(self, message: str):
        hint = f" (see `{self.prog} --help`)"
        raise argparse.ArgumentError(None, message if message.endswith(hint) else message + hint)


def one_line(error: BaseException) -> str:
    """The error's message on one line. An error re-raised from a DataLoader worker carries the
    worker's traceback as text: only its last line (the original message) is kept."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(args: list[str] | None = None) -> int | None:
    """Runs one `xrg` command; returns its exit code (2 for a user error, printed as one line)."""
    explicit = args is not None
    args = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in args or os.environ.get("XRG_DEBUG", "") not in ("", "0")
    if "--debug" in args:
        args = [arg for arg in args if arg != "--debug"]
        if not explicit:
            sys.argv = [sys.argv[0], *args]
    if "--quiet" in args:  # any command: no live progress displays, as XRG_QUIET=1 (see xrg.progress)
        args = [arg for arg in args if arg != "--quiet"]
        if not explicit:
            sys.argv = [sys.argv[0], *args]
        set_quiet()
    silence_known_noise()
    command = args[0] if args and args[0] in (*EXTRA_COMMANDS, *LIGHTNING_COMMANDS) else ""
    try:
        return _run(args, explicit)
    except USER_ERRORS as error:
        if debug:
            raise
        prefix = f"xrg {command}" if command else "xrg"
        print(f"{prefix}: error: {one_line(error)}", file=sys.stderr)
        return 2


def _run(args: list[str], explicit: bool) -> int | None:
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
