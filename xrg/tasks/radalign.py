"""RadAlign report generation: an LLM prompted with recognised concepts and retrieved reports.

    image ─► image encoder ─► ConceptAligner ─┬─► concepts (disease + criteria, with scores) ─┐
                                              └─► aligned embedding ─► ReportRetriever ─► k reports ┤
                                                                            prompt ◄────────────────┘
                                                                              ▼
                                                                      CausalLMDecoder ─► report

The image encoder and concept aligner come from stage 1 (`init_from`) and stay frozen by default
(in eval mode, so batch-norm statistics and dropout do not move): RadAlign's point is that the
LLM needs little or no training once the concepts are right. The LLM sees text only unless
`concept_tokens` puts the concept embeddings into the prompt as `<image>` slots (useful when the
LLM or its LoRA trains). Concepts are always the aligner's predictions, in training as at test
time, so the LLM learns from the inputs it will get.
"""

from __future__ import annotations

from typing import Any

import torch

from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.prompt import PromptBuilder
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.blocks.findings.concepts import ConceptAligner, ConceptOutput
from xrg.blocks.retrieval.base import Retriever
from xrg.tasks.concept_alignment import RetrievalIndexMixin
from xrg.tasks.report_generation import ReportGeneration

INSTRUCTION = ("You are a radiologist. Write the findings of this chest x-ray report, consistent with "
               "the recognised findings and in the style of the similar reports.")


def default_prompt(use_concepts: bool, use_retrieval: bool, concept_tokens: bool) -> PromptBuilder:
    parts = ["Concept tokens: {image}."] if concept_tokens else []
    if use_concepts:
        parts.append("Recognised findings with probabilities: {concepts}.")
    if use_retrieval:
        parts.append("Reports of similar studies: {retrieved}")
    return PromptBuilder(template=" ".join([*parts, INSTRUCTION]), chat="plain")


class RadAlign(RetrievalIndexMixin, ReportGeneration):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        concepts: ConceptAligner,
        decoder: Decoder,
        retriever: Retriever | None = None,
        use_concepts: bool = True,
        concept_tokens: bool = False,
        train_concepts: bool = False,
        prompt: PromptBuilder | None = None,
        index_dir: str | None = None,
        **report_kwargs: Any,
    ) -> None:
        super().__init__(image_encoder=image_encoder, decoder=decoder, **report_kwargs)
        self.save_task_hyperparameters(["image_encoder", "concepts", "decoder", "retriever", "prompt"])
        self.concepts = concepts
        self.retriever = retriever
        self.index_dir = index_dir
        self.use_concepts = use_concepts
        self.concept_tokens = concept_tokens
        self.train_concepts = train_concepts
        self.prompt_builder = prompt or default_prompt(use_concepts, retriever is not None, concept_tokens)
        # The decoder's memory is the concept embeddings (or nothing): bind it to their width.
        self.decoder.bind_memory(concepts.anchors.shape[-1])
        concepts.bind_input(image_encoder.dim)
        if not train_concepts:
            image_encoder.freeze()
            concepts.freeze()

    # --- what the prompt is made of ---------------------------------------------------------
    def concept_output(self, batch: dict[str, Any]) -> ConceptOutput:
        return self.concepts.align(self.image_encoder(batch["images"], batch.get("view_mask")))

    def query_embedding(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.concept_output(batch).pooled

    def index_query_modules(self) -> list[torch.nn.Module]:
        return [self.image_encoder, self.concepts]

    def encode(self, batch: dict[str, Any]) -> Features:
        with torch.set_grad_enabled(self.train_concepts and torch.is_grad_enabled()):
            output = self.concept_output(batch)
        batch["concept_output"] = output
        if self.retriever is not None:
            batch["retrieved"] = self.retrieve(batch, output.pooled)
        tokens = output.embeddings if self.concept_tokens else output.embeddings[:, :0]
        return Features(tokens, output.pooled)

    def prompts(self, batch: dict[str, Any], features: Features) -> list[str]:
        output = batch["concept_output"]
        scored = self.concepts.scored_concepts(output) if self.use_concepts else [[] for _ in batch["ids"]]
        retrieved = batch["retrieved"].reports if self.retriever is not None else [[] for _ in batch["ids"]]
        return [self.prompt_builder.build(concepts=s, retrieved=r) for s, r in zip(scored, retrieved)]

    def explain(self, batch: dict[str, Any], features: Features) -> list[dict[str, Any]]:
        rows = self.concepts.explain(batch["concept_output"])
        if self.retriever is not None:
            retrieved = batch["retrieved"]
            for row, ids, scores in zip(rows, retrieved.ids, retrieved.scores.tolist()):
                row["retrieved_ids"] = ids
                row["retrieved_scores"] = scores
        return rows

    # --- the index exists before any step needs it -------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.ensure_index()

    def on_validation_start(self) -> None:
        self.ensure_index()

    def on_test_start(self) -> None:
        self.ensure_index()

    def on_predict_start(self) -> None:
        self.ensure_index()
