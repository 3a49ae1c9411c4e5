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
- DICOM (`.dcm`, or any file with the DICOM preamble) is read with pydicom: the modality LUT
  (rescale slope / intercept) is applied and MONOCHROME1 inverted so dense tissue is bright, then
  the values are windowed like a 16-bit image. A compressed transfer syntax that cannot be decoded
  here is refused with one line naming it.
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

DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", *DICOM_SUFFIXES)


def is_dicom(path: Path) -> bool:
    """A `.dcm` name, or the "DICM" marker after the 128-byte preamble (DICOM files often have no suffix)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (path.suffix.lower() in IMAGE_SUFFIXES or is_dicom(path))


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
    if is_dicom(path):
        return _windowed(read_dicom_pixels(path), path, window)
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


def read_dicom_pixels(path: Path) -> np.ndarray:
    """A DICOM file's pixel values after the modality LUT, MONOCHROME1 inverted (bright = dense)."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut
    except ImportError:  # pragma: no cover - pydicom is a dependency
        raise DataError(f"{path} is DICOM: install pydicom (`pip install pydicom`)") from None
    try:
        dataset = pydicom.dcmread(path, force=True)
    except Exception as err:  # pydicom raises many kinds on a damaged file
        raise DataError(f"cannot read DICOM file {path} ({err})") from None
    if "PixelData" not in dataset:
        raise DataError(f"DICOM file {path} holds no image (no PixelData)")
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = dataset.pixel_array
    except Exception as err:
        if syntax is not None and syntax.is_compressed:
            raise DataError(f"DICOM file {path} uses the compressed transfer syntax {syntax.name} ({syntax}), "
                            "which cannot be decoded here; install pylibjpeg or gdcm, or convert it to an "
                            "uncompressed DICOM or a PNG") from None
        raise DataError(f"cannot decode the pixels of DICOM file {path} ({err})") from None
    if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"DICOM file {path} has {dataset.NumberOfFrames} frames; xrg reads single radiographs")
    pixels = apply_modality_lut(pixels, dataset).astype(np.float64)
    if str(getattr(dataset, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels  # MONOCHROME1 stores dense tissue dark
    return pixels
