"""Instruction tuning (RaDialog stage 4): report generation mixed with two-turn dialogs.

Each training study gets, with probability `instruction_share`, one of its instruction records
(`xrg.data.instruct` format) instead of plain report generation: the prompt is the report turn
(the study's report, or the record's wrong report for corrections) followed by the instruction,
and the target is the record's answer. The report turn's fields (findings, concepts, retrieved
reports...) come from the task's guides, as in report generation. `instructions: null` derives
the records from the training reports and labels at fit start (reports, corrections, finding QA),
so the stage also runs without a prepared file. Validation and test score report generation.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from xrg.blocks.guides.base import Encoded
from xrg.data.instruct import LabelledStudy, derive_samples, read_instructions
from xrg.tasks.report_generation import ReportGeneration


class InstructionTuning(ReportGeneration):
    def __init__(self, *args: Any, instructions: str | None = None, instruction_share: float = 0.5, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.prompt is None:
            raise ValueError("instruction tuning needs an LLM decoder and a `prompt`")
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

    def step_loss(self, encoded: Encoded) -> torch.Tensor:
        if not self.training or not self.records:
            return super().step_loss(encoded)
        prompts, targets = [], []
        for i, (study_id, reference) in enumerate(zip(encoded.batch["ids"], encoded.batch["reports"])):
            fields = self.prompt_fields(encoded, i)
            records = self.records.get(study_id, [])
            if records and self._rng.random() < self.instruction_share:
                prompt, target = self.instruction_sample(self._rng.choice(records), fields, reference)
            else:
                prompt, target = self.prompt.build(**fields), reference
            prompts.append(prompt)
            targets.append(target)
        return self.decoder.loss(encoded.memory, targets, prompts) + self.guide_losses(encoded)

    def instruction_sample(self, record: dict, fields: dict[str, Any], reference: str) -> tuple[str, str]:
        """(prompt, target) of one record: report turn, then the instruction."""
        if record.get("instruction") is None:
            return self.prompt.build(**fields), record["answer"]
        history = [("user", self.prompt.message(**fields)), ("assistant", record.get("report") or reference)]
        return self.prompt.build(history=history, instruction=record["instruction"]), record["answer"]
