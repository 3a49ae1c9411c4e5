"""Model-based report metrics through the field's packages: RadGraph F1, CheXbert labels, GREEN,
RaTEScore, BERTScore (one optional extra each, e.g. `pip install "xrg[radgraph]"`).

Each is imported lazily and loads its weights when built, the way its package does: from the
Hugging Face hub, or its cache when `HF_HUB_OFFLINE=1` is set by the user. A missing package or
missing weights raise one line (`MissingPackageError` / `MissingWeightsError`) naming what to
install or fetch, before any report is scored. Every metric but CheXbert scores each study
(`per_sample(generated, references) -> {key: [N]}`, the corpus score being the mean); CheXbert is a
labeler whose labels feed every clinical-efficacy convention (`ce/chexbert/...`).
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np

from xrg.metrics.model_based._loading import MissingPackageError, MissingWeightsError

METRICS = {
    "radgraph": ("xrg.metrics.model_based.radgraph", "RadGraphF1"),
    "chexbert": ("xrg.metrics.model_based.chexbert", "ChexbertLabeler"),
    "green": ("xrg.metrics.model_based.green", "Green"),
    "ratescore": ("xrg.metrics.model_based.ratescore", "RaTEScore"),
    "bertscore": ("xrg.metrics.model_based.bertscore", "BertScore"),
}
_EXPORTS = {
    "RadGraphF1": METRICS["radgraph"][0], "ChexbertLabeler": METRICS["chexbert"][0], "chexbert_f1": METRICS["chexbert"][0],
    "Green": METRICS["green"][0], "RaTEScore": METRICS["ratescore"][0], "BertScore": METRICS["bertscore"][0],
}
__all__ = sorted([*_EXPORTS, "METRICS", "MissingPackageError", "MissingWeightsError", "ModelBasedMetrics", "load_metric",
                  "parse_metric_names", "score"])


def parse_metric_names(text: str) -> list[str]:
    """"radgraph,chexbert" -> ["radgraph", "chexbert"]; an unknown name is one line listing the known."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown model-based metric {unknown[0]!r}; expected some of {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def load_metric(name: str, **options: Any):
    """The metric `name` with its model loaded (or one line saying what is missing)."""
    module, attribute = METRICS[name]
    return getattr(importlib.import_module(module), attribute)(**options)


def score(metrics: Sequence[Any], generated: list[str], references: list[str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(summary, per-study scores) of loaded metrics; CheXbert's labels give every `ce/chexbert/...` key."""
    summary: dict[str, float] = {}
    per_sample: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric.name == "chexbert":
            from xrg.metrics.model_based.chexbert import chexbert_f1

            summary.update(chexbert_f1(metric, generated, references))
            continue
        values = metric.per_sample(generated, references)
        per_sample.update(values)
        summary.update({key: float(np.mean(value)) for key, value in values.items()})
    return summary, per_sample


def __getattr__(name: str) -> Any:
    if name == "ModelBasedMetrics":
        from xrg.metrics.model_based.metric import ModelBasedMetrics

        return ModelBasedMetrics
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
