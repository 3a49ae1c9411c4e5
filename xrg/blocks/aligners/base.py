"""Aligner contract: visual tokens `[B, N, D_in]` -> `[B, M, D_out]`.

A projector keeps N tokens; a Q-Former returns M learned-query tokens. `out_dim` is what the
next block (decoder, LLM) is bound to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from xrg.blocks.encoders.base import Block, Features


class Aligner(Block, ABC):
    out_dim: int

    @abstractmethod
    def forward(self, features: Features) -> Features: ...
