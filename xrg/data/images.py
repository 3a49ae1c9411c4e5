"""Reading one image file into what the transforms expect: an 8-bit "L" or "RGB" PIL image.

Every image enters xrg through `read_image`, so every file format and pixel mode is handled once:

- 8-bit grey and colour ("L", "RGB", "1", palette "P", "CMYK", "YCbCr", ...) keep their values;
  colour modes become RGB the way PIL converts them.
- Transparent images ("RGBA", "LA", "PA", palettes with transparency) are laid on black, as a
  viewer shows them, rather than having their alpha dropped (which reveals whatever the fully
  transparent pixels happen to hold).
- 16-bit, 32-bit integer and 32-bit float images ("I;16*", "I", "F") are windowed to the image's
  own range (its minimum -> 0, its maximum -> 255), or to `window=(low, high)` when the recipe
  gives one. Converting them the way PIL does clips every value above 255 to white, which turns a
  16-bit radiograph into two grey levels.
- The EXIF orientation is applied, so a photographed film stands the way the camera saw it.
- Files above `MAX_PIXELS` (decompression bombs), truncated, corrupt or non-image files and
  float images with NaN/inf pixels raise `DataError` naming the file, before anything is decoded
  where possible.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from xrg.data.errors import DataError

# PIL's own warning threshold (~89.5 megapixels); chest radiographs are at most ~4k x 5k = 20 MP.
MAX_PIXELS = 89_478_485

_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | Path, window: tuple[float, float] | None = None) -> Image.Image:
    """The image at `path` as an 8-bit "L" or "RGB" PIL image (see the module docstring).

    `window=(low, high)` maps `low` to black and `high` to white for every image; `None` keeps
    8-bit images as they are and windows deeper images to their own minimum and maximum.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist" if not path.exists() else f"image {path} is not a file")
    if window is not None and not float(window[0]) < float(window[1]):
        raise DataError(f"image window {tuple(window)} must be (low, high) with low < high")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataError(_bomb_message(path, width, height))
                image.load()
                image = ImageOps.exif_transpose(image)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"image {path} refused as a decompression bomb ({err})") from None
    except Exception as err:  # noqa: BLE001  any decoder failure on a user's file is bad input, not a bug
        raise DataError(f"cannot read image {path}: {type(err).__name__}: {err} (expected a PNG, JPEG or TIFF image)") from None
    return _to_8bit(image, path, window)


def _bomb_message(path: Path, width: int, height: int) -> str:
    return (f"image {path} is {width}x{height} = {width * height / 1e6:.0f} megapixels, above the "
            f"{MAX_PIXELS / 1e6:.0f} MP limit (a decompression bomb?); expected a radiograph of at most tens of MP")


def _to_8bit(image: Image.Image, path: Path, window: tuple[float, float] | None) -> Image.Image:
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return _windowed(np.asarray(image), path, window)
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _TRANSPARENT_MODES:
        image = image.convert("RGBA")
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image).convert("RGB")
    elif mode not in ("L", "RGB"):
        image = image.convert("L" if mode == "1" else "RGB")
    if window is not None:
        return _windowed(np.asarray(image), path, window)
    return image


def _windowed(pixels: np.ndarray, path: Path, window: tuple[float, float] | None) -> Image.Image:
    pixels = pixels.astype(np.float64)
    if not np.isfinite(pixels).all():
        bad = int((~np.isfinite(pixels)).sum())
        raise DataError(f"image {path}: {bad} pixels are NaN or infinite; expected finite intensities")
    low, high = (float(pixels.min()), float(pixels.max())) if window is None else map(float, window)
    if high <= low:  # a constant image (1x1, blank): nothing to stretch, so it stays black
        scaled = np.zeros_like(pixels)
    else:
        scaled = np.clip((pixels - low) / (high - low), 0.0, 1.0) * 255.0
    return Image.fromarray(np.round(scaled).astype(np.uint8))  # 2-D -> "L", [H, W, 3] -> "RGB"
