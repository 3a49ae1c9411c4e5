"""Progress wherever a person waits, one switch to silence it, and no third-party noise.

- `track(items, description, total)`: a rich progress bar over an iterable (`xrg data synth`,
  building a retrieval index, `xrg evaluate`, `xrg label`). Training shows Lightning's own rich
  progress bar, which no recipe turns off.
- `XRG_QUIET=1` (or `--quiet` on any `xrg` command) turns every live progress display off, for batch
  jobs and logs; per-epoch metric lines and results are still printed.
- `silence_known_noise()`: the CLI hides Lightning's advertising tips and deprecation warnings
  raised inside third-party packages about their own dependencies. Each filter names the exact
  message or module it hides; warnings from xrg's code, and every other warning, still show.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
QUIET_ENV = "XRG_QUIET"


def quiet() -> bool:
    """True when `XRG_QUIET` is set to anything but "", "0", "false" or "no"."""
    return os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false", "no")


def set_quiet(on: bool = True) -> None:
    """What `--quiet` does: the switch for this process and the workers it starts."""
    os.environ[QUIET_ENV] = "1" if on else "0"


def track(items: Iterable[T], description: str, total: int | None = None, trainer=None) -> Iterator[T]:
    """`items`, with a rich progress bar on stderr: none when quiet, for fewer than 2 items, or
    while `trainer`'s own progress bar is live (two live displays would garble the terminal;
    then one line says what is happening)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if quiet() or (total is not None and total < 2):
        yield from items
        return
    if trainer is not None and getattr(getattr(trainer, "progress_bar_callback", None), "progress", None) is not None:
        print(f"{description} ({total} items)", file=sys.stderr)
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


# Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines (info-level log records).
_TIP_PREFIX = "💡 Tip:"

# (message regex, module regex) of deprecation warnings raised inside third-party packages about
# their own dependencies: nothing an xrg user can act on. Matched exactly; nothing else is hidden.
KNOWN_NOISE = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\..*"),
    (r".*pkg_resources is deprecated as an API.*", r".*"),
    (r".*`torch\.cuda\.amp\.\w+\(args\.\.\.\)` is deprecated.*", r"open_clip\..*"),
    (r".*TripleDES has been moved.*", r".*"),
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_TIP_PREFIX)


def silence_known_noise() -> None:
    """Hide Lightning's tips and the known third-party deprecation warnings (see `KNOWN_NOISE`)."""
    for message, module in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, module=module)
    tips = _DropTips()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(tips)
