"""The image cache: a dataset's radiographs decoded and resized once, to the size a recipe reads.

A MIMIC-CXR JPEG is ~2,500 x 3,000 px; decoding it every epoch costs more CPU than the step of
the smaller models. `xrg data cache` reads every image an annotation names (current and prior
studies) through `read_image` (so windows, 16-bit and DICOM are handled once), shrinks its shorter
side to `size` (aspect kept: the recipe's transforms still resize and crop as before), and writes
an 8-bit image at the same relative path + ".jpg" (JPEG quality 95, the default) or + ".png"
(lossless). `benchmarks/image_cache.py` measured, per core at 512 px, against decoding the
2,500 x 3,000 source: JPEG-95 ~24x faster, PNG ~6x (PNG's inflate is slower than a small JPEG's
decode); JPEG-95 is also half PNG's size, and its error (about one grey level) is far below what
the source's own JPEG compression left. `--format png` keeps every pixel.

Building is parallel, resumable and atomic: images go to a hidden `.<out>.partial-<digest>`
sibling that survives an interrupted run (each image written to a temp file and renamed, so the
next run skips the ones there), and once all are written it moves into the build folder of
`xrg.data.cache.build_atomically`, which renames it onto `out` with its stamp `cache.json`. The
stamp records the size, the window and the annotation's SHA-256; a data module asking for
another size or annotation is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

from PIL import Image

from xrg.data.annotation import read_annotation
from xrg.data.cache import build_atomically, read_record
from xrg.data.dataset import resolve_image
from xrg.data.errors import DataError
from xrg.data.images import read_image

STAMP = "cache.json"
VERSION = 1
SUFFIXES = {"jpeg": ".jpg", "png": ".png"}


def cache_stamp(annotation_path, size: int, window: tuple[float, float] | None) -> dict:
    """What a cache must match to be used (its `format` and image count are recorded beside)."""
    digest = hashlib.sha256(Path(annotation_path).read_bytes()).hexdigest()
    return {"kind": "xrg image cache", "version": VERSION, "size": int(size),
            "window": None if window is None else [float(w) for w in window], "annotation_sha256": digest}


def referenced_images(annotation_path) -> list[str]:
    """Every relative image path of every split, current and prior studies, each once."""
    paths: dict[str, None] = {}
    for studies in read_annotation(annotation_path).values():
        for study in studies:
            paths.update(dict.fromkeys(study.image_paths))
            if study.prior is not None:
                paths.update(dict.fromkeys(study.prior.image_paths))
    return list(paths)


def resized(image: Image.Image, size: int) -> Image.Image:
    """Shorter side -> `size`, aspect kept; smaller images are left as they are."""
    width, height = image.size
    scale = size / min(width, height)
    if scale >= 1:
        return image
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)


def _cache_one(task: tuple[str, str, str, int, tuple | None, str]) -> None:
    source_dir, out_dir, relative, size, window, image_format = task
    target = Path(out_dir) / (relative + SUFFIXES[image_format])
    if target.is_file():  # written by an earlier, interrupted run
        return
    source = resolve_image(Path(source_dir), relative, relative)
    image = resized(read_image(source, window), size)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if image_format == "png":
        image.save(partial, format="PNG", compress_level=1)  # fast to write; decoding speed barely depends on it
    else:
        image.save(partial, format="JPEG", quality=95)
    os.replace(partial, target)


def build_cache(annotation_path, image_dir, out, size: int, window: tuple[float, float] | None = None,
                workers: int = 0, image_format: str = "jpeg") -> Path:
    """Build (or resume, or reuse) the cache of `annotation_path`'s images at `size` in `out`."""
    if image_format not in SUFFIXES:
        raise ValueError(f"image cache format must be one of {sorted(SUFFIXES)}, not {image_format!r}")
    images = referenced_images(annotation_path)
    wanted = cache_stamp(annotation_path, size, window) | {"format": image_format, "images": len(images)}

    out = Path(out)
    digest = hashlib.sha1(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]
    partial = out.with_name(f".{out.name}.partial-{digest}")  # kept across runs: the resume point

    def build(tmp: Path) -> None:
        partial.mkdir(parents=True, exist_ok=True)
        tasks = [(str(image_dir), str(partial), relative, size, window, image_format) for relative in images]
        if workers > 0 and len(tasks) > 1:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(workers) as pool:
                for _ in pool.imap_unordered(_cache_one, tasks, chunksize=16):
                    pass
        else:
            for task in tasks:
                _cache_one(task)
        partial.rename(tmp / "images")
        (tmp / STAMP).write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")  # last: complete

    return build_atomically(out, wanted, build, STAMP, what="image cache")


def check_cache(cache_dir, annotation_path, size: int, window: tuple[float, float] | None) -> tuple[Path, str] | None:
    """(image folder, path suffix) of the cache if it was built for this annotation, size and
    window; None when there is no cache yet; a one-line `DataError` when it was built for something else."""
    cache_dir = Path(cache_dir)
    stamp = read_record(cache_dir, STAMP)
    if stamp is None:
        if cache_dir.exists() and any(cache_dir.iterdir()):
            raise DataError(f"image cache {cache_dir}: no {STAMP}, so it is not a finished xrg image cache")
        return None
    wanted = cache_stamp(annotation_path, size, window)
    differ = [key for key in wanted if stamp.get(key) != wanted[key]]
    if differ:
        built = ", ".join(f"{k}={stamp.get(k)!r}" for k in differ)
        needed = ", ".join(f"{k}={wanted[k]!r}" for k in differ)
        raise DataError(f"image cache {cache_dir} was built for {built}, but {annotation_path} needs {needed}; "
                        f"rebuild it with `xrg data cache --annotation {annotation_path} --size {size} --out DIR`")
    return cache_dir / "images", SUFFIXES[stamp.get("format", "png")]
