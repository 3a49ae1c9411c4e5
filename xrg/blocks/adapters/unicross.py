"""UniCrossAdapter (arXiv 2503.15940): visual, textual and cross-modal adapters between frozen
CLIP towers, and `UniCrossEncoder`, the image encoder it makes of them.

    image tower  ──stage──stage──●──stage──●──stage──●──> maps at each ● ─┐
                                 │         │         │                    ├─ neck ─> tokens
    text tower   ──blocks───────●──blocks─●──blocks─●──> sentence ───────┘
                                 ● = bridge stage: both streams down to a small width, each
                                     attends to the other, back up as residuals

Each bridge stage projects the visual map (resampled to one `grid`) and the text tokens down to
`bottleneck` channels, adds the previous stage's bottleneck tokens (normalised), runs two
interactors (visual reads text, text reads visual) and writes both results back up as residuals
into the frozen streams. The neck gates each stage's map by the sentence embedding and fuses them.

What the text stream reads: a fixed `prompt`, identical in training and generation. The reference
code fed the ground-truth report (as word-vocabulary ids) into CLIP's text tower, so the visual
memory had seen the future words it was asked to predict; here the memory depends on the image
(and the fixed prompt) only, and the prompt is tokenized by CLIP's own BPE tokenizer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from xrg.blocks.adapters.base import Adapter
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.blocks.encoders.open_clip_encoders import OpenClipImageEncoder, OpenClipTextEncoder


def resample(in_channels: int, out_channels: int, in_grid: int, out_grid: int) -> nn.Module:
    """A strided conv (shrinking), transposed conv (growing) or 1x1 conv between two square grids."""
    if in_grid > out_grid and in_grid % out_grid == 0:
        ratio = in_grid // out_grid
        return nn.Conv2d(in_channels, out_channels, ratio, stride=ratio, bias=False)
    if in_grid < out_grid and out_grid % in_grid == 0:
        ratio = out_grid // in_grid
        return nn.ConvTranspose2d(in_channels, out_channels, ratio, stride=ratio, bias=False)
    if in_grid == out_grid:
        return nn.Conv2d(in_channels, out_channels, 1, bias=False)
    raise ValueError(f"cannot resample a {in_grid}x{in_grid} map to {out_grid}x{out_grid}: one must divide the other")


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Interactor(nn.Module):
    """Post-norm self-attention, cross-attention onto the other stream, FFN (the paper's layer)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        other: torch.Tensor,
        x_padding: torch.Tensor | None = None,
        other_padding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        attended = self.self_attn(x, x, x, key_padding_mask=x_padding, need_weights=False)[0]
        x = self.norms[0](x + self.dropout(attended))
        attended = self.cross_attn(x, other, other, key_padding_mask=other_padding, need_weights=False)[0]
        x = self.norms[1](x + self.dropout(attended))
        return self.norms[2](x + self.dropout(self.ffn(x)))


class BridgeStage(nn.Module):
    """One cross-modal fusion point: down-project both streams, interact, up-project residuals."""

    def __init__(self, map_shape: tuple[int, int, int], text_dim: int, bottleneck: int, grid: int,
                 heads: int, ffn_dim: int, dropout: float, first: bool) -> None:
        super().__init__()
        channels, map_grid, _ = map_shape
        self.visual_down = resample(channels, bottleneck, map_grid, grid)
        self.visual_up = resample(bottleneck, channels, grid, map_grid)
        self.text_down = nn.Linear(text_dim, bottleneck)
        self.text_up = nn.Linear(bottleneck, text_dim)
        # Later stages add the previous stage's bottleneck tokens: a path that skips the towers.
        self.visual_norm = None if first else nn.LayerNorm(bottleneck)
        self.text_norm = None if first else nn.LayerNorm(bottleneck)
        self.visual_reads_text = Interactor(bottleneck, heads, ffn_dim, dropout)
        self.text_reads_visual = Interactor(bottleneck, heads, ffn_dim, dropout)

    def forward(
        self,
        visual_map: torch.Tensor,
        text: torch.Tensor,
        text_padding: torch.Tensor | None,
        previous: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        v = self.visual_down(visual_map)
        grid = v.shape[-2:]
        v = v.flatten(2).transpose(1, 2)  # [B, grid*grid, bottleneck]
        t = self.text_down(text)
        if previous is not None:
            v, t = self.visual_norm(v + previous[0]), self.text_norm(t + previous[1])
        # Both interactors read the other stream as it was before this stage (simultaneous update).
        new_v = self.visual_reads_text(v, t, other_padding=text_padding)
        new_t = self.text_reads_visual(t, v, x_padding=text_padding)
        visual_delta = self.visual_up(new_v.transpose(1, 2).unflatten(2, grid))
        return visual_delta, self.text_up(new_t), (v, t)


class UniCrossAdapter(Adapter):
    """Bridge stages after image stages `image_points` and text blocks `text_points` (1-based,
    paired in order). Defaults are the paper's for CLIP RN101: after layer2/3/4 and text blocks
    4/8/12, bottleneck 64 on a 14x14 grid, 4 heads, FFN 128, dropout 0.1. For a ViT tower the
    image points count transformer blocks (e.g. [4, 8, 12]). `grid` defaults to the grid of the
    middle insertion point."""

    def __init__(
        self,
        bottleneck: int = 64,
        heads: int = 4,
        ffn_dim: int = 128,
        dropout: float = 0.1,
        image_points: Sequence[int] = (2, 3, 4),
        text_points: Sequence[int] = (4, 8, 12),
        grid: int | None = None,
    ) -> None:
        super().__init__()
        if len(image_points) != len(text_points) or not image_points:
            raise ValueError(f"image_points {list(image_points)} and text_points {list(text_points)} "
                             "must pair up one to one")
        for name, points in (("image_points", image_points), ("text_points", text_points)):
            if list(points) != sorted(set(points)) or points[0] < 1:
                raise ValueError(f"{name} must be increasing 1-based stage numbers, got {list(points)}")
        self.bottleneck, self.heads, self.ffn_dim, self.dropout = bottleneck, heads, ffn_dim, dropout
        self.image_points, self.text_points = list(image_points), list(text_points)
        self.grid = grid
        self.stages: nn.ModuleList | None = None
        self.map_shapes: list[tuple[int, int, int]] = []

    def attach(self, image_encoder: OpenClipImageEncoder, text_encoder: OpenClipTextEncoder) -> None:
        shapes = image_encoder.stage_shapes()
        if self.image_points[-1] > len(shapes) or self.text_points[-1] > len(text_encoder.stages):
            raise ValueError(f"insertion points {self.image_points} / {self.text_points} exceed the towers' "
                             f"{len(shapes)} image stages / {len(text_encoder.stages)} text blocks")
        self.map_shapes = [shapes[p - 1] for p in self.image_points]
        if self.grid is None:
            self.grid = self.map_shapes[len(self.map_shapes) // 2][1]
        self.stages = nn.ModuleList(
            BridgeStage(shape, text_encoder.width, self.bottleneck, self.grid, self.heads, self.ffn_dim,
                        self.dropout, first=i == 0)
            for i, shape in enumerate(self.map_shapes)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # The reference initialisation: small normal linears, He-normal convolutions.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(
        self,
        image_encoder: OpenClipImageEncoder,
        text_encoder: OpenClipTextEncoder,
        images: torch.Tensor,
        ids: torch.Tensor,
    ) -> tuple[list[torch.Tensor], Features]:
        """Run both towers with the bridges in between -> (visual map at each point, text features)."""
        if self.stages is None:
            raise RuntimeError("UniCrossAdapter.attach(image_encoder, text_encoder) has not been called")
        state, text = image_encoder.embed(images), text_encoder.embed(ids)
        padding = ids == text_encoder.tokenizer.pad_id
        padding = padding if padding.any() else None
        done_image = done_text = 0
        previous, maps = None, []
        for bridge, image_point, text_point in zip(self.stages, self.image_points, self.text_points):
            for index in range(done_image, image_point):
                state = image_encoder.run_stage(index, state)
            for index in range(done_text, text_point):
                text = text_encoder.run_stage(index, text)
            done_image, done_text = image_point, text_point
            visual_delta, text_delta, previous = bridge(image_encoder.feature_map(state), text, padding, previous)
            state = image_encoder.add_to_map(state, visual_delta)
            text = text + text_delta
            maps.append(image_encoder.feature_map(state))
        # Image stages past the last point feed nothing; the text's last blocks make the sentence.
        for index in range(done_text, len(text_encoder.stages)):
            text = text_encoder.run_stage(index, text)
        return maps, text_encoder.finish(text, ids)


class UniCrossNeck(nn.Module):
    """Each stage's map -> `dim` channels on the bridge grid, gated by the sentence embedding,
    concatenated and fused by convolutions (a 1x1, then 3x3 over the map + its x/y coordinates,
    then 3x3). The paper gates by cross-attention onto the single sentence vector; with one key
    the attention weights are all 1, so that is exactly a linear map of the sentence."""

    def __init__(self, map_shapes: list[tuple[int, int, int]], sentence_dim: int, dim: int, grid: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(
            nn.Sequential(resample(c, dim, g, grid), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
            for c, g, _ in map_shapes
        )
        self.gates = nn.ModuleList(nn.Linear(sentence_dim, dim) for _ in map_shapes)
        self.aggregate = conv_bn_relu(len(map_shapes) * dim, dim)
        self.coord_conv = conv_bn_relu(dim + 2, dim, 3)
        self.smooth = conv_bn_relu(dim, dim, 3)

    def forward(self, maps: list[torch.Tensor], sentence: torch.Tensor) -> torch.Tensor:
        gated = [proj(m) * gate(sentence)[:, :, None, None] for proj, gate, m in zip(self.project, self.gates, maps)]
        x = self.aggregate(torch.cat(gated, dim=1))
        batch, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device),
                                indexing="ij")
        coords = torch.stack([xs, ys]).to(x.dtype).expand(batch, -1, -1, -1)
        return self.smooth(self.coord_conv(torch.cat([x, coords], dim=1)))


class UniCrossEncoder(ImageEncoder):
    """CLIP image + text towers joined by a `UniCrossAdapter`, as one image encoder.

    images -> tokens `[B, V*grid*grid, dim]` (the neck's map per view), pooled = their mean.
    Plugs into `ReportGeneration` as `image_encoder`; give the decoder `memory_grid: [grid, grid]`
    for the paper's 2-D positions and CLS token on the memory.
    """

    def __init__(
        self,
        image_encoder: OpenClipImageEncoder,
        text_encoder: OpenClipTextEncoder,
        adapter: UniCrossAdapter,
        prompt: str = "a chest x-ray",
        dim: int = 512,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        # NHWC images for a ResNet tower (ImageEncoder); the wrapped encoder's own flag is not read,
        # since this encoder runs the tower's stages itself
        self.channels_last = channels_last
        self.image_encoder, self.text_encoder, self.adapter = image_encoder, text_encoder, adapter
        self.prompt = prompt
        adapter.attach(image_encoder, text_encoder)
        self.neck = UniCrossNeck(adapter.map_shapes, text_encoder.dim, dim, adapter.grid)
        self.dim = dim

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.text_encoder.tokenize([self.prompt]).expand(images.shape[0], -1)
        maps, text = self.adapter(self.image_encoder, self.text_encoder, images, ids)
        fused = self.neck(maps, text.pooled)
        tokens = fused.flatten(2).transpose(1, 2)
        return tokens, tokens.mean(dim=1)
