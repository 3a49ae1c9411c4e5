"""`TRRG` stage 2: zero-shot disease perception -> clue injection -> clue interaction -> decoder.

    image ─ image_encoder ─┬─ (aligner) ─────────────── visual tokens ─┐
                           └─ perception (stage-1 joint space) ─ p[B,K] ─ injector ─ clues ─ interaction ─ decoder
                                                    prompts' embeddings ─┘

Without `perception`/`injector`/`interaction` this is plain `ReportGeneration` (the ablation
"without clues"). Any decoder works: the transformer decoder takes the fused tokens as memory; a
causal-LM decoder takes them in its prompt's `<image>` slots, and `prompt` can also write the
perceived findings into the text.

Disease-aware consistency (weight `consistency_weight`), ties perception and clues to the labels
of the report (the dataset's labels, else the labeler's reading of the reference report):
  BCE(perception logits, y)  -- gradients reach the image encoder even with a frozen perception,
                                so fine-tuning cannot drift away from what the stage-1 space perceives;
  BCE(w . clue_k', y_k)      -- a K-free linear probe on the interacted clue tokens, so the tokens
                                the decoder reads must state each disease's presence correctly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.clues.base import ClueInjector, ClueInteraction
from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.prompt import PromptBuilder
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.blocks.findings.zero_shot import ZeroShotDiseasePerception
from xrg.data.labels import CHEXPERT_LABELS, select_labels
from xrg.tasks.report_generation import ReportGeneration

PERCEIVED = "perception_logits"  # batch key where `encode` leaves the perceived disease logits


class TRRG(ReportGeneration):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        decoder: Decoder,
        perception: ZeroShotDiseasePerception | None = None,
        injector: ClueInjector | None = None,
        interaction: ClueInteraction | None = None,
        aligner: Aligner | None = None,
        prompt: PromptBuilder | None = None,
        freeze_perception: bool = True,
        consistency_weight: float = 0.5,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(image_encoder, decoder, aligner, **task_kwargs)
        self.save_task_hyperparameters(["image_encoder", "decoder", "perception", "injector", "interaction", "aligner", "prompt"])
        clue_blocks = (perception, injector, interaction)
        if any(b is None for b in clue_blocks) and any(b is not None for b in clue_blocks):
            raise ValueError("TRRG needs all of perception, injector and interaction, or none of them")
        self.perception, self.injector, self.interaction = clue_blocks
        self.prompt = prompt
        self.consistency_weight = consistency_weight
        self.consistency_head: nn.Linear | None = None
        if perception is not None:
            visual_dim = aligner.out_dim if aligner is not None else image_encoder.dim
            perception.bind_image_dim(image_encoder.dim)
            injector.bind(perception.joint.embed_dim)
            interaction.bind(visual_dim, injector.out_dim)
            self.decoder.bind_memory(interaction.out_dim)
            self.consistency_head = nn.Linear(interaction.out_dim, 1)
            if freeze_perception:
                perception.freeze()
            missing = [n for n in perception.label_names if n not in CHEXPERT_LABELS]
            if missing and consistency_weight > 0:
                raise ValueError(f"consistency needs labels; {missing} are not CheXpert observations")

    # --- forward --------------------------------------------------------------------------------
    def encode(self, batch: dict[str, Any]) -> Features:
        visual = self.image_encoder(batch["images"], batch.get("view_mask"))
        perceived_from = visual
        if self.aligner is not None:
            visual = self.aligner(visual)
        if self.perception is None:
            return visual
        logits = self.perception(perceived_from)
        batch[PERCEIVED] = logits
        clues = self.injector(logits.sigmoid(), self.perception.prompt_embeddings())
        return self.interaction(visual, clues)

    def prompts(self, batch: dict[str, Any], features: Features) -> list[str] | None:
        if self.prompt is None:
            return None
        if self.perception is None:
            return [self.prompt.build(findings=[]) for _ in batch["images"]]
        names = self.perception.predicted_names(batch[PERCEIVED].sigmoid())
        return [self.prompt.build(findings=[n.lower() for n in found]) for found in names]

    # --- objective ------------------------------------------------------------------------------
    def disease_labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """`[B, K]` codes of the perceived diseases (NaN blank), from the batch or the labeler."""
        labels = batch.get("labels")
        if labels is None:
            from xrg.metrics.ce import labels_to_matrix
            from xrg.metrics.labeler import label_reports

            labels = labels_to_matrix(label_reports(batch["reports"])).to(self.device)
        return select_labels(labels, self.perception.label_names)

    def consistency_loss(self, batch: dict[str, Any], features: Features) -> torch.Tensor:
        labels = self.disease_labels(batch)
        k = labels.shape[1]
        clue_logits = self.consistency_head(features.tokens[:, -k:]).squeeze(-1)  # clues come last
        return self.perception.loss(batch[PERCEIVED], labels) + self.perception.loss(clue_logits, labels)

    def step_loss(self, batch: dict[str, Any], features: Features) -> torch.Tensor:
        loss = super().step_loss(batch, features)
        if self.perception is None or self.consistency_weight == 0:
            return loss
        consistency = self.consistency_loss(batch, features)
        stage = "train" if self.training else "eval"
        self.log(f"{stage}/consistency_loss", consistency, batch_size=len(batch["ids"]))
        return loss + self.consistency_weight * consistency

    def explain(self, batch: dict[str, Any], features: Features) -> list[dict[str, Any]] | None:
        if self.perception is None:
            return None
        probs = batch[PERCEIVED].sigmoid().tolist()
        names = self.perception.label_names
        return [{"perceived": {n: round(p, 4) for n, p in zip(names, row)}} for row in probs]
