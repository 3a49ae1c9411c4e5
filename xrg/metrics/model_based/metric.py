"""Model-based metrics as a torchmetric for a task's test step: the texts are gathered from every
rank (`PairedTextMetric`) and scored once. Names are checked when the task is built; the models
load at the first `compute()`, so `xrg fit` never loads a judge it will not use."""

from __future__ import annotations

from typing import Any, Sequence

from xrg.metrics.model_based import load_metric, parse_metric_names, score
from xrg.metrics.nlg.metric import PairedTextMetric


class ModelBasedMetrics(PairedTextMetric):
    def __init__(self, names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = parse_metric_names(",".join(names))
        self._loaded: list[Any] | None = None

    def _score(self) -> dict[str, float]:
        if self._loaded is None:
            self._loaded = [load_metric(name) for name in self.names]
        generated, references = self.texts()
        return score(self._loaded, generated, references)[0]
