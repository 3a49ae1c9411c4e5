"""Projectors: map each visual token into another width (LLaVA-style linear or MLP)."""

from __future__ import annotations

from torch import nn

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.encoders.base import Features


class MLPProjector(Aligner):
    """`layers=1` is a linear projection; more layers insert GELUs between linear maps."""

    def __init__(self, out_dim: int, layers: int = 2, in_dim: int | None = None) -> None:
        super().__init__()
        self.out_dim, self.layers = out_dim, layers
        self.net: nn.Module | None = None
        if in_dim is not None:
            self.bind_input(in_dim)

    def _build_input_layers(self, dim: int) -> None:
        modules: list[nn.Module] = [nn.Linear(dim, self.out_dim)]
        for _ in range(self.layers - 1):
            modules += [nn.GELU(), nn.Linear(self.out_dim, self.out_dim)]
        self.net = nn.Sequential(*modules)

    def forward(self, features: Features) -> Features:
        return features._replace(tokens=self.net(features.tokens), pooled=self.net(features.pooled))
