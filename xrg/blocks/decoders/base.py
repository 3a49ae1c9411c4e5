"""The decoder contract: `loss(memory, targets)` and `generate(memory)` on plain strings.

A decoder owns its tokenizer (see `VocabularyOwner`): a word vocabulary is fitted on the
training reports in `prepare()`, and the tokenizer travels inside every checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from xrg.blocks.base import Features, VocabularyOwner
from xrg.data.tokenizers import Tokenizer


class Decoder(VocabularyOwner, ABC):
    takes_prompts = False  # whether `loss` / `generate` read text prompts (an LLM) or memory only

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.memory_dim: int | None = None

    def _finish_init(self, memory_dim: int | None) -> None:
        """End of a subclass's __init__: build now whatever is already known."""
        if memory_dim is not None:
            self.bind_memory(memory_dim)
        if self.tokenizer.is_fitted:
            self._build_vocab_layers()

    def bind_memory(self, memory_dim: int) -> None:
        """Called by the task with the width of the visual tokens it will pass as memory."""
        if self.memory_dim != memory_dim:
            self.memory_dim = memory_dim
            self._build_memory_layers(memory_dim)

    def _build_memory_layers(self, memory_dim: int) -> None:
        """Create the projection of visual memory into the decoder (if the decoder has one)."""

    @abstractmethod
    def loss(self, memory: Features, targets: list[str], prompts: list[str] | None = None) -> torch.Tensor:
        """Mean token NLL of `targets` given the visual `memory` (and optional text prompts)."""

    @abstractmethod
    def generate(self, memory: Features, prompts: list[str] | None = None, **overrides: Any) -> list[str]:
        """One report per study."""
