"""Disease-clue contracts (TRRG): perceived diseases -> clue embeddings -> fused visual tokens.

- `ClueInjector`: per-disease probabilities `[B, K]` and prompt embeddings `[K, 2, E]`
  (positive, negative; from `ZeroShotDiseasePerception.prompt_embeddings()`) -> clues `[B, K, D]`.
- `ClueInteraction`: visual `Features` + clues `[B, K, D]` -> fused `Features` for a decoder.
Both work for any K: nothing in them is sized by the number of diseases. Input widths are bound
by the owning task (`bind`), as a decoder's memory width is, so recipes state only their own sizes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from xrg.blocks.encoders.base import Block, Features


class ClueInjector(Block, ABC):
    out_dim: int

    @abstractmethod
    def bind(self, prompt_dim: int) -> None:
        """Create the layers that read prompt embeddings of width `prompt_dim`."""

    @abstractmethod
    def forward(self, probs: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """`[B, K]` probabilities, `[K, 2, E]` prompts -> clue embeddings `[B, K, out_dim]`."""


class ClueInteraction(Block, ABC):
    out_dim: int

    @abstractmethod
    def bind(self, visual_dim: int, clue_dim: int) -> None:
        """Create the layers that read visual tokens and clues of these widths."""

    @abstractmethod
    def forward(self, visual: Features, clues: torch.Tensor) -> Features:
        """Visual tokens `[B, N, Dv]` (+ pooled, mask) and clues `[B, K, Dc]` -> fused Features.

        The fused tokens carry the K clue tokens last, so `tokens[:, -K:]` are the clues after
        interaction (what a consistency head reads). The visual tokens come first, in their
        views' places, and `appended` counts every token after them (a decoder's `memory_grid`
        positions only the views' tokens)."""
