"""Agreement of `chexpert-rules` with hand labels on real IU X-Ray reports.

    python benchmarks/labeler_agreement.py [--errors open] [--tag after]

Held-out set: tests/metrics/fixtures/labeler_heldout.jsonl (270 train reports not among the
development cases, labeled by hand before the labeler's output on them was looked at; 60 of them
"sealed": their individual errors are never printed, only the aggregate). Development cases:
tests/metrics/fixtures/labeler_cases.jsonl (partial labels; scored on the observations labeled).
Writes benchmarks/results/labeler_agreement_<tag>.json and prints the tables.
`--errors open` lists the disagreements of the open part (never of the sealed one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrg.metrics.labeler import label_reports
from xrg.metrics.labeler.agreement import agreement, format_agreement

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "metrics" / "fixtures"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", choices=("open", "dev"), help="print the disagreements of this part")
    parser.add_argument("--tag", default="current", help="name of the results file")
    args = parser.parse_args()

    heldout = _rows(FIXTURES / "labeler_heldout.jsonl")
    development = _rows(FIXTURES / "labeler_cases.jsonl")
    parts = {
        "held-out (all)": heldout,
        "held-out open": [row for row in heldout if row["part"] == "open"],
        "held-out sealed": [row for row in heldout if row["part"] == "sealed"],
        "development": development,
    }
    results = {}
    for name, rows in parts.items():
        predicted = label_reports(row["text"] for row in rows)
        # development cases label only some observations: score those only
        predicted = [{k: p[k] for k in row["labels"]} for row, p in zip(rows, predicted)]
        result = agreement([row["labels"] for row in rows], predicted)
        results[name] = {"reports": len(rows), "macro_f1": result["macro_f1"],
                         "cells": {f"{o}/{c}": cell for (o, c), cell in result["cells"].items()}}
        print(f"\n## {name}: {len(rows)} reports, macro-F1 {result['macro_f1']:.3f}\n")
        print(format_agreement(result))
        if args.errors and (args.errors == "open" and name == "held-out open" or args.errors == "dev" and name == "development"):
            for row, guess in zip(rows, predicted):
                wrong = {k: (v, guess[k]) for k, v in row["labels"].items() if v != guess[k]}
                if wrong:
                    print(f"\n{row.get('id', '')}: {row['text']}\n   hand vs labeler: {wrong}")
    out = REPO / "benchmarks" / "results" / f"labeler_agreement_{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
