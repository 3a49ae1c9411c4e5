"""Instruction tuning (RaDialog stage 4): report generation mixed with two-turn dialogs.

Each training study gets, with probability `instruction_share`, one of its instruction records
(`xrg.data.instruct` format) instead of plain report generation: the prompt is the report turn
(the study's report, or the record's wrong report for corrections) followed by the instruction,
and the target is the record's answer. `instructions: null` derives the records from the
training reports and labels at fit start (reports, corrections, finding QA), so the stage also
runs without a prepared file. Validation and test score report generation as in stage 3.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from xrg.blocks.encoders.base import Features
from xrg.data.instruct import LabelledStudy, derive_samples, read_instructions
from xrg.tasks.llm_report import LLMReportGeneration


class InstructionTuning(LLMReportGeneration):
    def __init__(self, *args: Any, instructions: str | None = None, instruction_share: float = 0.5, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_task_hyperparameters(["image_encoder", "decoder", "aligner", "findings", "prompt"])
        self.instructions_path, self.instruction_share = instructions, instruction_share
        self.records: dict[str, list[dict]] = {}
        self._rng = random.Random(seed)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit" or self.records:
            return
        if self.instructions_path is not None:
            self.records = read_instructions(self.instructions_path)
        else:
            dataset = self.trainer.datamodule.datasets["train"]
            studies = [LabelledStudy(s.id, r, dataset.labels[s.id]) for s, r in zip(dataset.studies, dataset.reports)]
            for record in derive_samples(studies):
                self.records.setdefault(record["id"], []).append(record)

    def step_loss(self, batch: dict[str, Any], features: Features) -> torch.Tensor:
        if not self.training or not self.records:
            return super().step_loss(batch, features)
        prompts, targets = [], []
        for study_id, names, reference in zip(batch["ids"], self.findings_names(batch), batch["reports"]):
            findings = [n.lower() for n in names]
            records = self.records.get(study_id, [])
            if records and self._rng.random() < self.instruction_share:
                record = self._rng.choice(records)
                prompt, target = self.instruction_sample(record, findings, reference)
            else:
                prompt, target = self.prompt.build(findings=findings), reference
            prompts.append(prompt)
            targets.append(target)
        return self.decoder.loss(features, targets, prompts)

    def instruction_sample(self, record: dict, findings: list[str], reference: str) -> tuple[str, str]:
        """(prompt, target) of one record: report turn, then the instruction."""
        if record.get("instruction") is None:
            return self.prompt.build(findings=findings), record["answer"]
        history = [("user", self.prompt.message(findings=findings)), ("assistant", record.get("report") or reference)]
        return self.prompt.build(history=history, instruction=record["instruction"]), record["answer"]
