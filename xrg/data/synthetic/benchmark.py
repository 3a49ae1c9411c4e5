"""Write synthetic benchmarks to disk in R2Gen layout, and cache them.

Every study draws from its own RNG seeded by (seed, study index), so the output is identical
whatever the number of workers and whichever order the workers finish in.
"""

from __future__ import annotations

import json
import multiprocessing
import struct
import zlib
from pathlib import Path

import numpy as np

from xrg.data.cache import build_atomically
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.synthetic.anatomy import sample_patient, textures
from xrg.data.synthetic.findings import check_rates, findings_from_labels, sample_findings
from xrg.data.synthetic.phantom import render_views
from xrg.data.synthetic.reports import write_report

GENERATOR_VERSION = 1  # bump when pixels or text change, so cached benchmarks are rebuilt
STAMP = "benchmark.json"
SPLITS = ("train", "val", "test")
_CODES = (1, 0, -1, None)


def check_params(num_studies: int, image_size: int, views: int, split_fractions, extra_train_studies: int = 0,
                 extra_finding_rates: dict[str, float] | None = None) -> None:
    if num_studies < 1:
        raise ValueError(f"num_studies must be >= 1, got {num_studies}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    if views not in (1, 2):
        raise ValueError(f"views must be 1 (frontal) or 2 (frontal + lateral), got {views}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-6:
        raise ValueError(f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}")
    if extra_train_studies < 0:
        raise ValueError(f"extra_train_studies must be >= 0, got {extra_train_studies}")
    if extra_finding_rates:
        if not extra_train_studies:
            raise ValueError("extra_finding_rates apply to the extra training studies: set extra_train_studies too")
        check_rates(extra_finding_rates)


def _split_of(num_studies: int, split_fractions) -> list[str]:
    n_train = round(num_studies * split_fractions[0])
    n_val = min(round(num_studies * split_fractions[1]), num_studies - n_train)
    return ["train"] * n_train + ["val"] * n_val + ["test"] * (num_studies - n_train - n_val)


def _make_study(task: tuple) -> dict:
    """Render and write one study; returns its annotation, labels and findings (runs in workers)."""
    seed, index, study_id, labels, images_dir, size, views, conspicuity, rates = task
    findings_rng, report_rng, image_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3))
    if labels is None:
        findings = sample_findings(findings_rng, rates)
        report, labels = write_report(findings, report_rng)
    else:
        findings, report = findings_from_labels(labels, findings_rng), None
    images = render_views(sample_patient(image_rng), findings, size, views, image_rng, conspicuity)
    folder = Path(images_dir) / study_id
    folder.mkdir(parents=True, exist_ok=True)
    for view, pixels in enumerate(images):
        (folder / f"{view}.png").write_bytes(encode_png(pixels))
    return {"id": study_id, "report": report, "labels": labels, "findings": findings.to_dict(),
            "image_path": [f"{study_id}/{view}.png" for view in range(views)]}


