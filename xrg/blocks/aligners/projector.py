"""Projectors: map each visual token into another width (LLaVA-style linear or MLP)."""

from __future__ import annotations

from torch import nn

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.encoders.base import Features


class MLPProjector(Aligner):
    """`layers=1` is a linear projection; more layers insert GELUs between linear maps."""

    def __init__(self, in_dim: int, out_dim: int, layers: int = 2) -> None:
        super().__init__()
        self.out_dim = out_dim
        modules: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(layers - 1):
            modules += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.net = nn.Sequential(*modules)

    def forward(self, features: Features) -> Features:
        return Features(self.net(features.tokens), self.net(features.pooled), features.mask)
