"""LLM report generation (RaDialog stage 3): image -> aligner -> LLM prompted with findings.

The prompt holds the image slots and the findings as text: ground-truth labels while training
(RaDialog), the findings head's predictions otherwise. Findings are computed from the image
encoder's features (before the aligner) and stashed in the batch by `encode`.
"""

from __future__ import annotations

from typing import Any

import torch

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.decoders.causal_lm import CausalLMDecoder
from xrg.blocks.decoders.prompt import PromptBuilder
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.blocks.findings.base import FindingsHead, names_from_row
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.report_generation import ReportGeneration


class LLMReportGeneration(ReportGeneration):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        decoder: CausalLMDecoder,
        aligner: Aligner | None = None,
        findings: FindingsHead | None = None,
        prompt: PromptBuilder | None = None,
        labels_in_training: bool = True,
        freeze_image_encoder: bool = True,
        freeze_aligner: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_encoder, decoder, aligner, **kwargs)
        self.save_task_hyperparameters(["image_encoder", "decoder", "aligner", "findings", "prompt"])
        self.findings = findings
        if findings is not None:
            findings.bind_input(image_encoder.dim)
            findings.freeze()  # trained in its own stage
        self.prompt = prompt if prompt is not None else PromptBuilder(preset="radialog")
        self.labels_in_training = labels_in_training
        if freeze_image_encoder:
            image_encoder.freeze()
        if freeze_aligner and aligner is not None:
            aligner.freeze()

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(self.aligner, "bert", True) is None and datamodule is not None:
            self.aligner.prepare(datamodule.train_reports())

    def encode(self, batch: dict[str, Any]) -> Features:
        features = self.image_encoder(batch["images"], batch.get("view_mask"))
        if self.findings is not None:
            batch["findings_probs"] = self.findings(features).sigmoid()
        return self.aligner(features) if self.aligner is not None else features

    def findings_names(self, batch: dict[str, Any]) -> list[list[str]]:
        """Findings per study for the prompt: labels while training, else the head's predictions."""
        if self.training and self.labels_in_training and "labels" in batch:
            return [names_from_row(row, CHEXPERT_LABELS) for row in batch["labels"]]
        if "findings_probs" in batch:
            return self.findings.predicted_names(batch["findings_probs"])
        return [[] for _ in batch["ids"]]

    def report_prompts(self, batch: dict[str, Any]) -> list[str]:
        return [self.prompt.build(findings=[n.lower() for n in names]) for names in self.findings_names(batch)]

    def prompts(self, batch: dict[str, Any], features: Features) -> list[str]:
        return self.report_prompts(batch)

    def explain(self, batch: dict[str, Any], features: Features) -> list[dict[str, Any]] | None:
        if "findings_probs" not in batch:
            return None
        names = self.findings.predicted_names(batch["findings_probs"])
        probs = batch["findings_probs"].tolist()
        return [
            {"findings": n, "findings_probs": dict(zip(self.findings.label_names, [round(p, 4) for p in row]))}
            for n, row in zip(names, probs)
        ]

    @torch.no_grad()
    def ask(self, batch: dict[str, Any], history: list[tuple[str, str]], question: str, **generate_kwargs) -> str:
        """One follow-up answer for one study given the dialog so far (used by `xrg.chat`)."""
        features = self.encode(batch)
        prompt = self.prompt.build(history=history, instruction=question)
        return self.decoder.generate(features, [prompt], **generate_kwargs)[0]