def encode_png(pixels: np.ndarray) -> bytes:
    """8-bit grayscale PNG. PIL's encoder tries five filters per row and costs more than rendering
    the image; one "Sub" filter in numpy plus run-length deflate is 4x faster and smaller."""
    height, width = pixels.shape
    sub = np.empty((height, width + 1), np.uint8)
    sub[:, 0] = 1  # filter type Sub: each byte minus its left neighbour
    sub[:, 1] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=sub[:, 2:])
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = deflate.compress(sub.tobytes()) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _run(tasks: list[tuple], workers: int) -> list[dict]:
    from xrg.progress import track

    description = f"rendering {len(tasks)} studies"
    if workers <= 0 or len(tasks) < 2:
        return [_make_study(t) for t in track(tasks, description)]
    # fork where the platform has it: workers only touch numpy and PIL (no torch state), and
    # spawn would have to re-import the caller's __main__, which fails for notebooks and stdin.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        textures(tasks[0][5])  # build the noise banks once; forked workers inherit them
    with multiprocessing.get_context(method).Pool(workers) as pool:
        chunksize = max(1, min(64, len(tasks) // (4 * workers)))
        return list(track(pool.imap(_make_study, tasks, chunksize=chunksize), description, total=len(tasks)))


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _write_outputs(out: Path, studies: list[dict], splits: list[str], stamp: dict) -> None:
    annotation = {split: [] for split in SPLITS}
    for study, split in zip(studies, splits):
        annotation[split].append({"id": study["id"], "report": study["report"],
                                  "image_path": study["image_path"], "split": split})
    _write_json(out / "annotation.json", annotation)
    _write_json(out / "labels.json", {s["id"]: s["labels"] for s in studies})
    _write_json(out / "findings.json", {s["id"]: s["findings"] for s in studies})
    _write_json(out / STAMP, stamp)  # last: its presence means everything else is complete


def _stamp(num_studies, seed, image_size, views, split_fractions, conspicuity, extra_train_studies=0,
           extra_finding_rates=None) -> dict:
    stamp = {"generator": "xrg.data.synthetic", "version": GENERATOR_VERSION, "num_studies": num_studies,
             "seed": seed, "image_size": image_size, "views": views,
             "split_fractions": [float(x) for x in split_fractions], "conspicuity": float(conspicuity)}
    if extra_train_studies:  # only when asked for, so the caches of plain benchmarks stay valid
        stamp["extra_train_studies"] = extra_train_studies
    if extra_finding_rates:
        stamp["extra_finding_rates"] = {k: float(v) for k, v in sorted(extra_finding_rates.items())}
    return stamp


def generate_benchmark(out_dir, num_studies: int, seed: int = 0, *, image_size: int = 256, views: int = 2,
                       split_fractions=(0.8, 0.1, 0.1), workers: int = 0, conspicuity: float = 1.0,
                       extra_train_studies: int = 0, extra_finding_rates: dict[str, float] | None = None) -> Path:
    """Write `num_studies` synthetic studies (annotation.json, images/, labels.json, findings.json).

    `extra_train_studies`: that many more of the generator's studies (indices `num_studies`
    onward) join the training split only. A study is drawn from (seed, index) alone, so the first
    `num_studies` and their split are exactly the plain benchmark's: the same validation and test
    studies, more training studies from the same distribution, or, with `extra_finding_rates` (some of
    `BASE_RATES` replaced, e.g. {"fracture": 0.3}), an enriched one: more examples of a rare finding
    without repeating any study."""
    check_params(num_studies, image_size, views, split_fractions, extra_train_studies, extra_finding_rates)
    out = Path(out_dir)
    (out / STAMP).unlink(missing_ok=True)  # written again last: an overwrite never sits under an old stamp
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    total = num_studies + extra_train_studies
    width = max(6, len(str(total - 1)))
    tasks = [(seed, i, f"synth_{i:0{width}d}", None, str(images), image_size, views, conspicuity,
              extra_finding_rates if i >= num_studies else None) for i in range(total)]
    studies = _run(tasks, workers)
    stamp = _stamp(num_studies, seed, image_size, views, split_fractions, conspicuity, extra_train_studies,
                   extra_finding_rates)
    _write_outputs(out, studies, _split_of(num_studies, split_fractions) + ["train"] * extra_train_studies, stamp)
    return out


def ensure_benchmark(root, num_studies: int, seed: int = 0, **kw) -> Path:
    """Return `root` holding the requested benchmark, generating it only if it is not there yet:
    built aside and renamed into place, its `benchmark.json` the completion record
    (`xrg.data.cache.build_atomically`)."""
    params = {k: kw[k] for k in ("image_size", "views", "split_fractions", "conspicuity", "extra_train_studies",
                                    "extra_finding_rates") if k in kw}
    defaults = {"image_size": 256, "views": 2, "split_fractions": (0.8, 0.1, 0.1), "conspicuity": 1.0}
    wanted = _stamp(num_studies, seed, **(defaults | params))
    return build_atomically(root, wanted, lambda out: generate_benchmark(out, num_studies, seed, **kw), STAMP,
                            what="synthetic benchmark")


# ------------------------------------------------------------------------------ render mode
def render_for_annotation(annotation_path, labels_path, out_dir, *, seed: int = 0, image_size: int = 256,
                          views: int = 2, workers: int = 0, conspicuity: float = 1.0) -> Path:
    """Render phantoms showing each study's labels, for an existing R2Gen annotation (real text).

    Writes annotation.json (same studies and reports, image_path rewritten), images/, labels.json
    (all 14 names, missing ones blank) and findings.json.
    """
    check_params(1, image_size, views, (1.0, 0.0, 0.0))
    annotation = _load_json(Path(annotation_path))
    labels = _load_json(Path(labels_path))
    items = _annotation_items(annotation, annotation_path)
    if not isinstance(labels, dict):
        raise DataError(f"{labels_path}: expected an object mapping study id to its labels, got {type(labels).__name__}")
    codes = {item["id"]: _study_labels(labels, item["id"], labels_path) for _, item in items}
    out = Path(out_dir)
    (out / STAMP).unlink(missing_ok=True)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, i, item["id"], codes[item["id"]], str(images), image_size, views, conspicuity, None)
             for i, (_, item) in enumerate(items)]
    studies = _run(tasks, workers)
    for study, (_, item) in zip(studies, items):
        study["report"] = item["report"]
    stamp = _stamp(len(items), seed, image_size, views, (0, 0, 0), conspicuity) | {"source": str(annotation_path)}
    _write_outputs(out, studies, [split for split, _ in items], stamp)
    return out


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e


