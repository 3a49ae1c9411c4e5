"""RaDialog's predicted findings: a findings head's observations, as prompt text and optionally as tokens.

While training, the guide can state the ground-truth labels instead (`labels_in_training`, as
RaDialog trains its LLM), so the decoder learns to trust it; at test time it is always the head's
prediction. The head reads the image encoder's features (before any aligner). With `tokens`, one
memory token per observation, `p * present_k + (1 - p) * absent_k` with learned embeddings, tells
a decoder without a prompt (the transformer decoder) the same thing. With `loss_weight` > 0 the
head also trains here, on the batch's labels (its own BCE), instead of only in its own stage.
"""

from __future__ import annotations

import torch
from torch import nn

from xrg.blocks.findings.base import FindingsHead, label_targets, names_from_row
from xrg.blocks.guides.base import Encoded, Guidance, Guide
from xrg.data.labels import select_labels


class PredictedFindings(Guide):
    default_name = "findings"

    def __init__(self, head: FindingsHead, labels_in_training: bool = True, field: str = "findings",
                 tokens: bool = False, token_dim: int | None = None, loss_weight: float = 0.0,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.head = head
        self.labels_in_training = labels_in_training
        self.field = field
        self.tokens = tokens
        self.token_dim = token_dim  # None: the memory's width
        self.loss_weight = loss_weight
        self.states: nn.Parameter | None = None  # [K, 2, D]: present / absent embedding per observation

    def bind(self, visual_dim: int, memory_dim: int | None) -> int | None:
        self.head.bind_input(visual_dim)
        if not self.tokens:
            return memory_dim
        width = memory_dim or self.token_dim or visual_dim
        if self.states is None or self.states.shape[-1] != width:
            self.states = nn.Parameter(torch.randn(self.head.num_labels, 2, width) * 0.02)
        return width

    def fields_written(self) -> list[str]:
        return [self.field]

    def forward(self, encoded: Encoded) -> Guidance:
        logits = self.head(encoded.visual)
        probs = logits.sigmoid()
        predicted = self.head.predicted_names(probs)
        labels = encoded.batch.get("labels")
        stated = probs
        if encoded.training and self.labels_in_training and labels is not None:
            stated = label_targets(select_labels(labels, self.head.label_names))[0].to(probs.dtype)
        names = predicted if stated is probs else [names_from_row(row, self.head.label_names) for row in stated]
        tokens = None
        if self.tokens:
            weight = stated.unsqueeze(-1)  # [B, K, 1]
            tokens = weight * self.states[:, 0] + (1 - weight) * self.states[:, 1]
        loss = None
        if encoded.with_loss and self.loss_weight > 0 and labels is not None:
            loss = self.loss_weight * self.head.loss(logits, select_labels(labels, self.head.label_names))
        scores = [dict(zip(self.head.label_names, (round(p, 4) for p in row))) for row in probs.tolist()]
        return Guidance(
            tokens=tokens,
            loss=loss,
            fields={self.field: [[n.lower() for n in found] for found in names]},
            explanations=[{"findings": found, "findings_probs": row} for found, row in zip(predicted, scores)],
        )
