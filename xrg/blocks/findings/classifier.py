"""RaDialog's findings classifier: a linear multi-label head over the pooled image features."""

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
    ) -> None:
        super().__init__(list(label_names or CHEXPERT_LABELS), threshold, blank)
        self.hidden_dim, self.dropout = hidden_dim, dropout
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
        return self.net(features.pooled)
