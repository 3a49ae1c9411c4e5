"""Image transforms: R2Gen's resize 256 -> random crop 224 for training, a plain resize for eval;
or an image model's own preprocessing (BioViL / BioViL-T: hi-ml-multimodal's)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torchvision import transforms as T

Preprocessing = Literal["r2gen", "biovil"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(
    train: bool,
    image_size: int = 224,
    resize: int = 256,
    horizontal_flip: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    preprocessing: Preprocessing = "r2gen",
    random_affine: dict[str, Any] | None = None,
    color_jitter: dict[str, Any] | None = None,
    detail_channel: int | None = None,
) -> T.Compose:
    """Grayscale radiographs become 3 channels so any ImageNet or CLIP backbone accepts them.

    `horizontal_flip` is off by default: flipping swaps left and right while the report keeps
    saying "left effusion". Recipes that reproduce a paper that flipped (R2Gen) turn it on.
    `preprocessing="biovil"` is hi-ml-multimodal's chest X-ray transform for every split (grey
    values stretched to 0-255, shorter side resized to `resize`, centre crop `image_size`, [0, 1]
    copied to 3 channels; `mean`/`std` unused), as BioViL-T and RaDialog were trained.

    Training images only, either preprocessing: `random_affine` and `color_jitter` are the keyword
    arguments of torchvision's `RandomAffine` (degrees, translate, scale, shear) and `ColorJitter`
    (brightness, contrast), applied in that order after the crop and flip: more patient positions
    and exposures than the training studies hold (hi-ml-multimodal trained BioViL with both).

    `detail_channel: w` puts an unsharp mask's detail in the second channel of every split's images
    (see `DetailChannel`): findings a few pixels wide stand out of the patient's own shading.
    """
    augment = augmentations(random_affine, color_jitter) if train else []
    detail = [DetailChannel(detail_channel)] if detail_channel is not None else []
    if preprocessing == "biovil":
        return T.Compose([_biovil_transform(train and horizontal_flip, augment, resize, image_size)] + detail)
    if preprocessing != "r2gen":
        raise ValueError(f"preprocessing must be 'r2gen' or 'biovil', got {preprocessing!r}")
    steps = [T.Lambda(_to_rgb)]
    if train:
        steps += [T.Resize((resize, resize)), T.RandomCrop(image_size)]
        if horizontal_flip:
            steps.append(T.RandomHorizontalFlip())
        steps += augment
    else:
        steps.append(T.Resize((image_size, image_size)))
    steps += [T.ToTensor(), T.Normalize(mean, std)] + detail
    return T.Compose(steps)


class DetailChannel:
    """Channel 1 of a `[C, H, W]` grey image becomes channel 0 minus its mean over a `window` x
    `window` box around each pixel (the detail an unsharp mask adds back); channels 0 and 2 keep
    the image, so any 3-channel backbone reads both at no extra cost.

    A rib fracture or a pleural rim is a few pixels of faint contrast on a patient's shading that
    varies far more; the detail channel shows them with that shading taken away. On the synthetic
    benchmark a CNN trained from scratch at 128 px learns both about an epoch sooner with it
    (docs/quality.md section 17). For models trained from scratch: a pretrained backbone expects
    colour in that channel.
    """

    def __init__(self, window: int):
        if isinstance(window, bool) or not isinstance(window, int) or window < 3 or window % 2 == 0:
            raise ValueError(f"detail_channel is an odd window width in pixels (>= 3), got {window!r}")
        self.window = window

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        grey = image[:1].unsqueeze(0)
        local_mean = torch.nn.functional.avg_pool2d(grey, self.window, 1, self.window // 2, count_include_pad=False)
        out = image.clone()
        out[1] = (grey - local_mean)[0, 0]
        return out

    def __repr__(self) -> str:
        return f"DetailChannel(window={self.window})"


def _to_rgb(image):
    return image.convert("RGB")


def augmentations(random_affine: dict[str, Any] | None, color_jitter: dict[str, Any] | None) -> list:
    steps = []
    for name, kind, kwargs in (("random_affine", T.RandomAffine, random_affine),
                               ("color_jitter", T.ColorJitter, color_jitter)):
        if kwargs is None:
            continue
        try:
            steps.append(kind(**kwargs))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: {error} (expected torchvision.transforms.{kind.__name__}'s "
                             f"keyword arguments, e.g. {_EXAMPLES[name]})") from None
    return steps


_EXAMPLES = {"random_affine": "{degrees: 3, translate: [0.04, 0.04], scale: [0.92, 1.05]}",
             "color_jitter": "{brightness: 0.1, contrast: 0.1}"}


def _biovil_transform(flip: bool, augment: list, resize: int, crop: int) -> T.Compose:
    try:
        from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
    except ImportError as error:
        raise ImportError(f'preprocessing="biovil" needs hi-ml-multimodal ({error}); pip install "xrg[biovil]"') from None
    steps = [T.Lambda(_remap_grey)] + ([T.RandomHorizontalFlip()] if flip else []) + augment
    return T.Compose(steps + [create_chest_xray_transform_for_inference(resize=resize, center_crop_size=crop)])


def _remap_grey(image):
    """The package's image loading: one grey channel stretched to the full 0-255 range."""
    import numpy as np
    from health_multimodal.image.data.io import remap_to_uint8
    from PIL import Image

    return Image.fromarray(remap_to_uint8(np.asarray(image.convert("L")))).convert("L")
