"""What every preparation command writes: R2Gen's `annotation.json` plus `labels.json`, atomically,
and a one-screen summary of what was kept and what was skipped and why."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from xrg.data.annotation import SPLITS


def write_json_atomic(path: Path, payload: object) -> None:
    """Write to a temporary file beside `path`, then rename: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=1, ensure_ascii=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_dataset(out: Path, items: list[dict], labels: dict[str, dict], skipped: Counter) -> str:
    """annotation.json ({split: [items]}) and labels.json ({id: {observation: code}}) under `out`;
    returns the summary line the command prints."""
    annotation = {split: [item for item in items if item["split"] == split] for split in SPLITS}
    write_json_atomic(out / "labels.json", {item["id"]: labels[item["id"]] for item in items if item["id"] in labels})
    write_json_atomic(out / "annotation.json", annotation)  # last: its presence means the set is complete
    counts = ", ".join(f"{split} {len(annotation[split])}" for split in SPLITS)
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"
    return f"{len(items)} studies ({counts}); skipped: {reasons} -> {out}"
