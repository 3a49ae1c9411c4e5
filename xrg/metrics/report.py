"""The metrics a report-generation task logs: NLG (BLEU..CIDEr), clinical efficacy and, on request,
model-based metrics (`xrg.metrics.model_based`), together.

Each accumulates strings (`PairedTextMetric`) and scores once on the whole gathered set, each
study once, at `compute()`.
"""

from __future__ import annotations

from torch import nn


class ReportMetrics(nn.Module):
    def __init__(self, nlg: bool = True, meteor: bool = True, clinical_efficacy: bool = True,
                 model_based: list[str] | None = None) -> None:
        super().__init__()
        self.metrics = nn.ModuleList()
        if nlg:
            from xrg.metrics.nlg import NLGMetrics

            # METEOR runs a Java process (seconds to start, 2 GB heap): CPU recipes may skip it.
            self.metrics.append(NLGMetrics(meteor=meteor))
        if clinical_efficacy:
            from xrg.metrics.ce import ClinicalEfficacy

            self.metrics.append(ClinicalEfficacy())
        if model_based:
            from xrg.metrics.model_based import ModelBasedMetrics

            self.metrics.append(ModelBasedMetrics(model_based))

    def update(self, generated: list[str], references: list[str], probabilities=None, ids=None) -> None:
        """`probabilities` [B, 14] (NaN where unknown): what the model perceives, scored as CE AUROC;
        `ids`: the studies' ids, so a study repeated across GPUs is scored once."""
        from xrg.metrics.ce import ClinicalEfficacy

        for metric in self.metrics:
            if isinstance(metric, ClinicalEfficacy):
                metric.update(generated, references, probabilities, ids=ids)
            else:
                metric.update(generated, references, ids=ids)

    def compute(self) -> dict[str, float]:
        scores: dict[str, float] = {}
        for metric in self.metrics:
            scores.update({k: float(v) for k, v in metric.compute().items()})
        return scores

    def reset(self) -> None:
        for metric in self.metrics:
            metric.reset()
