"""What every preparation command writes: R2Gen's `annotation.json` plus `labels.json`, atomically,
and a one-screen summary of what was kept and what was skipped and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from xrg.data.annotation import SPLITS
from xrg.data.jsonl import write_atomic


def write_json_atomic(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(payload, indent=1, ensure_ascii=False))


def write_dataset(out: Path, items: list[dict], labels: dict[str, dict], skipped: Counter) -> str:
    """annotation.json ({split: [items]}) and labels.json ({id: {observation: code}}) under `out`;
    returns the summary line the command prints."""
    annotation = {split: [item for item in items if item["split"] == split] for split in SPLITS}
    write_json_atomic(out / "labels.json", {item["id"]: labels[item["id"]] for item in items if item["id"] in labels})
    write_json_atomic(out / "annotation.json", annotation)  # last: its presence means the set is complete
    counts = ", ".join(f"{split} {len(annotation[split])}" for split in SPLITS)
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"
    return f"{len(items)} studies ({counts}); skipped: {reasons} -> {out}"
