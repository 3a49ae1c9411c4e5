"""Q-Former alignment pretraining (BLIP-2 stage 1): ITC + ITM + ITG over an image encoder.

RaDialog's stage 2, with `frozen: [image_encoder, findings]`. `findings` is optional and only
carried: a findings head trained in the previous stage rides along unchanged, so the next stage
can take every block from one checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch

from xrg.blocks.aligners.qformer import QFormerAligner
from xrg.blocks.encoders.base import ImageEncoder
from xrg.blocks.findings.base import FindingsHead
from xrg.tasks.base import XrgTask


class QFormerAlignment(XrgTask):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        aligner: QFormerAligner,
        findings: FindingsHead | None = None,
        loss_weights: dict[str, float] | None = None,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(**task_kwargs)
        self.image_encoder, self.aligner, self.findings = image_encoder, aligner, findings
        aligner.bind_input(image_encoder.dim)
        if findings is not None:
            findings.bind_input(image_encoder.dim)
        self.loss_weights = {"itc": 1.0, "itm": 1.0, "itg": 1.0, **(loss_weights or {})}
        self.apply_frozen()

    def _losses(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        features = self.image_encoder(batch["images"], batch.get("view_mask"))
        losses = self.aligner.alignment_losses(features, batch["reports"])
        total = sum(self.loss_weights[k] * v for k, v in losses.items())
        size = len(batch["ids"])
        self.log_dict({f"{split}/{k}": v for k, v in losses.items()}, batch_size=size, sync_dist=split != "train")
        self.log(f"{split}/loss", total, prog_bar=True, batch_size=size, sync_dist=split != "train")
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._losses(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._losses(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._losses(batch, "test")
