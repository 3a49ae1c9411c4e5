"""Model-based report metrics: CheXbert F1, RadGraph F1, BERTScore, GREEN.

Each adapter is imported lazily (transformers is heavy) and loads weights from a local path or the
Hugging Face cache only; without weights it fails at once, saying what to put where.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MissingWeightsError": "xrg.metrics.model_based._weights",
    "resolve_weights": "xrg.metrics.model_based._weights",
    "BertScore": "xrg.metrics.model_based.bertscore",
    "ChexbertLabeler": "xrg.metrics.model_based.chexbert",
    "chexbert_f1": "xrg.metrics.model_based.chexbert",
    "radgraph_f1": "xrg.metrics.model_based.radgraph",
    "RadGraphF1": "xrg.metrics.model_based.radgraph",
    "Green": "xrg.metrics.model_based.green",
    "parse_green_response": "xrg.metrics.model_based.green",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
