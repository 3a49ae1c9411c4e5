"""Any timm model as an image encoder: CNN feature maps or ViT tokens become a token sequence."""

from __future__ import annotations

import torch

from xrg.blocks.encoders.base import ImageEncoder


class TimmImageEncoder(ImageEncoder):
    """`timm.create_model(model_name)` without its classifier.

    Weights: `pretrained=True` uses timm's hub tag; `checkpoint_path` loads a local file
    (safetensors or a weights_only torch file) through timm's own pretrained-loading path, so
    the classifier is dropped and channel adaptation applies exactly as for hub weights.
    `channels_last: true` feeds the model NHWC images (`ImageEncoder`): same outputs, a faster
    CNN on a CPU.
    """

    def __init__(
        self,
        model_name: str = "resnet101",
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        frozen: bool = False,
        model_kwargs: dict | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        import timm

        kwargs = dict(model_kwargs or {})
        if checkpoint_path is not None:
            pretrained = True
            kwargs["pretrained_cfg_overlay"] = {"file": checkpoint_path}
        self.model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kwargs)
        self.dim = self.model.num_features
        if frozen:
            self.freeze()

    def cam_layer(self) -> torch.nn.Module:
        name = self.model.feature_info[-1]["module"]  # CNN: the last stage; ViT: the last block
        head, _, index = name.rpartition(".")
        if getattr(self.model, "num_prefix_tokens", 0) and index.isdigit() and int(index) > 0:
            name = f"{head}.{int(index) - 1}"
        return self.model.get_submodule(name)

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(images)
        pooled = self.model.forward_head(features, pre_logits=True)
        if features.dim() == 4:  # CNN: [B, C, h, w] -> h*w tokens of width C
            tokens = features.flatten(2).transpose(1, 2)
        else:  # ViT-like: already [B, N, D]
            tokens = features
        return tokens, pooled
