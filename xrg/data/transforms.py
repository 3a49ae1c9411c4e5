"""Image transforms: R2Gen's resize 256 -> random crop 224 for training, a plain resize for eval."""

from __future__ import annotations

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(
    train: bool,
    image_size: int = 224,
    resize: int = 256,
    horizontal_flip: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> T.Compose:
    """Grayscale radiographs become 3 channels so any ImageNet or CLIP backbone accepts them.

    `horizontal_flip` is off by default: flipping swaps left and right while the report keeps
    saying "left effusion". Recipes that reproduce a paper that flipped (R2Gen) turn it on.
    """
    steps = [T.Lambda(_to_rgb)]
    if train:
        steps += [T.Resize((resize, resize)), T.RandomCrop(image_size)]
        if horizontal_flip:
            steps.append(T.RandomHorizontalFlip())
    else:
        steps.append(T.Resize((image_size, image_size)))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def _to_rgb(image):
    return image.convert("RGB")
