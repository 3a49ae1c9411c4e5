"""Reports per second of the `chexpert-rules` labeler on real IU X-Ray text, raw and R2Gen-cleaned.

    python benchmarks/labeler_speed.py

Reads ../shared/data/iu_xray/annotation.json (skips when absent), writes
benchmarks/results/labeler_speed.json and prints a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from xrg.data.cleaning import clean_iu_xray
from xrg.metrics.labeler import label_reports

REPO = Path(__file__).resolve().parents[1]
ANNOTATION = REPO.parent / "shared" / "data" / "iu_xray" / "annotation.json"


def reports_per_second(reports: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        label_reports(reports)
        best = min(best, time.perf_counter() - start)
    return len(reports) / best


def main() -> None:
    if not ANNOTATION.is_file():
        print(f"skipped: {ANNOTATION} not found")
        return
    raw = [item["report"] for item in json.loads(ANNOTATION.read_text())["train"]]
    results = {"reports": len(raw), "raw_per_s": reports_per_second(raw),
               "cleaned_per_s": reports_per_second([clean_iu_xray(r) for r in raw])}
    out = REPO / "benchmarks" / "results" / "labeler_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"{'text':<10} {'reports/s':>10}\n{'raw':<10} {results['raw_per_s']:>10.0f}\n{'cleaned':<10} {results['cleaned_per_s']:>10.0f}")


if __name__ == "__main__":
    main()
