"""RaDialog's findings classifier: a linear multi-label head over the pooled image features.

`spatial: λ > 0` adds class-specific residual attention (CSRA, Zhu & Wu, ICCV 2021): the head also
scores every image token, and each class adds λ times its attention-pooled token score to the
pooled logit, the attention being a softmax at `temperature` over that class's own token scores
(None: their maximum). A nodule or a rib fracture fills one cell of a 3x3 feature grid; averaged
with the other cells it fades, while the class's own best cell keeps it (docs/quality.md).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from xrg.blocks.encoders.base import Features
from xrg.blocks.findings.base import FindingsHead
from xrg.data.labels import CHEXPERT_LABELS


class FindingsClassifier(FindingsHead):
    """pooled `[B, D]` -> (optional hidden layer) -> logits `[B, K]` over `label_names`.

    Works over any image encoder; `input_dim` is bound by the task from the encoder's `dim`
    (or given here to use the head alone).
    """

    def __init__(
        self,
        label_names: list[str] | None = None,
        threshold: float = 0.5,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        input_dim: int | None = None,
        blank: Literal["negative", "ignore"] = "negative",
        spatial: float = 0.0,
        temperature: float | None = None,
        focal_gamma: float = 0.0,
    ) -> None:
        super().__init__(list(label_names or CHEXPERT_LABELS), threshold, blank, focal_gamma)
        if spatial < 0 or (temperature is not None and temperature <= 0):
            raise ValueError(f"spatial is a weight >= 0 and temperature > 0 or None (max), got {spatial}, {temperature}")
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self.spatial, self.temperature = spatial, temperature
        self.net: nn.Module | None = None
        if input_dim is not None:
            self.bind_input(input_dim)

    def _build_input_layers(self, dim: int) -> None:
        layers: list[nn.Module] = [nn.Dropout(self.dropout)]
        if self.hidden_dim:
            layers += [nn.Linear(dim, self.hidden_dim), nn.GELU(), nn.Dropout(self.dropout)]
            dim = self.hidden_dim
        self.net = nn.Sequential(*layers, nn.Linear(dim, self.num_labels))

    def forward(self, features: Features) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("FindingsClassifier has no input width: call bind_input(encoder.dim) first")
        logits = self.net(features.pooled)
        if not self.spatial:
            return logits
        scores = self.net(features.tokens)  # [B, T, K]: every token scored as the pooled vector is
        if features.mask is not None:  # padded views' tokens score nothing
            scores = scores.masked_fill(~features.mask.unsqueeze(-1), float("-inf"))
        if self.temperature is None:
            attended = scores.amax(1)
        else:
            attention = (scores * self.temperature).softmax(1)
            attended = (attention * scores.nan_to_num(neginf=0.0)).sum(1)
        return logits + self.spatial * attended
