"""JSONL files: reading what people or other tools wrote (every problem names `path:line`), and
the names around a predictions file that make its writing atomic and checkable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from xrg.data.errors import DataError


def read_jsonl_objects(path: str | Path, what: str = "JSONL") -> Iterator[tuple[str, dict[str, Any]]]:
    """("path:line", object) for every non-blank line; bad bytes, bad JSON or a non-object raise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{where}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not a JSON line ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


# Reports go through the rule labeler, whose cost grows with the square of a sentence's length
# (a 3,000-word sentence takes ~40 s on one core); real reports stay under a few hundred words.
MAX_REPORT_WORDS = 1000


def check_report_length(where: str, key: str, text: str) -> None:
    """Refuse a report far longer than any radiology report (a runaway generation, a pasted file)."""
    words = len(text.split())
    if words > MAX_REPORT_WORDS:
        raise DataError(f"{where}: {key!r} has {words:,} words; expected a report of at most "
                        f"{MAX_REPORT_WORDS:,} words (a runaway generation?)")


def partial_path(target: Path) -> Path:
    """Where a predictions file is written until it is complete."""
    return target.with_name(target.name + ".partial")


def sidecar_path(target: Path) -> Path:
    """`{"rows", "errors", "expected"}` of a complete predictions file, written after it."""
    return target.with_name(target.name + ".meta.json")


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a part."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
