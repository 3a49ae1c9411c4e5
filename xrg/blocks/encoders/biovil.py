"""BioViL and BioViL-T, Microsoft's chest X-ray image models, through their own package
(`hi-ml-multimodal`, `pip install "xrg[biovil]"`).

    encoder = BioVilImageEncoder("biovil_t")                    # weights from the hub (or its cache)
    encoder = BioVilImageEncoder("biovil_t", checkpoint="biovil_t_image_model_proj_size_128.pt")
    encoder = BioVilImageEncoder("biovil_t", pretrained=False)  # random init, same architecture

tokens: the ResNet-50 patch grid (14 x 14 at 448 px), row by row. BioViL-T's patch vectors are
512 wide: 256 from the trunk and 256 from its temporal ViT pooler, which reads a learned "no prior
image" embedding when no prior is given; BioViL's are the trunk's 2048. pooled: their mean (the
package's `img_embedding`). `features="projected"` gives the 128-d joint image-text space instead
(RaDialog's findings classifier reads those).

Preprocessing is the package's own (resize the shorter side to 512, centre crop 448 for BioViL-T /
480 for BioViL, grey values in [0, 1] copied to 3 channels, no mean/std): set
`ReportDataModule(preprocessing="biovil", resize=512, image_size=448)`.
"""

from __future__ import annotations

from typing import Literal

import torch

from xrg.blocks.encoders.base import ImageEncoder

INSTALL = 'pip install "xrg[biovil]"'


def _package():
    try:
        from health_multimodal.image.model import model, pretrained, types
    except ImportError as error:
        raise ImportError(f"BioVilImageEncoder needs Microsoft's hi-ml-multimodal ({error}); {INSTALL}") from None
    return model, pretrained, types


def _weights(name: str) -> tuple[str, str, str]:
    """(hub repo, revision, file) of the released image weights, as the package names them."""
    _, pretrained, _ = _package()
    if name == "biovil_t":
        return pretrained.BIOMED_VLP_BIOVIL_T, pretrained.BIOVIL_T_COMMIT_TAG, pretrained.BIOVIL_T_IMAGE_WEIGHTS_NAME
    return pretrained.BIOMED_VLP_CXR_BERT_SPECIALIZED, pretrained.CXR_BERT_COMMIT_TAG, pretrained.BIOVIL_IMAGE_WEIGHTS_NAME


def download_weights(name: Literal["biovil_t", "biovil"]) -> str:
    """The released weights file from the Hugging Face hub (or its cache; `HF_HUB_OFFLINE` is honoured).

    The package itself downloads to the system temp folder with torchvision, bypassing the hub
    cache and offline mode; the same file through `hf_hub_download` is cached like every model.
    """
    from huggingface_hub import hf_hub_download

    repo, revision, filename = _weights(name)
    try:
        return hf_hub_download(repo, filename, revision=revision)
    except Exception as error:  # noqa: BLE001 - any miss (offline, no network, not cached) ends in one line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(
            f"{name}: cannot get {repo}@{revision}/{filename} from the hub or its cache ({reason}); "
            "download it where the hub is reachable, or pass checkpoint=<that file>"
        ) from None


class BioVilImageEncoder(ImageEncoder):
    """BioViL-T / BioViL image model (hi-ml-multimodal): patch-grid tokens, their mean pooled.

    `pretrained`: the released weights from the hub; `checkpoint`: that file already on disk;
    neither: random weights of the same architecture."""

    def __init__(
        self,
        model: Literal["biovil_t", "biovil"] = "biovil_t",
        pretrained: bool = True,
        checkpoint: str | None = None,
        features: Literal["patch", "projected"] = "patch",
        frozen: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last  # NHWC images for its ResNet-50 (ImageEncoder)
        if model not in ("biovil_t", "biovil"):
            raise ValueError(f"model must be 'biovil_t' or 'biovil', got {model!r}")
        model_module, pretrained_module, types = _package()
        encoder_type = types.ImageEncoderType.RESNET50_MULTI_IMAGE if model == "biovil_t" else types.ImageEncoderType.RESNET50
        weights = checkpoint if checkpoint is not None else (download_weights(model) if pretrained else None)
        # The package's constructor loads the file (torch.load, weights_only by default in torch >= 2.6).
        self.model = model_module.ImageModel(
            img_encoder_type=encoder_type,
            joint_feature_size=pretrained_module.JOINT_FEATURE_SIZE,
            pretrained_model_path=weights,
        )
        self.features = features
        self.dim = pretrained_module.JOINT_FEATURE_SIZE if features == "projected" else self.model.feature_size
        # Parts this encoder never runs do not train (DDP refuses parameters the loss never reaches):
        # the ResNet's ImageNet classifier, BioViL-T's prior-image pooler (no prior image is passed;
        # its learned "no prior" embedding is used) and, for patch features, the joint-space projector.
        encoder = self.model.encoder
        unread = [encoder.encoder.fc, getattr(encoder, "vit_pooler", None)]
        unread += [self.model.projector] if features == "patch" else []
        for module in filter(None, unread):
            module.requires_grad_(False)
        if frozen:
            self.freeze()

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(images)
        if self.features == "projected":
            grid, pooled = output.projected_patch_embeddings, output.projected_global_embedding
        else:
            grid, pooled = output.patch_embeddings, output.img_embedding
        return grid.flatten(2).transpose(1, 2), pooled
