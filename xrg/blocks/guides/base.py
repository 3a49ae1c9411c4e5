"""Guides: what conditions a report besides the image, one block each.

A guide reads the encoded study and returns `Guidance`: any of extra memory tokens (or a
replacement of the visual tokens), named prompt fields for the `PromptBuilder`, an auxiliary
loss, an embedding of the study in the guide's own space, and per-study explanation rows for
`xrg predict`. `ReportGeneration` runs its guides in order, so any mix of papers is a YAML list:

    RaDialog   PredictedFindings    findings head -> "findings" field (labels while training), optional tokens
    TRRG       DiseaseClues         perception -> clue injector -> clue interaction (+ consistency)
    RadAlign   RecognisedConcepts   concept aligner -> "concepts" field (+ optional concept tokens)
    RadAlign   RetrievedReports     retriever over training reports -> "retrieved" field
    (context)  PriorStudy           indication + prior report fields, prior study's views as tokens

Widths are bound by the task (`bind`), as every block's are: a guide learns the width of the
image encoder's features and of the memory before it, and says the memory width after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from xrg.blocks.base import Block, Features

if TYPE_CHECKING:
    from xrg.tasks.report_generation import ReportGeneration


@dataclass
class Guidance:
    """What one guide contributes for a batch of B studies (every field optional)."""

    tokens: torch.Tensor | None = None  # [B, T, D] appended to the decoder's memory
    memory: Features | None = None  # replaces the decoder's memory (TRRG's clue interaction)
    fields: dict[str, list[Any]] = field(default_factory=dict)  # prompt field -> one value per study
    loss: torch.Tensor | None = None  # auxiliary loss, added to the decoder's loss (already weighted)
    embedding: torch.Tensor | None = None  # [B, E] the studies in this guide's space (a retrieval query)
    explanations: list[dict[str, Any]] | None = None  # one row per study for `xrg predict`
    # observation name -> [B] probability it is present, as the guide perceives it (scored as AUROC)
    probabilities: dict[str, torch.Tensor] | None = None


@dataclass
class Encoded:
    """One batch after the image encoder, the aligner and every guide: what every hook receives.

    `visual` is the image encoder's output, `memory` what the decoder reads (aligned tokens with
    the guides' tokens), `guidance` each guide's result by name, in order."""

    batch: dict[str, Any]
    visual: Features
    memory: Features
    guidance: dict[str, Guidance] = field(default_factory=dict)
    with_loss: bool = True  # False when only generating: guides skip their auxiliary losses
    training: bool = False  # the task is training (a frozen guide is always in eval mode itself)
    # the task's images -> memory path (image encoder, aligner) for other images, e.g. a prior study's
    encode_views: Callable[[torch.Tensor, torch.Tensor | None], Features] | None = None

    @property
    def size(self) -> int:
        return self.visual.pooled.shape[0]

    def fields(self, i: int) -> dict[str, Any]:
        """Study `i`'s prompt fields from every guide."""
        return {name: values[i] for g in self.guidance.values() for name, values in g.fields.items()}

    def explanations(self) -> list[dict[str, Any]] | None:
        rows = [dict() for _ in range(self.size)]
        found = False
        for g in self.guidance.values():
            for row, extra in zip(rows, g.explanations or []):
                row.update(extra)
                found = True
        return rows if found else None

    def chexpert_probabilities(self) -> torch.Tensor | None:
        """`[B, 14]` probabilities of the CheXpert observations that some guide perceives (the
        first guide naming one wins; NaN where none does), or None when no guide perceives any."""
        from xrg.data.labels import CHEXPERT_LABELS

        perceived: dict[str, torch.Tensor] = {}
        for g in self.guidance.values():
            for name, column in (g.probabilities or {}).items():
                perceived.setdefault(name.lower(), column)
        columns = [perceived.get(name.lower()) for name in CHEXPERT_LABELS]
        if all(column is None for column in columns):
            return None
        blank = torch.full((self.size,), float("nan"))
        return torch.stack([blank if c is None else c.detach().float().cpu() for c in columns], 1)


class Guide(Block):
    """One thing that conditions the report. Subclasses set `default_name` and implement `forward`.

    `name` keys the guide in the task (`guides.<name>` in state dicts, `frozen`, `block_lr`,
    `init_from`) and in `Encoded.guidance`; two guides of one kind need different names.
    """

    default_name = "guide"

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.name = name or self.default_name

    def bind(self, visual_dim: int, memory_dim: int | None) -> int | None:
        """Create the layers that read features of these widths; return the memory width after
        this guide (None: the memory has no tokens yet). Guides that add no tokens keep it."""
        return memory_dim

    def fields_written(self) -> list[str]:
        """Prompt fields this guide fills (checked for clashes between guides)."""
        return []

    def on_start(self, task: "ReportGeneration") -> None:
        """Called before fit / validate / test / predict starts (a retriever builds its index)."""

    def on_validation_start(self, task: "ReportGeneration") -> None:
        """Called before each validation epoch, sanity check excluded (a findings guide tunes its thresholds)."""

    def forward(self, encoded: Encoded) -> Guidance:
        raise NotImplementedError


def project_tokens(tokens: torch.Tensor, projection: torch.nn.Module | None) -> torch.Tensor:
    return tokens if projection is None else projection(tokens)


def token_projection(token_dim: int, memory_dim: int | None) -> tuple[torch.nn.Module | None, int]:
    """Tokens of width `token_dim` joining a memory of `memory_dim`: a linear map when the widths
    differ, and the memory width after joining (the tokens' own when the memory is empty)."""
    if memory_dim is None or memory_dim == token_dim:
        return None, token_dim
    return torch.nn.Linear(token_dim, memory_dim), memory_dim
