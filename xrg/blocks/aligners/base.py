"""Aligner contract: visual tokens `[B, N, D_in]` -> `[B, M, D_out]`.

A projector keeps N tokens; a Q-Former returns M learned-query tokens. The input width D_in is
bound by the task from the image encoder (`bind_input`), never typed in a recipe; `out_dim` is
what the next block (guides, decoder) is bound to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from xrg.blocks.encoders.base import Block, Features


class Aligner(Block, ABC):
    out_dim: int
    in_dim: int | None = None

    def bind_input(self, dim: int) -> None:
        """Called by the task with the width of the visual tokens it will pass in."""
        if self.in_dim != dim:
            self.in_dim = dim
            self._build_input_layers(dim)

    @abstractmethod
    def _build_input_layers(self, dim: int) -> None:
        """Create the layers that read visual tokens of width `dim`."""

    @abstractmethod
    def forward(self, features: Features) -> Features: ...

    def objective_only_parameters(self) -> list:
        """Parameters only the aligner's own pretraining objectives use (none by default). A task
        that reads only `forward` freezes them: they get no gradient there, and DDP refuses
        trainable parameters that the loss never reached."""
        return []
