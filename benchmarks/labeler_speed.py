"""Reports per second of the `chexpert-rules` labeler on real IU X-Ray text, raw and R2Gen-cleaned.

    python benchmarks/labeler_speed.py [--annotation PATH] [--out PATH]

Reads ../shared/data/iu_xray/annotation.json (skips when absent), writes
benchmarks/results/labeler_speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xrg.data.cleaning import clean_iu_xray
from xrg.data.jsonl import write_atomic
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotation", type=Path, default=ANNOTATION, help="an R2Gen-style annotation.json")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "labeler_speed.json")
    a = parser.parse_args()
    if not a.annotation.is_file():
        print(f"skipped: {a.annotation} not found")
        return
    raw = [item["report"] for item in json.loads(a.annotation.read_text())["train"]]
    results = {"reports": len(raw), "raw_per_s": reports_per_second(raw),
               "cleaned_per_s": reports_per_second([clean_iu_xray(r) for r in raw])}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(a.out, json.dumps(results, indent=2))
    print(f"{'text':<10} {'reports/s':>10}\n{'raw':<10} {results['raw_per_s']:>10.0f}\n{'cleaned':<10} {results['cleaned_per_s']:>10.0f}")


if __name__ == "__main__":
    main()
