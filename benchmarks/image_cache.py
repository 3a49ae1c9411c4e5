"""Images per second per core: decoding MIMIC-size radiographs every epoch vs reading the image cache.

Input: real radiographs from ../shared/data/real_cxr enlarged to 2,500 x 3,000 px and saved as
JPEG quality 95 (what MIMIC-CXR ships) in a temporary folder (deleted afterwards, never committed).
For each size (448, 512 px, the shorter side a recipe resizes to) it times, in CPU seconds of this
one process (so per core, and steady on a loaded machine), what a data-loader worker does per image
before the transform's crop:

- raw:        `read_image` of the 2,500 x 3,000 JPEG + resize to the size
- cache JPEG: `read_image` of the cached JPEG quality 95 (`xrg data cache`'s default format)
- cache PNG:  the same resized image as a lossless 8-bit PNG (`--format png`)

and the cache's build time. Writes benchmarks/results/image_cache.json.

    python benchmarks/image_cache.py [--images 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from xrg.data.image_cache import build_cache, resized
from xrg.data.images import read_image
from xrg.data.jsonl import write_atomic

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "real_cxr" / "images"
FULL = (2500, 3000)  # width x height of a MIMIC-CXR radiograph


def make_inputs(folder: Path, count: int) -> list[str]:
    names = sorted(p.name for p in SOURCE.glob("*.jpg"))[:count]
    (folder / "images").mkdir(parents=True)
    studies = []
    for i, name in enumerate(names):
        big = Image.open(SOURCE / name).convert("L").resize(FULL, Image.Resampling.BICUBIC)
        big.save(folder / "images" / name, quality=95)
        studies.append({"id": f"s{i}", "report": "the lungs are clear .", "image_path": [name], "split": "train"})
    (folder / "annotation.json").write_text(json.dumps({"train": studies, "val": [], "test": []}))
    return names


def per_core_rate(paths: list[Path], load, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        for path in paths:
            load(path)
    return len(paths) * repeats / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the cached images (raw: 1)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xrg-image-cache-bench-"))
    try:
        names = make_inputs(work, args.images)
        raw_paths = [work / "images" / n for n in names]
        rows = []
        for size in (448, 512):
            start, cpu = time.perf_counter(), time.process_time()
            cache = build_cache(work / "annotation.json", work / "images", work / f"cache{size}", size, workers=0,
                                image_format="png")
            build_cpu = time.process_time() - cpu
            build_wall = time.perf_counter() - start
            png = [cache / "images" / (n + ".png") for n in names]
            jpeg = [p.with_suffix(".q95.jpg") for p in png]
            for source, target in zip(png, jpeg):
                Image.open(source).save(target, format="JPEG", quality=95)  # exactly what --format jpeg writes
            raw = per_core_rate(raw_paths, lambda p: resized(read_image(p), size), 1)
            cached_png = per_core_rate(png, read_image, args.repeats)
            cached_jpeg = per_core_rate(jpeg, read_image, args.repeats)
            rows.append({"size": size, "raw_images_per_s_per_core": raw, "png_images_per_s_per_core": cached_png,
                         "jpeg95_images_per_s_per_core": cached_jpeg, "png_speedup": cached_png / raw,
                         "jpeg95_speedup": cached_jpeg / raw,
                         "png_kb": sum(p.stat().st_size for p in png) / len(png) / 1024,
                         "jpeg95_kb": sum(p.stat().st_size for p in jpeg) / len(jpeg) / 1024,
                         "source_kb": sum(p.stat().st_size for p in raw_paths) / len(raw_paths) / 1024,
                         "build_cpu_s_per_image": build_cpu / len(names), "build_wall_s": build_wall})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"images": len(names), "input": f"{FULL[0]}x{FULL[1]} JPEG q95 from real_cxr", "rows": rows}
    out = REPO / "benchmarks" / "results" / "image_cache.json"
    out.parent.mkdir(exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1) + "\n")
    print("| size | raw img/s/core | PNG cache img/s/core (x raw) | JPEG-95 cache img/s/core (x raw) | KB source / PNG / JPEG |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['size']} | {r['raw_images_per_s_per_core']:.1f} | {r['png_images_per_s_per_core']:.0f} "
              f"({r['png_speedup']:.1f}x) | {r['jpeg95_images_per_s_per_core']:.0f} ({r['jpeg95_speedup']:.1f}x) | "
              f"{r['source_kb']:.0f} / {r['png_kb']:.0f} / {r['jpeg95_kb']:.0f} |")


if __name__ == "__main__":
    main()
