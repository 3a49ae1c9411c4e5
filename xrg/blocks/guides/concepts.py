"""RadAlign's recognised concepts: a concept aligner's diseases and criteria written as text.

The aligner reads the image encoder's features; the recognised diseases, each with the criteria
that read as present and its probability, fill the `concepts` prompt field. With `tokens`, the
concept embeddings also join the decoder's memory (useful when the LLM or its LoRA trains). The
aligned embedding of the study (`Guidance.embedding`) is what RadAlign retrieves reports with.
Concepts are always the aligner's predictions, in training as at test time, so the decoder
learns from the inputs it will get. With `loss_weight` > 0 the aligner also trains here, on the
batch's labels (classification + anchor alignment), instead of only in its own stage.
"""

from __future__ import annotations

from torch import nn

from xrg.blocks.findings.concepts import ConceptAligner
from xrg.blocks.guides.base import Encoded, Guidance, Guide, project_tokens, token_projection
from xrg.data.labels import select_labels


class RecognisedConcepts(Guide):
    default_name = "concepts"

    def __init__(self, aligner: ConceptAligner, tokens: bool = False, field: str = "concepts",
                 loss_weight: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        self.aligner = aligner
        self.tokens = tokens
        self.field = field
        self.loss_weight = loss_weight
        self.projection: nn.Module | None = None

    def bind(self, visual_dim: int, memory_dim: int | None) -> int | None:
        self.aligner.bind_input(visual_dim)
        if not self.tokens:
            return memory_dim
        token_dim, kept = self.aligner.anchors.shape[-1], self.projection
        if kept is not None and (kept.in_features, kept.out_features) == (token_dim, memory_dim):
            return memory_dim  # bound again at the same widths: keep what it learned
        self.projection, memory_dim = token_projection(token_dim, memory_dim)
        return memory_dim

    def fields_written(self) -> list[str]:
        return [self.field]

    def forward(self, encoded: Encoded) -> Guidance:
        output = self.aligner.align(encoded.visual)
        labels = encoded.batch.get("labels")
        loss = None
        if encoded.with_loss and self.loss_weight > 0 and labels is not None:
            loss = self.loss_weight * self.aligner.total_loss(output, select_labels(labels, self.aligner.label_names))["loss"]
        return Guidance(
            loss=loss,
            tokens=project_tokens(output.embeddings, self.projection) if self.tokens else None,
            fields={self.field: self.aligner.scored_concepts(output)},
            embedding=output.pooled,
            explanations=self.aligner.explain(output),
            probabilities=dict(zip(self.aligner.label_names, output.logits.detach().sigmoid().unbind(1))),
        )
