"""Fewer visual tokens for the decoder: each view's square feature map average-pooled to a coarser grid.

An encoder run at a fine output stride (timm's `output_stride: 8`) keeps thin and small findings
(a plate of atelectasis, a nodule) in cells of their own, which a findings head reading every cell
needs (`FindingsClassifier(spatial)`); the decoder does not, and its attention over 2 x 16 x 16
tokens cost more than the rest of the model together (docs/quality.md, section 8). Guides read the
image encoder's features before the aligner, so the head keeps the fine grid while the decoder
reads `grid x grid` tokens per view.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.encoders.base import Features
from xrg.data.errors import ConfigError


class GridPool(Aligner):
    """tokens `[B, V*h*w, D]` (V views of an h x w map, h == w) -> `[B, V*grid*grid, D]`; pooled unchanged."""

    def __init__(self, grid: int = 4) -> None:
        super().__init__()
        if grid < 1:
            raise ValueError(f"grid is the pooled map's side in cells, >= 1, got {grid}")
        self.grid = grid

    def _build_input_layers(self, dim: int) -> None:
        self.out_dim = dim  # pooling keeps the width; nothing to learn

    def forward(self, features: Features) -> Features:
        batch, count, dim = features.tokens.shape
        views = features.views
        side = math.isqrt(count // views)
        if side * side * views != count:
            # a recipe pairing GridPool with such an encoder: `xrg` prints this one line
            raise ConfigError(f"GridPool reads square feature maps: {count} tokens are not {views} view(s) of a "
                             f"side x side map (a ViT's class token, or a text encoder, cannot be pooled)")
        maps = features.tokens.reshape(batch * views, side, side, dim).permute(0, 3, 1, 2)
        tokens = F.adaptive_avg_pool2d(maps, self.grid).flatten(2).transpose(1, 2).reshape(batch, -1, dim)
        mask = None
        if features.mask is not None:  # a view's cells are all real or all padding
            per_view = features.mask.reshape(batch, views, side * side)[:, :, :1]
            mask = per_view.expand(-1, -1, self.grid * self.grid).reshape(batch, -1)
        return Features(tokens, features.pooled, mask, views)
