"""BioViL-T through hi-ml-multimodal, offline: random weights of the real architecture written into a
Hugging Face cache laid out as the hub would, then loaded by name; and the package's preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("health_multimodal", reason="hi-ml-multimodal is not installed")

from xrg.blocks.encoders import BioVilImageEncoder  # noqa: E402
from xrg.blocks.encoders.biovil import _weights  # noqa: E402
from xrg.data.transforms import build_transform  # noqa: E402


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty hub cache and offline mode (as a user without network would set it)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def _put_in_cache(cache: Path, name: str, state: dict) -> None:
    repo, revision, filename = _weights(name)
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / revision).write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    torch.save(state, folder / "snapshots" / commit / filename)


def test_biovil_t_loads_from_the_hub_cache_with_identical_outputs(offline_hub):
    torch.manual_seed(0)
    source = BioVilImageEncoder("biovil_t", pretrained=False).eval()
    _put_in_cache(offline_hub, "biovil_t", source.model.state_dict())
    loaded = BioVilImageEncoder("biovil_t", frozen=True)  # pretrained: resolved through the hub cache

    images = torch.rand(2, 2, 3, 64, 64)  # 2 studies x 2 views; a 64 px image gives a 2 x 2 grid
    with torch.no_grad():
        expected, got = source(images), loaded(images)
    assert source.dim == loaded.dim == 512  # 256 trunk + 256 temporal pooler
    assert got.tokens.shape == (2, 2 * 4, 512) and got.pooled.shape == (2, 512)
    assert torch.equal(expected.tokens, got.tokens) and torch.equal(expected.pooled, got.pooled)
    assert loaded.trainable_parameters() == 0
    # Pooled = mean over the patches, then over the views.
    torch.testing.assert_close(got.pooled, got.tokens.mean(1))


def test_missing_weights_fail_at_once_naming_the_file(offline_hub):
    with pytest.raises(FileNotFoundError, match=r"microsoft/BiomedVLP-BioViL-T@v1\.0/biovil_t_image_model_proj_size_128\.pt.*checkpoint="):
        BioVilImageEncoder("biovil_t")


def test_biovil_preprocessing_is_the_packages():
    from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference

    ramp = np.tile(np.linspace(20, 200, 600), (520, 1)).astype(np.uint8)  # 600 wide, 520 high, not full range
    image = Image.fromarray(ramp, mode="L")
    for train in (True, False):
        out = build_transform(train=train, image_size=448, resize=512, preprocessing="biovil")(image)
        assert out.shape == (3, 448, 448) and torch.equal(out[0], out[2])
        assert out.min() >= 0 and out.max() <= 1
    # The package stretches grey values to 0..255 when it reads an image, then its transform runs.
    stretched = Image.fromarray(((ramp - 20.0) / 180 * 255).astype(np.uint8), mode="L")
    expected = create_chest_xray_transform_for_inference(resize=512, center_crop_size=448)(stretched)
    torch.testing.assert_close(out, expected, atol=1 / 255, rtol=0)
