"""open_clip towers as xrg encoders, with stage-wise access so adapters can work between stages.

Both encoders build the model with `open_clip.create_model(model_name, pretrained=...)`, so
`pretrained` is an open_clip tag ("openai") or a local checkpoint file, loaded by open_clip's
own (strict) path. Each encoder builds the whole CLIP once and keeps only its own tower.
`model_config` replaces parts of the named config (e.g. a tiny `vision_cfg`
and `text_cfg` for CPU runs), which is how a size changes by config alone.

Each tower is cut into `stages` that an adapter can run one at a time:
- image: ResNet -> stem, then layer1..layer4; ViT -> patch embedding, then each block.
  `feature_map(state)` shows a stage's state as `[B, C, h, w]`; `add_to_map(state, delta)`
  writes a residual back, so one adapter serves both families.
- text: token + position embedding, then each transformer block, then the final norm/pool.

A frozen tower stays in eval mode even while the task trains, so a frozen ResNet's BatchNorm
running statistics never move.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Iterable

import torch
from torch import nn

from xrg.blocks.encoders.base import Features, ImageEncoder, TextEncoder
from xrg.data.tokenizers.base import Tokenizer


def create_clip(model_name: str, pretrained: str | None, model_config: dict[str, Any] | None) -> nn.Module:
    import open_clip

    # The config's keys (embed_dim, vision_cfg, text_cfg, quick_gelu) are constructor arguments
    # of the CLIP class; open_clip applies keyword overrides after reading the named config.
    return open_clip.create_model(model_name, pretrained=pretrained, **(model_config or {}))


class _FrozenTower:
    """Freezing that means it: no gradients, and no statistics updates (eval mode) either.

    `train_params` lists glob patterns of parameter names that stay trainable inside a frozen
    tower (the UniCrossAdapter paper trains CLIP's positional embeddings only).
    """

    tower: nn.Module
    frozen: bool

    def _apply_freezing(self, frozen: bool, train_params: Iterable[str]) -> None:
        self.frozen = frozen
        if not frozen:
            return
        patterns = list(train_params)
        for name, parameter in self.tower.named_parameters():
            parameter.requires_grad_(any(fnmatch.fnmatch(name, p) for p in patterns))
        self.tower.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.tower.eval()
        return self


class OpenClipImageEncoder(_FrozenTower, ImageEncoder):
    """An open_clip image tower (ModifiedResNet or VisionTransformer).

    pooled: CLIP's image embedding (attention pool / class token + projection). tokens: CLIP's
    dense embeddings, each location of the last stage through the same projection (ResNet: the
    attention pool's value and output projections; ViT: `ln_post` and `proj`; MaskCLIP's dense
    features), so tokens and pooled share one space of width `dim` and a head that scores the
    pooled vector scores every token alike. Adapters read the stages (`stage_shapes`) instead.
    """

    def __init__(
        self,
        model_name: str = "RN50",
        pretrained: str | None = None,
        frozen: bool = False,
        train_params: list[str] | None = None,
        model_config: dict[str, Any] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last  # NHWC images for a ResNet tower (ImageEncoder)
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        self.tower = create_clip(model_name, pretrained, model_config).visual
        if isinstance(self.tower, ModifiedResNet):
            self.family = "resnet"
        elif isinstance(self.tower, VisionTransformer):
            self.family = "vit"
            if not self.tower.transformer.batch_first:
                raise ValueError(f"{model_name}: expected a batch-first open_clip VisionTransformer")
        else:
            raise ValueError(f"{model_name}: image tower {type(self.tower).__name__} is neither an open_clip "
                             "ModifiedResNet nor VisionTransformer (timm towers are not supported)")
        self.dim = self._embedding_width()
        self._apply_freezing(frozen, train_params or [])

    # --- stages, for adapters ---------------------------------------------------------------
    @property
    def stages(self) -> list[nn.Module]:
        t = self.tower
        return [t.layer1, t.layer2, t.layer3, t.layer4] if self.family == "resnet" else list(t.transformer.resblocks)

    def stage_shapes(self) -> list[tuple[int, int, int]]:
        """(channels, h, w) of each stage's feature map at the tower's configured image size."""
        t = self.tower
        if self.family == "resnet":
            size = t.image_size if isinstance(t.image_size, int) else t.image_size[0]
            width = t.layer1[0].conv1.in_channels  # the stem's output width
            # Bottleneck expansion 4; layer i halves the grid after the first (stem: /4).
            return [(width * 4 * 2**i, size // (4 * 2**i), size // (4 * 2**i)) for i in range(4)]
        h, w = t.grid_size
        return [(t.transformer.width, h, w)] * len(t.transformer.resblocks)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The state before the first stage (ViT: class token + patch tokens)."""
        t = self.tower
        if self.family == "resnet":
            return t.stem(images.to(t.conv1.weight.dtype))
        x = t.conv1(images).flatten(2).transpose(1, 2)
        cls = t.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + t.positional_embedding.to(x.dtype)
        return t.ln_pre(t.patch_dropout(x))

    def run_stage(self, index: int, state: torch.Tensor) -> torch.Tensor:
        return self.stages[index](state)

    def feature_map(self, state: torch.Tensor) -> torch.Tensor:
        if self.family == "resnet":
            return state
        h, w = self.tower.grid_size
        return state[:, 1:].transpose(1, 2).unflatten(2, (h, w))

    def add_to_map(self, state: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        if self.family == "resnet":
            return state + delta
        patches = state[:, 1:] + delta.flatten(2).transpose(1, 2)
        return torch.cat([state[:, :1], patches], dim=1)

    def finish(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stage's state -> (tokens, pooled), both in CLIP's embedding space."""
        t = self.tower
        if self.family == "resnet":
            pool = t.attnpool  # each location as the pool's value sees it (its position added), projected
            locations = state.flatten(2).transpose(1, 2) + pool.positional_embedding[1:].to(state.dtype)
            return pool.c_proj(pool.v_proj(locations)), pool(state)
        pooled, _ = t._pool(state)
        tokens = t.ln_post(state[:, 1:])
        if t.proj is not None:
            pooled, tokens = pooled @ t.proj, tokens @ t.proj
        return tokens, pooled

    def cam_layer(self) -> nn.Module:
        stages = self.stages
        return stages[-1] if self.family == "resnet" or len(stages) == 1 else stages[-2]

    def _embedding_width(self) -> int:
        t = self.tower
        if self.family == "resnet":
            return t.attnpool.c_proj.out_features
        return t.proj.shape[1] if t.proj is not None else t.transformer.width

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.embed(images)
        for index in range(len(self.stages)):
            state = self.run_stage(index, state)
        return self.finish(state)


class ClipTokenizer(Tokenizer):
    """CLIP's byte-pair tokenizer (open_clip's `SimpleTokenizer`, vocabulary shipped in the wheel).

    Its state is the context length only: the vocabulary file is part of open_clip itself.
    Padding is id 0 and the end-of-text id is the largest, which CLIP's argmax pooling relies on.
    """

    def __init__(self, context_length: int = 77) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        self.bos_id, self.eos_id, self.pad_id = self._bpe.sot_token_id, self._bpe.eot_token_id, 0

    @property
    def vocab_size(self) -> int:
        return len(self._bpe.encoder)

    def encode(self, text: str) -> list[int]:
        return self._bpe.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        kept = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                kept.append(i)
        return self._bpe.decode(kept).strip()

    def _state(self) -> dict[str, Any]:
        return {"context_length": self.context_length}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> "ClipTokenizer":
        return cls(state["context_length"])


class OpenClipTextEncoder(_FrozenTower, TextEncoder):
    """An open_clip text transformer; pooled = CLIP's text embedding (end-of-text token after
    `ln_final`, projected), tokens = every token through the same projection, both `dim` wide.
    `width` is the transformer's own (what adapters between its stages read). Texts longer than
    the context are truncated."""

    def __init__(
        self,
        model_name: str = "RN50",
        pretrained: str | None = None,
        frozen: bool = False,
        train_params: list[str] | None = None,
        model_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        clip = create_clip(model_name, pretrained, model_config)
        source = getattr(clip, "text", clip)  # CustomTextCLIP keeps the tower in `.text`
        if not hasattr(source, "token_embedding") or getattr(source, "cls_emb", None) is not None:
            raise ValueError(f"{model_name}: only open_clip's own causal text transformer is supported")
        if not source.transformer.batch_first:
            raise ValueError(f"{model_name}: expected a batch-first open_clip text transformer")
        self.tower = nn.Module()
        for name in ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection"):
            setattr(self.tower, name, getattr(source, name))
        self.register_buffer("causal_mask", source.attn_mask, persistent=False)
        self.pool_type = getattr(clip, "text_pool_type", getattr(source, "pool_type", "argmax"))
        self.tokenizer = ClipTokenizer(context_length=self.tower.positional_embedding.shape[0])
        self.width = self.tower.transformer.width
        projection = self.tower.text_projection
        self.dim = (projection.out_features if isinstance(projection, nn.Linear)
                    else self.width if projection is None else projection.shape[1])
        self._apply_freezing(frozen, train_params or [])

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.tower.transformer.resblocks)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer.batch_encode(texts, self.tokenizer.context_length)
        return ids.to(self.tower.positional_embedding.device)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tower.token_embedding(ids) + self.tower.positional_embedding[: ids.shape[1]]

    def run_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        mask = None if self.causal_mask is None else self.causal_mask[:length, :length]
        return self.stages[index](x, attn_mask=mask)

    def finish(self, x: torch.Tensor, ids: torch.Tensor) -> Features:
        tokens = self.tower.ln_final(x)
        rows = torch.arange(ids.shape[0], device=ids.device)
        if self.pool_type == "argmax":
            pooled = tokens[rows, ids.argmax(dim=-1)]
        elif self.pool_type == "eos":
            pooled = tokens[rows, (ids == self.tokenizer.eos_id).int().argmax(dim=-1)]
        elif self.pool_type in ("first", "last"):
            pooled = tokens[:, 0 if self.pool_type == "first" else -1]
        else:
            raise ValueError(f"unsupported text pool type {self.pool_type!r}")
        projection = self.tower.text_projection
        if isinstance(projection, nn.Linear):
            pooled, tokens = projection(pooled), projection(tokens)
        elif projection is not None:
            pooled, tokens = pooled @ projection, tokens @ projection
        return Features(tokens, pooled, ids != self.tokenizer.pad_id)

    def encode_ids(self, ids: torch.Tensor) -> Features:
        x = self.embed(ids)
        for index in range(len(self.stages)):
            x = self.run_stage(index, x)
        return self.finish(x, ids)

    def forward(self, texts: list[str]) -> Features:
        return self.encode_ids(self.tokenize(texts))
