"""TRRG's disease clues: zero-shot perception -> clue injector -> clue interaction.

    visual (image encoder) ─ perception (stage-1 joint space) ─ p[B,K] ─ injector ─ K clues ─┐
    memory (aligned visual tokens) ─────────────────────────────────────────── interaction ─┴─ new memory

The interaction's output replaces the memory, K clue tokens last. The perceived findings also
fill a prompt field (`field`, for an LLM decoder's text), and the disease-aware consistency loss
(weight `consistency_weight`) ties perception and clues to the labels of the report (the
dataset's labels, else the labeler's reading of the reference report):
  BCE(perception logits, y)  -- gradients reach the image encoder even with a frozen perception,
                                so fine-tuning cannot drift away from what the stage-1 space perceives;
  BCE(w . clue_k', y_k)      -- a K-free linear probe on the interacted clue tokens, so the tokens
                                the decoder reads must state each disease's presence correctly.
Nothing is sized by K: any list of diseases works from the config alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xrg.blocks.clues.base import ClueInjector, ClueInteraction
from xrg.blocks.findings.zero_shot import ZeroShotDiseasePerception
from xrg.blocks.guides.base import Encoded, Guidance, Guide
from xrg.data.labels import CHEXPERT_LABELS, select_labels


class DiseaseClues(Guide):
    default_name = "clues"

    def __init__(
        self,
        perception: ZeroShotDiseasePerception,
        injector: ClueInjector,
        interaction: ClueInteraction,
        consistency_weight: float = 0.5,
        field: str | None = "findings",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.perception, self.injector, self.interaction = perception, injector, interaction
        self.consistency_weight = consistency_weight
        self.field = field
        self.consistency_head: nn.Linear | None = None
        missing = [n for n in perception.label_names if n not in CHEXPERT_LABELS]
        if missing and consistency_weight > 0:
            raise ValueError(f"consistency needs labels; {missing} are not CheXpert observations "
                             "(set consistency_weight: 0 for other names)")

    def bind(self, visual_dim: int, memory_dim: int | None) -> int:
        if memory_dim is None:
            raise ValueError("DiseaseClues fuses clues with the visual tokens; the task gives it none (visual_tokens: false)")
        self.perception.bind_image_dim(visual_dim)
        self.injector.bind(self.perception.joint.embed_dim)
        self.interaction.bind(memory_dim, self.injector.out_dim)
        if self.consistency_head is None or self.consistency_head.in_features != self.interaction.out_dim:
            self.consistency_head = nn.Linear(self.interaction.out_dim, 1)
        return self.interaction.out_dim

    def fields_written(self) -> list[str]:
        return [self.field] if self.field else []

    def forward(self, encoded: Encoded) -> Guidance:
        logits = self.perception(encoded.visual)
        probs = logits.sigmoid()
        clues = self.injector(probs, self.perception.prompt_embeddings())
        memory = self.interaction(encoded.memory, clues)
        fields = {}
        if self.field:
            fields[self.field] = [[n.lower() for n in found] for found in self.perception.predicted_names(probs)]
        names = self.perception.label_names
        explanations = [{"perceived": {n: round(p, 4) for n, p in zip(names, row)}} for row in probs.tolist()]
        loss = None
        if encoded.with_loss and self.consistency_weight > 0:
            loss = self.consistency_weight * self.consistency_loss(encoded.batch, logits, memory)
        return Guidance(memory=memory, fields=fields, loss=loss, explanations=explanations,
                        probabilities=dict(zip(names, probs.detach().unbind(1))))

    def disease_labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """`[B, K]` codes of the perceived diseases (NaN blank), from the batch or the labeler."""
        labels = batch.get("labels")
        if labels is None:
            from xrg.metrics.ce import labels_to_matrix
            from xrg.metrics.labeler import label_reports

            labels = labels_to_matrix(label_reports(batch["reports"])).to(self.consistency_head.weight.device)
        return select_labels(labels, self.perception.label_names)

    def consistency_loss(self, batch: dict[str, Any], logits: torch.Tensor, memory) -> torch.Tensor:
        labels = self.disease_labels(batch)
        k = labels.shape[1]
        clue_logits = self.consistency_head(memory.tokens[:, -k:]).squeeze(-1)  # clues come last
        return self.perception.loss(logits, labels) + self.perception.loss(clue_logits, labels)
