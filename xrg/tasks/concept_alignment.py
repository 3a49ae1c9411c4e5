"""Stage 1 of RadAlign: train the concept aligner on an image encoder; AUC per disease logged.

With a `retriever`, the task is also the retrieval-only baseline: the "generated" report of a
study is its nearest training report in the aligned space, scored with the report metrics
(`xrg test`) and written with its concept scores and neighbours (`xrg predict`). The index
follows the one lifecycle of `xrg.blocks.retrieval.lifecycle` (built once, saved next to the
checkpoint, rebuilt when the weights computing its keys change), as in the `RetrievedReports` guide.
"""

from __future__ import annotations

from typing import Any

import torch

from xrg.blocks.encoders.base import ImageEncoder
from xrg.blocks.findings.base import PosWeightRule
from xrg.blocks.findings.concepts import ConceptAligner, ConceptOutput
from xrg.blocks.retrieval.base import Retrieved, Retriever
from xrg.blocks.retrieval.lifecycle import ensure_index
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.findings import FindingsClassification


class ConceptAlignment(FindingsClassification):
    """`FindingsClassification` with the concept aligner as its head (`findings`): the loss adds
    the anchor alignment term; AUC per disease is logged by the parent."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        findings: ConceptAligner,
        retriever: Retriever | None = None,
        index_dir: str | None = None,
        report_metrics: bool = True,
        fit_pos_weight: bool | PosWeightRule = True,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(image_encoder, findings, fit_pos_weight, **task_kwargs)
        if tuple(findings.label_names) != CHEXPERT_LABELS:
            raise ValueError(f"the criteria must name the CheXpert labels in order {CHEXPERT_LABELS}, "
                             f"got {findings.label_names}")
        self.retriever = retriever
        self.index_dir = index_dir
        self.test_reports = None
        if retriever is not None and report_metrics:
            from xrg.metrics.report import ReportMetrics

            self.test_reports = ReportMetrics()

    def concept_output(self, batch: dict[str, Any]) -> ConceptOutput:
        return self.findings.align(self.image_encoder(batch["images"], batch.get("view_mask")))

    def ensure_index(self) -> None:
        if self.retriever is not None:
            ensure_index(self.retriever, self.trainer, self, lambda batch: self.concept_output(batch).pooled,
                         [self.image_encoder, self.findings], self.index_dir)

    def retrieve(self, batch: dict[str, Any], query: torch.Tensor) -> Retrieved:
        # A study never retrieves itself: in training its own report would be the answer.
        return self.retriever(query, exclude_ids=batch["ids"])

    def on_test_start(self) -> None:
        self.ensure_index()

    def on_predict_start(self) -> None:
        self.ensure_index()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.findings.total_loss(self.concept_output(batch), self._labels(batch))
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=len(batch["ids"]))
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=len(batch["ids"]))
        return losses["loss"]

    def _evaluate(self, batch: dict[str, Any], split: str) -> ConceptOutput:
        output, labels = self.concept_output(batch), self._labels(batch)
        losses = self.findings.total_loss(output, labels)
        self.log_dict({f"{split}/{k}": v for k, v in losses.items()}, batch_size=len(batch["ids"]), sync_dist=True)
        self._keep_outputs(split, batch, output.logits, labels)
        return output

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = self._evaluate(batch, "test")
        if self.test_reports is not None:
            nearest = [reports[0] for reports in self.retrieve(batch, output.pooled).reports]
            self.test_reports.update(nearest, batch["reports"])

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.test_reports is not None:
            scores = self.test_reports.compute()
            self.test_reports.reset()
            self.log_dict({f"test/{k}": v for k, v in scores.items()}, rank_zero_only=False)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        output = self.concept_output(batch)
        explained = self.findings.explain(output)
        retrieved = self.retrieve(batch, output.pooled) if self.retriever is not None else None
        rows = []
        for i, study_id in enumerate(batch["ids"]):
            row = {"id": study_id}
            if retrieved is not None:
                row["generated"] = retrieved.reports[i][0]
                row["retrieved_ids"] = retrieved.ids[i]
            if batch.get("reports"):
                row["reference"] = batch["reports"][i]
            rows.append(row | explained[i])
        return rows
