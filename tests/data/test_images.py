"""Every pixel mode reaches the model with its full range; bad image files give one clear DataError."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from xrg.data import images
from xrg.data.errors import DataError
from xrg.data.images import read_image

RAMP = np.linspace(0, 1, 64 * 64).reshape(64, 64)


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "pixels, suffix",
    [
        ((RAMP * 4000 + 1000).astype(np.uint16), ".png"),  # 12-bit CR stored in 16 bits, offset
        ((RAMP * 65535).astype(np.uint16), ".tiff"),
        ((RAMP * 2e6 - 1e6).astype(np.int32), ".tiff"),  # 32-bit signed
        ((RAMP * 3.5 - 0.25).astype(np.float32), ".tiff"),  # 32-bit float
    ],
    ids=["uint16-png", "uint16-tiff", "int32", "float32"],
)
def test_deep_images_are_windowed_to_their_own_range(tmp_path, pixels, suffix):
    path = _save(Image.fromarray(pixels), tmp_path / f"deep{suffix}")
    assert Image.open(path).mode in images._HIGH_DEPTH_MODES
    out = np.asarray(read_image(path))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    # PIL's own conversion clips everything above 255 to white (the bug this module exists for);
    # windowing keeps the ramp: every one of the 256 grey levels is used, in order.
    assert len(np.unique(out)) == 256
    assert (np.diff(out.astype(int).ravel()) >= 0).all()
    if pixels.dtype == np.uint16:
        assert (np.asarray(Image.open(path).convert("L")) == 255).mean() > 0.9


def test_a_recipe_window_overrides_the_images_own_range(tmp_path):
    pixels = (RAMP * 4000).astype(np.uint16)
    path = _save(Image.fromarray(pixels), tmp_path / "deep.png")
    out = np.asarray(read_image(path, window=(0, 8000)))
    assert out.max() == 128  # 4000 of 8000 is mid grey
    with pytest.raises(DataError, match=r"low < high"):
        read_image(path, window=(10, 10))


def test_eight_bit_modes_keep_their_values(tmp_path):
    grey = (RAMP * 200 + 20).astype(np.uint8)
    assert np.array_equal(np.asarray(read_image(_save(Image.fromarray(grey), tmp_path / "g.png"))), grey)
    palette = Image.fromarray(grey).convert("P")
    out = np.asarray(read_image(_save(palette, tmp_path / "p.png")))
    assert out.shape == (64, 64, 3) and np.abs(out[..., 0].astype(int) - grey).max() <= 8
    cmyk = Image.fromarray(np.dstack([grey] * 3)).convert("CMYK")
    out = np.asarray(read_image(_save(cmyk, tmp_path / "c.jpg", quality=100)))
    assert out.shape == (64, 64, 3) and np.abs(out[..., 0].astype(int) - grey).mean() < 3
    bilevel = Image.fromarray(grey > 120)
    assert read_image(_save(bilevel, tmp_path / "b.png")).mode == "L"


def test_transparent_pixels_are_black_not_their_hidden_colour(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white under the alpha
    rgba[:4, :, 3] = 255  # top half opaque, bottom half transparent
    out = np.asarray(read_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")))
    assert out.shape == (8, 8, 3) and (out[:4] == 255).all() and (out[4:] == 0).all()
    grey_alpha = Image.fromarray(rgba[..., [0, 3]], "LA")
    out = np.asarray(read_image(_save(grey_alpha, tmp_path / "la.png")))
    assert (out[:4] == 255).all() and (out[4:] == 0).all()


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 8), dtype=np.uint8)
    pixels[:, :4] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = _save(image, tmp_path / "o.jpg", exif=exif, quality=100)
    out = np.asarray(read_image(path))
    assert out.shape == (8, 4) and out[:4].mean() > 200 and out[4:].mean() < 50


def test_one_pixel_and_constant_images_are_fine(tmp_path):
    assert np.asarray(read_image(_save(Image.new("L", (1, 1), 7), tmp_path / "1.png"))).tolist() == [[7]]
    flat = Image.fromarray(np.full((4, 4), 3000, dtype=np.uint16))
    assert (np.asarray(read_image(_save(flat, tmp_path / "flat.png"))) == 0).all()


def test_bad_image_files_are_one_clear_error(tmp_path, monkeypatch):
    good = _save(Image.new("L", (32, 32), 100), tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    nan = tmp_path / "nan.tiff"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(nan)
    for path, expected in [
        (truncated, "cannot read image .*truncated.png"),
        (text, "cannot read image .*notes.png"),
        (nan, "nan.tiff: 1 pixels are NaN"),
        (tmp_path / "missing.png", "missing.png does not exist"),
        (tmp_path, "is not a file"),
    ]:
        with pytest.raises(DataError, match=expected):
            read_image(path)


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch):
    bomb = _save(Image.new("L", (400, 300)), tmp_path / "bomb.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100_000)  # a real 90 MP bomb would cost seconds to build
    with pytest.raises(DataError, match=r"bomb.png is 400x300 = 0 megapixels, above"):
        read_image(bomb)


def test_sixteen_bit_dataset_reaches_the_model_with_its_range(tmp_path):
    from xrg.data import ReportDataModule

    (tmp_path / "images").mkdir()
    annotation = {"train": [], "val": [], "test": []}
    for i, peak in enumerate((1200, 4000)):
        Image.fromarray((RAMP * peak).astype(np.uint16)).save(tmp_path / "images" / f"{i}.png")
        annotation["test"].append({"id": f"s{i}", "report": "Heart size is normal.", "image_path": f"{i}.png"})
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    dm = ReportDataModule(annotation_path=str(tmp_path / "annotation.json"), image_size=32, batch_size=2,
                          mean=(0, 0, 0), std=(1, 1, 1))
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    pixels = batch["images"][:, 0]
    for study in pixels:  # each study spans black to (almost) white, whatever its own peak
        assert study.min() < 0.02 and study.max() > 0.98
