"""`ReportGeneration`: image encoder (-> optional aligner) -> decoder, trained with token NLL.

The R2Gen baseline is this task with a timm encoder and the transformer decoder; other papers
swap blocks in the recipe, not code here.
"""

from __future__ import annotations

from typing import Any

import torch

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.decoders.base import Decoder
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.tasks.base import XrgTask


class ReportGeneration(XrgTask):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        decoder: Decoder,
        aligner: Aligner | None = None,
        generate_in_validation: bool = True,
        nlg_metrics: bool = True,
        meteor: bool = True,
        clinical_efficacy: bool = True,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(**task_kwargs)
        self.save_task_hyperparameters(["image_encoder", "decoder", "aligner"])
        self.image_encoder = image_encoder
        self.aligner = aligner
        self.decoder = decoder
        self.decoder.bind_memory(aligner.out_dim if aligner is not None else image_encoder.dim)
        self.generate_in_validation = generate_in_validation
        self._metric_flags = {"nlg": nlg_metrics, "meteor": meteor, "clinical_efficacy": clinical_efficacy}
        self.val_metrics = self._build_metrics()
        self.test_metrics = self._build_metrics()

    def _build_metrics(self):
        if not (self._metric_flags["nlg"] or self._metric_flags["clinical_efficacy"]):
            return None
        from xrg.metrics.report import ReportMetrics

        return ReportMetrics(**self._metric_flags)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if not self.decoder.is_built:
            # A fresh model fits its vocabulary on the training reports; a model restored from a
            # checkpoint gets it from the checkpoint (decoder extra state) and skips this.
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is None or not hasattr(datamodule, "train_reports"):
                if stage == "fit":
                    raise RuntimeError("the decoder's vocabulary needs a datamodule with train_reports()")
                return
            self.decoder.prepare(datamodule.train_reports())

    def encode(self, batch: dict[str, Any]) -> Features:
        features = self.image_encoder(batch["images"], batch.get("view_mask"))
        return self.aligner(features) if self.aligner is not None else features

    # --- hooks for tasks that prompt a language model or explain their output ---------------
    def prompts(self, batch: dict[str, Any], features: Features) -> list[str] | None:
        """Text prompts for the decoder (None: the decoder takes none). LLM tasks override this,
        e.g. to write predicted findings, concepts or retrieved reports into the prompt."""
        return None

    def explain(self, batch: dict[str, Any], features: Features) -> list[dict[str, Any]] | None:
        """Per-study extras written next to each prediction (scores, retrieved ids...)."""
        return None

    def step_loss(self, batch: dict[str, Any], features: Features) -> torch.Tensor:
        """The training objective; tasks with auxiliary losses add to it here."""
        return self.decoder.loss(features, batch["reports"], self.prompts(batch, features))

    def generate_reports(self, batch: dict[str, Any], features: Features) -> list[str]:
        return self.decoder.generate(features, self.prompts(batch, features))

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None, **generate_kwargs) -> list[str]:
        """Reports for a batch of studies `[B, V, C, H, W]` (notebook use)."""
        batch = {"images": images, "view_mask": view_mask}
        features = self.encode(batch)
        return self.decoder.generate(features, self.prompts(batch, features), **generate_kwargs)

    def generate(self, images: torch.Tensor, view_mask: torch.Tensor | None = None, **generate_kwargs) -> list[str]:
        return self(images, view_mask, **generate_kwargs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.step_loss(batch, self.encode(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def _evaluate(self, batch: dict[str, Any], prefix: str, metrics) -> None:
        features = self.encode(batch)
        loss = self.step_loss(batch, features)
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=len(batch["ids"]), sync_dist=True)
        if metrics is not None and (prefix == "test" or self.generate_in_validation):
            metrics.update(self.generate_reports(batch, features), batch["reports"])

    def _log_metrics(self, prefix: str, metrics) -> None:
        if metrics is None or (prefix == "val" and not self.generate_in_validation):
            return
        scores = metrics.compute()
        metrics.reset()
        # compute() already scored the gathered set once; every rank holds the same numbers.
        self.log_dict({f"{prefix}/{k}": v for k, v in scores.items()}, rank_zero_only=False)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_metrics("val", self.val_metrics)
        elif self.val_metrics is not None:
            self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        features = self.encode(batch)
        generated = self.generate_reports(batch, features)
        extras = self.explain(batch, features)
        rows = []
        for i, study_id in enumerate(batch["ids"]):
            row = {"id": study_id, "generated": generated[i]}
            if batch.get("reports"):
                row["reference"] = batch["reports"][i]
            if extras is not None:
                row.update(extras[i])
            rows.append(row)
        return rows
