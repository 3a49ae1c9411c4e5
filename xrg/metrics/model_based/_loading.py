"""How every model-based metric gets its package and its weights, and how it says what is missing.

Weights come the way each package fetches them: from the Hugging Face hub, or its cache when the
user set `HF_HUB_OFFLINE=1` (never set here). A miss ends in one line naming the package to
install or the weights to put in place, raised before any report is scored.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator


class MissingPackageError(ImportError):
    """The metric's package is not installed; the message says how to install it."""


class MissingWeightsError(FileNotFoundError):
    """The metric's weights could not be loaded; the message says what to put where."""


def require(module: str, metric: str, install: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingPackageError(f"{metric} needs the {module.split('.')[0]!r} package ({error}): {install}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@contextmanager
def loading(metric: str, weights: str) -> Iterator[None]:
    """Any failure while a package loads its model becomes one line naming the weights."""
    try:
        yield
    except (MissingPackageError, MissingWeightsError):
        raise
    except Exception as error:  # noqa: BLE001 - packages raise OSError, Exception, hub errors...
        cache = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") else ""
        raise MissingWeightsError(
            f"{metric}: cannot load {weights}{offline} [{_first_line(error)}]; run once where the Hugging Face hub "
            f"is reachable, or copy its cache ({cache}) here"
        ) from error


def radeval_install(extra: str) -> str:
    # RadEval's own requirements pull medspacy, which on Python < 3.12 pins spaCy < 3.8 and so
    # numpy < 2: install it without them; the extra brings what its RadGraph / GREEN code imports.
    return f'pip install "xrg[{extra}]" && pip install --no-deps radeval==2.2.1'


def require_radeval(module: str, metric: str, extra: str) -> ModuleType:
    """A RadEval module. RadEval vendors the field's metrics patched for transformers 5 (the
    standalone radgraph / f1chexbert / green_score packages call tokenizer methods transformers 5
    removed). Its vendored RadGraph imports itself as `RadEval.…`, which only resolves on a
    case-insensitive file system; the alias makes it resolve everywhere."""
    import sys

    radeval = require("radeval", metric, radeval_install(extra))
    sys.modules.setdefault("RadEval", radeval)
    return require(module, metric, radeval_install(extra))
