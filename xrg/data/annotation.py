"""R2Gen `annotation.json`: {"train": [...], "val": [...], "test": [...]}, items {id, report, image_path}.

Items may also carry the study's `indication` (text) and its `prior` study
(`{"id", "report", "image_path"}`), as `xrg data mimic-cxr` writes them.

IU X-Ray lists two views per study, MIMIC-CXR one; both share this reader. Every problem found is
reported with the file, split, item index and study id, so a bad row is fixed in one look.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PriorStudy:
    id: str
    report: str
    image_paths: tuple[str, ...]


@dataclass(frozen=True)
class Study:
    id: str
    report: str
    image_paths: tuple[str, ...]
    split: str
    indication: str = ""
    prior: PriorStudy | None = None


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a UTF-8 JSON file ({err})") from None


def read_annotation(path: str | Path) -> dict[str, list[Study]]:
    path = Path(path)
    raw = read_json(path, "annotation")
    if not isinstance(raw, dict) or not any(split in raw for split in SPLITS):
        raise DataError(f"{path}: expected an object with keys {list(SPLITS)}, got {type(raw).__name__}")
    annotation = {}
    for split in SPLITS:
        items = raw.get(split, [])
        if not isinstance(items, list):
            raise DataError(f"{path} [{split}]: expected a list of studies, got {type(items).__name__}")
        annotation[split] = [_parse_item(item, path, split, i) for i, item in enumerate(items)]
    _refuse_duplicate_ids(annotation, path)
    return annotation


def _refuse_duplicate_ids(annotation: dict[str, list[Study]], path: Path) -> None:
    """A study listed twice is trained on twice, or tested on what was trained on (leakage)."""
    seen: dict[str, str] = {}
    for split, studies in annotation.items():
        for index, study in enumerate(studies):
            where = f"[{split}][{index}]"
            if study.id in seen:
                raise DataError(f"{path}: study id {study.id!r} appears twice, at {seen[study.id]} and {where}; "
                                "expected unique ids across all splits")
            seen[study.id] = where


def _parse_item(item: Any, path: Path, split: str, index: int) -> Study:
    where = f"{path} [{split}][{index}]"
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object with id, report, image_path")
    for key in ("id", "report", "image_path"):
        if key not in item:
            raise DataError(f"{where} (id={item.get('id')!r}): missing key {key!r}")
    study_id, report, image_path = item["id"], item["report"], item["image_path"]
    if not isinstance(study_id, (str, int)):
        raise DataError(f"{where}: id must be a string, got {type(study_id).__name__}")
    if not isinstance(report, str):
        raise DataError(f"{where} (id={study_id!r}): report must be a string")
    indication = item.get("indication") or ""
    if not isinstance(indication, str):
        raise DataError(f"{where} (id={study_id!r}): indication must be a string")
    prior = item.get("prior")
    if prior is not None:
        if not isinstance(prior, dict) or not isinstance(prior.get("report", ""), str):
            raise DataError(f"{where} (id={study_id!r}): prior must be an object with id, report, image_path")
        prior = PriorStudy(str(prior.get("id", "")), prior.get("report", ""),
                           _image_paths(prior.get("image_path"), f"{where} (id={study_id!r}) prior"))
    return Study(id=str(study_id), report=report, image_paths=_image_paths(image_path, f"{where} (id={study_id!r})"),
                 split=split, indication=indication, prior=prior)


def _image_paths(image_path: Any, where: str) -> tuple[str, ...]:
    paths = [image_path] if isinstance(image_path, str) else image_path
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise DataError(f"{where}: image_path must be a path or a non-empty list of paths")
    return tuple(paths)


def read_labels(path: str | Path) -> dict[str, list[float]]:
    """labels.json: {study_id: {observation: 1|0|-1|null}} -> {study_id: 14 floats, NaN for blank}."""
    path = Path(path)
    raw = read_json(path, "labels")
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected an object mapping study id to labels")
    table = {}
    for study_id, labels in raw.items():
        if not isinstance(labels, dict):
            raise DataError(f"{path} (id={study_id!r}): expected an object of observation -> code")
        unknown = set(labels) - set(CHEXPERT_LABELS)
        if unknown:
            raise DataError(f"{path} (id={study_id!r}): unknown observations {sorted(unknown)}")
        row = []
        for name in CHEXPERT_LABELS:
            code = labels.get(name)
            if code not in (1, 0, -1, None):
                raise DataError(f"{path} (id={study_id!r}): {name!r} must be 1, 0, -1 or null, got {code!r}")
            row.append(math.nan if code is None else float(code))
        table[str(study_id)] = row
    return table
