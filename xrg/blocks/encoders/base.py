"""Encoder contracts. Any image encoder can stand in for any other, likewise text encoders."""

from __future__ import annotations

from abc import ABC, abstractmethod
import torch
from torch import nn

from xrg.blocks.base import Block, Features
from xrg.data.tokenizers import Tokenizer


class ImageEncoder(Block, ABC):
    """images `[B, V, C, H, W]` (V views) -> tokens `[B, V*n, D]`, pooled `[B, D]`.

    Subclasses encode one image batch `[B', C, H, W]` in `encode_images`; this base folds the
    views into the batch, lays the views' tokens side by side (R2Gen's multi-view concatenation)
    and averages the pooled vectors of the real views, so `dim` does not depend on V.

    `channels_last`: the image batch is handed to `encode_images` in NHWC layout (timm's
    `--channels-last`). Only the input changes; the weights stay contiguous (checkpoints are
    unchanged) and a convolution given an NHWC input keeps that layout through the network, where
    oneDNN's kernels and max pooling run faster on a CPU (benchmarks/channels_last.py).
    """

    dim: int
    channels_last: bool = False

    @abstractmethod
    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[B', C, H, W]` -> (tokens `[B', n, D]`, pooled `[B', D]`)."""

    def cam_layer(self) -> nn.Module | None:
        """The module whose output is the last spatial feature map, where Grad-CAM reads a finding
        (`xrg.explain`): `[B', C, h, w]`, or tokens `[B', N, D]` on a square grid after any class
        tokens. Transformers give the block before the last, so gradients reach the patch tokens
        through the last attention even when the pooled vector is the class token. None: no heatmaps."""
        return None

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None) -> Features:
        if images.dim() == 4:
            images = images.unsqueeze(1)
        batch, views = images.shape[:2]
        flat = images.flatten(0, 1)
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        tokens, pooled = self.encode_images(flat)
        tokens = tokens.unflatten(0, (batch, views))  # [B, V, n, D]
        pooled = pooled.unflatten(0, (batch, views))  # [B, V, D]
        if view_mask is None:
            view_mask = torch.ones(batch, views, dtype=torch.bool, device=images.device)
        weights = view_mask.to(pooled.dtype).unsqueeze(-1)
        pooled = (pooled * weights).sum(1) / weights.sum(1).clamp_min(1)
        return Features(tokens.flatten(1, 2), pooled, view_token_mask(view_mask, tokens.shape[2]), views)


def view_token_mask(view_mask: torch.Tensor, tokens_per_view: int) -> torch.Tensor:
    """view_mask `[B, V]` -> the mask `[B, V*n]` of the views' tokens laid side by side."""
    return view_mask.unsqueeze(-1).expand(-1, -1, tokens_per_view).flatten(1)


class TextEncoder(Block, ABC):
    """strings -> tokens `[B, T, D]`, pooled `[B, D]`, mask; exposes `dim` and its `tokenizer`."""

    dim: int
    tokenizer: Tokenizer

    @abstractmethod
    def forward(self, texts: list[str]) -> Features: ...
