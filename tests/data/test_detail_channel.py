"""`detail_channel`: the second channel carries the image minus its local mean, for every split and
for a checkpoint's own images alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xrg.data import ReportDataModule
from xrg.data.studies import ImagePreparation
from xrg.data.transforms import DetailChannel, build_transform

SIZE, WINDOW = 24, 5


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shading = np.linspace(40, 200, SIZE)[None, :] + rng.normal(0, 10, (SIZE, SIZE))
    shading[10:12, 6:9] += 60  # a small bright finding on the shading
    return Image.fromarray(np.clip(shading, 0, 255).astype(np.uint8))


def _local_mean(grey: np.ndarray, window: int) -> np.ndarray:
    """Mean over the window's pixels that lie inside the image, one pixel at a time."""
    half, out = window // 2, np.empty_like(grey)
    for y in range(grey.shape[0]):
        for x in range(grey.shape[1]):
            out[y, x] = grey[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1].mean()
    return out


@pytest.mark.parametrize("train", [True, False])
def test_second_channel_is_the_image_minus_its_local_mean(train):
    plain = build_transform(train, SIZE, SIZE)(_image())
    detailed = build_transform(train, SIZE, SIZE, detail_channel=WINDOW)(_image())
    grey = plain[0].double().numpy()
    np.testing.assert_allclose(detailed[1].double().numpy(), grey - _local_mean(grey, WINDOW), atol=1e-5)
    assert torch.equal(detailed[0], plain[0]) and torch.equal(detailed[2], plain[2])
    # the finding stands out of the shading in the detail, not in the image itself
    assert detailed[1, 10:12, 6:9].mean() > 3 * detailed[1].abs().mean()


def test_a_flat_image_has_no_detail():
    flat = torch.full((3, 8, 8), 0.7)
    assert torch.allclose(DetailChannel(3)(flat)[1], torch.zeros(8, 8), atol=1e-6)


def test_a_checkpoint_prepares_its_images_with_the_same_detail():
    data = ReportDataModule(annotation_path="unused.json", image_size=SIZE, resize=SIZE, detail_channel=WINDOW)
    preparation = ImagePreparation.from_hparams(dict(data.hparams))
    assert preparation.detail_channel == WINDOW
    expected = build_transform(False, SIZE, SIZE, detail_channel=WINDOW)(_image(1))
    assert torch.equal(preparation.transform()(_image(1)), expected)


@pytest.mark.parametrize("window", [4, 1, 0, True, 9.0])
def test_a_bad_window_is_one_clear_error(window):
    with pytest.raises(ValueError, match="detail_channel is an odd window width in pixels"):
        ReportDataModule(annotation_path="unused.json", detail_channel=window)