def _annotation_items(annotation, path) -> list[tuple[str, dict]]:
    if not isinstance(annotation, dict) or not any(s in annotation for s in SPLITS):
        raise DataError(f"{path}: expected an object with 'train' / 'val' / 'test' lists of studies")
    items, seen = [], set()
    for split in SPLITS:
        studies = annotation.get(split, [])
        if not isinstance(studies, list):
            raise DataError(f"{path}: '{split}' must be a list of studies, got {type(studies).__name__}")
        for i, item in enumerate(studies):
            where = f"{path}: {split}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("report"), str):
                raise DataError(f"{where}: expected an object with string 'id' and 'report'")
            study_id = item["id"]
            if not study_id or "/" in study_id or "\\" in study_id or study_id in (".", ".."):
                raise DataError(f"{where}: study id {study_id!r} cannot name an image folder")
            if study_id in seen:
                raise DataError(f"{where}: duplicate study id {study_id!r}")
            seen.add(study_id)
            items.append((split, item))
    return items


def _study_labels(labels: dict, study_id: str, path) -> dict[str, int | None]:
    if study_id not in labels:
        raise DataError(f"{path}: no labels for study {study_id!r}")
    given = labels[study_id]
    if not isinstance(given, dict):
        raise DataError(f"{path}: labels of study {study_id!r} must be an object of label name -> code")
    unknown = sorted(set(given) - set(CHEXPERT_LABELS))
    if unknown:
        raise DataError(f"{path}: study {study_id!r} has unknown label {unknown[0]!r}; "
                        f"expected names from xrg.data.labels.CHEXPERT_LABELS")
    codes = {}
    for name in CHEXPERT_LABELS:
        code = given.get(name)
        if isinstance(code, float) and code == code and code == int(code):
            code = int(code)  # 1.0 / 0.0 / -1.0 from CSV-derived labels
        elif isinstance(code, float):  # NaN: blank
            code = None
        if code not in _CODES or isinstance(code, bool):
            raise DataError(f"{path}: study {study_id!r}, label {name!r}: code {given.get(name)!r} is not 1, 0, -1 or null")
        codes[name] = code
    return codes
