"""Any Hugging Face vision model as an image encoder (ViT, Swin, DINOv2, RAD-DINO, CLIP vision).

    encoder = HFImageEncoder("microsoft/rad-dino")                     # a chest X-ray ViT
    encoder = HFImageEncoder(config={"model_type": "vit", "hidden_size": 32, ...})   # tiny, random

Images arrive already normalised by the data module; resize/normalisation of the model's own
processor is the recipe's business (set `image_size` and the mean/std there).

Named chest X-ray configurations (`NAMED_MODELS`), weights and config from the hub:
- `"rad-dino"` (microsoft/rad-dino): RAD-DINO, a DINOv2 ViT-B/14 trained on chest X-rays only;
  tokens = CLS + 37 x 37 patches of 768 at 518 px, pooled = the CLS after the final layer norm
  (`pooler_output`, as the model card's "CLS embedding"). Data settings: `image_size: 518`
  (resize 518, its processor centre-crops the shorter side to 518) and `mean`/`std` from the
  model's `preprocessor_config.json`.
- `"rad-dino-maira-2"` (microsoft/rad-dino-maira-2): the RAD-DINO continuation used by MAIRA-2.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from xrg.blocks.encoders.base import ImageEncoder

NAMED_MODELS = {"rad-dino": "microsoft/rad-dino", "rad-dino-maira-2": "microsoft/rad-dino-maira-2"}


class HFImageEncoder(ImageEncoder):
    """tokens: `last_hidden_state` (all patch tokens, plus CLS where the model has one);
    pooled: the model's `pooler_output` when it has one, else the first token ("cls") or the
    mean of the tokens ("mean"). CNN-style models returning `[B, C, h, w]` maps are flattened."""

    def __init__(
        self,
        model: str | None = None,
        config: dict[str, Any] | None = None,
        pooling: Literal["pooler", "cls", "mean"] = "pooler",
        frozen: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if (model is None) == (config is None):
            raise ValueError("HFImageEncoder needs exactly one of `model` (name or directory) or `config`")
        if config is not None:
            self.model = AutoModel.from_config(AutoConfig.for_model(**config))
        else:
            self.model = AutoModel.from_pretrained(NAMED_MODELS.get(model, model), trust_remote_code=trust_remote_code)
        model_config = self.model.config
        self.dim = getattr(model_config, "hidden_size", None) or model_config.hidden_sizes[-1]
        self.pooling = pooling
        if frozen:
            self.freeze()

    def cam_layer(self) -> torch.nn.Module:
        return self.model  # its `last_hidden_state`: what both tokens and pooled are read from

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(pixel_values=images)
        tokens = output.last_hidden_state
        if tokens.dim() == 4:  # [B, C, h, w] feature map (ConvNeXt, ResNet)
            tokens = tokens.flatten(2).transpose(1, 2)
        pooled = getattr(output, "pooler_output", None) if self.pooling == "pooler" else None
        if pooled is None or pooled.dim() != 2:
            pooled = tokens[:, 0] if self.pooling == "cls" else tokens.mean(1)
        return tokens, pooled
