"""`MultiGranularClueInteraction`: visual tokens and K disease clues attend to each other.

Two granularities, as TRRG describes: patch tokens (local evidence) and the pooled image
(global impression). Each layer, pre-norm with residuals:
  1. clues read the image: clue queries over [global; patches]  (where is the evidence?)
  2. patches read the clues                                     (which disease is this region?)
  3. the global token reads the clues                           (what is the overall picture?)
  4. one feed-forward over every token.
The decoder gets [patches; global; clues] as memory, so it can copy a clue's state directly
and still look at the image. The patches keep their views' places (a decoder's `memory_grid`
positions them); the global token and the clues count as appended after them, as any guide's
tokens do. Visual masks (padded views) are respected throughout.
"""

from __future__ import annotations

import torch
from torch import nn

from xrg.blocks.clues.base import ClueInteraction
from xrg.blocks.encoders.base import Features


class _Attend(nn.Module):
    """Pre-norm cross-attention with a residual: x + attn(norm(x), norm(context))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.query_norm, self.context_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        context = self.context_norm(context)
        attended, _ = self.attention(self.query_norm(x), context, context, key_padding_mask=padding, need_weights=False)
        return x + self.dropout(attended)


class _InteractionLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.clues_read_image = _Attend(dim, heads, dropout)
        self.patches_read_clues = _Attend(dim, heads, dropout)
        self.global_reads_clues = _Attend(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))

    def forward(self, glob, patches, clues, padding):
        image = torch.cat([glob, patches], dim=1)
        image_padding = None if padding is None else torch.cat([padding.new_zeros(len(padding), 1), padding], dim=1)
        clues = self.clues_read_image(clues, image, image_padding)
        patches = self.patches_read_clues(patches, clues)
        glob = self.global_reads_clues(glob, clues)
        tokens = torch.cat([glob, patches, clues], dim=1)
        tokens = tokens + self.ffn(self.ffn_norm(tokens))
        n = patches.shape[1]
        return tokens[:, :1], tokens[:, 1:1 + n], tokens[:, 1 + n:]


class MultiGranularClueInteraction(ClueInteraction):
    def __init__(self, dim: int = 256, heads: int = 4, layers: int = 1, ffn_dim: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.out_dim = dim
        self.visual_in: nn.Linear | None = None
        self.clue_in: nn.Linear | None = None
        self.layers = nn.ModuleList(_InteractionLayer(dim, heads, ffn_dim or 2 * dim, dropout) for _ in range(layers))
        self.out_norm = nn.LayerNorm(dim)

    def bind(self, visual_dim: int, clue_dim: int) -> None:
        if self.visual_in is None or self.visual_in.in_features != visual_dim:
            self.visual_in = nn.Linear(visual_dim, self.out_dim)
        if self.clue_in is None or self.clue_in.in_features != clue_dim:
            self.clue_in = nn.Linear(clue_dim, self.out_dim)

    def forward(self, visual: Features, clues: torch.Tensor) -> Features:
        if self.visual_in is None or self.clue_in is None:
            raise RuntimeError("MultiGranularClueInteraction.bind(visual_dim, clue_dim) was never called")
        patches = self.visual_in(visual.tokens)
        glob = self.visual_in(visual.pooled).unsqueeze(1)
        clues = self.clue_in(clues)
        padding = None if visual.mask is None else ~visual.mask
        for layer in self.layers:
            glob, patches, clues = layer(glob, patches, clues, padding)
        tokens = self.out_norm(torch.cat([patches, glob, clues], dim=1))
        batch, n, k = len(tokens), patches.shape[1], clues.shape[1]
        real_patches = visual.mask if visual.mask is not None else tokens.new_ones(batch, n, dtype=torch.bool)
        ones = real_patches.new_ones(batch, 1)
        mask = torch.cat([real_patches, ones, ones.expand(batch, k)], dim=1)
        return Features(tokens, tokens[:, n], mask, views=visual.views, appended=visual.appended + 1 + k)
