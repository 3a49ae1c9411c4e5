"""`DiseaseClueInjector`: the perceived state of each disease as one embedding (TRRG's injection).

A clue mixes the disease's positive and negative prompt embeddings by its probability, so an
absent disease still yields an informative clue ("no pneumothorax") that the decoder can state:
    clue_k = MLP([p_k t+_k + (1 - p_k) t-_k ; t+_k ; p_k])
The positive prompt is appended as the disease's identity, which a mixture near p = 0 would
otherwise lose, and p_k itself gives the confidence. Weights are shared over diseases, hence K-free.
"""

from __future__ import annotations

import torch
from torch import nn

from xrg.blocks.clues.base import ClueInjector


class DiseaseClueInjector(ClueInjector):
    def __init__(self, dim: int = 256, hidden_dim: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.out_dim = dim
        self.hidden_dim = hidden_dim or dim
        self.dropout = dropout
        self.mlp: nn.Sequential | None = None

    def bind(self, prompt_dim: int) -> None:
        if self.mlp is None or self.mlp[0].in_features != 2 * prompt_dim + 1:
            self.mlp = nn.Sequential(
                nn.Linear(2 * prompt_dim + 1, self.hidden_dim),
                nn.GELU(),
                nn.Dropout(self.dropout),
                nn.Linear(self.hidden_dim, self.out_dim),
                nn.LayerNorm(self.out_dim),
            ).train(self.training)  # bound after .eval(): new dropout must not switch back on

    def forward(self, probs: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        if self.mlp is None:
            raise RuntimeError("DiseaseClueInjector.bind(prompt_dim) was never called")
        if probs.shape[1] != prompt_embeddings.shape[0]:
            raise ValueError(f"{probs.shape[1]} probabilities per study but {prompt_embeddings.shape[0]} diseases' prompts")
        positive, negative = prompt_embeddings[:, 0], prompt_embeddings[:, 1]  # [K, E]
        p = probs.unsqueeze(-1).to(positive.dtype)  # [B, K, 1]
        mixed = p * positive + (1 - p) * negative  # [B, K, E]
        identity = positive.expand_as(mixed)
        return self.mlp(torch.cat([mixed, identity, p], dim=-1))
