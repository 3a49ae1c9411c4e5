"""Findings classification: image encoder -> findings head, masked BCE, AUC per label.

Stage 1 of RaDialog: the head whose predictions are written into the LLM prompt at test time.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional.classification import binary_auroc

from xrg.blocks.encoders.base import ImageEncoder
from xrg.blocks.findings.base import FindingsHead, PosWeightRule, label_targets, pos_weight_rule
from xrg.data.errors import DataError
from xrg.data.labels import select_labels
from xrg.metrics.gather import gather_studies, study_keys
from xrg.tasks.base import XrgTask


class FindingsClassification(XrgTask):
    """Trains `findings` on `batch["labels"]`; logs `{split}/auc/<label>` and `{split}/auc_mean`.

    `fit_pos_weight`: at the start of a fresh fit, set the head's BCE positive weights from the
    training labels: `true` or `log` is RaDialog's log(N / count), `ratio` negatives / positives
    (`FindingsHead.fit_pos_weight`).
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        findings: FindingsHead,
        fit_pos_weight: bool | PosWeightRule = True,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(**task_kwargs)
        self.image_encoder = image_encoder
        self.findings = findings
        self.findings.bind_input(image_encoder.dim)
        self.pos_weight_rule = pos_weight_rule(fit_pos_weight)
        # per split: (study keys, probabilities, labels) of each evaluated batch
        self._outputs: dict[str, list[tuple[torch.Tensor, ...]]] = {"val": [], "test": []}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.pos_weight_rule and not self.trainer.ckpt_path:
            self.findings.fit_pos_weight_from(getattr(self.trainer, "datamodule", None), self.pos_weight_rule)

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities `[B, K]`."""
        return self.findings(self.image_encoder(images, view_mask)).sigmoid()

    def _logits(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.findings(self.image_encoder(batch["images"], batch.get("view_mask")))

    def _labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's labels for the head's observations, in the head's order."""
        if "labels" not in batch:
            raise DataError(f"batch of studies {batch['ids'][:3]}... has no labels: findings training needs labels")
        return select_labels(batch["labels"], self.findings.label_names)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.findings.loss(self._logits(batch), self._labels(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def _evaluate(self, batch: dict[str, Any], split: str) -> None:
        logits, labels = self._logits(batch), self._labels(batch)
        self.log(f"{split}/loss", self.findings.loss(logits, labels), batch_size=len(batch["ids"]), sync_dist=True)
        self._keep_outputs(split, batch, logits, labels)

    def _keep_outputs(self, split: str, batch: dict[str, Any], logits: torch.Tensor, labels: torch.Tensor) -> None:
        """The batch's probabilities and labels for the split's AUC, each row keyed by its study."""
        self._outputs[split].append((study_keys(batch["ids"], labels.device), logits.sigmoid().detach(), labels))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Rows as the report tasks' findings guide writes them: the names found, every probability."""
        probs = self._logits(batch).sigmoid()
        names = self.findings.label_names
        return [{"id": study_id, "findings": found, "findings_probs": {n: round(p, 4) for n, p in zip(names, row)}}
                for study_id, found, row in zip(batch["ids"], self.findings.predicted_names(probs), probs.tolist())]

    def _log_auc(self, split: str) -> dict[str, float]:
        outputs, self._outputs[split] = self._outputs[split], []
        if not outputs:
            return {}
        keys, probs, labels = (torch.cat(column) for column in zip(*outputs))
        probs, labels = gather_studies(self, keys, probs, labels)
        scores = per_label_auc(probs, labels, self.findings.label_names, self.findings.blank)
        if scores:
            scores["auc_mean"] = sum(scores.values()) / len(scores)
            self.log_dict({f"{split}/auc/{k}" if k != "auc_mean" else f"{split}/{k}": v for k, v in scores.items()})
        return scores

    def on_validation_epoch_end(self) -> None:
        self._log_auc("val")

    def on_test_epoch_end(self) -> None:
        self._log_auc("test")


def per_label_auc(probs: torch.Tensor, labels: torch.Tensor, names: list[str], blank: str = "negative") -> dict[str, float]:
    """ROC AUC per label: positives (1) against negatives (0, and blank unless `blank` is "ignore"),
    uncertain left out, as the heads train (`label_targets`); labels seen with one class only are left out.
    `labels` are `[N, len(names)]`, column k for `names[k]` (`select_labels` takes them from a batch's 14)."""
    targets, counted = label_targets(labels, blank)
    scores = {}
    for k, name in enumerate(names):
        known = counted[:, k]
        target = targets[known, k].long()
        if target.numel() and 0 < target.sum() < target.numel():
            scores[name] = float(binary_auroc(probs[known, k], target))
    return scores
