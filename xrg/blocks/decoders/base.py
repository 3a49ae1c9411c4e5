"""The decoder contract: `loss(memory, targets)` and `generate(memory)` on plain strings.

A decoder owns its tokenizer. A word vocabulary is fitted on the training reports in
`prepare()`, and the tokenizer's state is module *extra state*, so it is written into every
state_dict / checkpoint and restored by `load_state_dict` before the vocabulary-sized layers
load: a checkpoint alone rebuilds the decoder, no annotation file needed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable

import torch

from xrg.blocks.encoders.base import Block, Features
from xrg.data.tokenizers import Tokenizer, tokenizer_from_state


class Decoder(Block, ABC):
    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.memory_dim: int | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def bind_memory(self, memory_dim: int) -> None:
        """Called by the task with the width of the visual tokens it will pass as memory."""
        if self.memory_dim != memory_dim:
            self.memory_dim = memory_dim
            self._build_memory_layers(memory_dim)

    def prepare(self, train_reports: Iterable[str]) -> None:
        """Fit the tokenizer if it needs data, then build the layers sized by its vocabulary."""
        if not self.tokenizer.is_fitted:
            self.tokenizer.fit(train_reports)
        if not self.is_built:
            self._build_vocab_layers()

    @property
    @abstractmethod
    def is_built(self) -> bool:
        """Whether the vocabulary-sized layers exist."""

    def _build_memory_layers(self, memory_dim: int) -> None:
        """Create the projection of visual memory into the decoder (if the decoder has one)."""

    def _build_vocab_layers(self) -> None:
        """Create the layers whose size depends on the tokenizer (if the decoder has any)."""

    # --- the contract ----------------------------------------------------------------------
    @abstractmethod
    def loss(self, memory: Features, targets: list[str], prompts: list[str] | None = None) -> torch.Tensor:
        """Mean token NLL of `targets` given the visual `memory` (and optional text prompts)."""

    @abstractmethod
    def generate(self, memory: Features, prompts: list[str] | None = None, **overrides: Any) -> list[str]:
        """One report per study."""

    # --- the tokenizer travels with the weights --------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        restored = tokenizer_from_state(state["tokenizer"])
        if not restored.is_fitted:
            return
        if self.is_built and self.tokenizer.state_dict() != restored.state_dict():
            raise ValueError(
                "the checkpoint's tokenizer differs from this decoder's already-built vocabulary; "
                "load the checkpoint into a fresh model instead"
            )
        self.tokenizer = restored
        if not self.is_built:
            self._build_vocab_layers()
