"""Agreement of `chexpert-rules` with hand labels on real IU X-Ray reports.

    python benchmarks/labeler_agreement.py [--errors tuning] [--tag after]

What the rules were tuned on: the development cases (tests/metrics/fixtures/labeler_cases.jsonl,
partial labels, scored on the observations labeled) and the tuning set (labeler_tuning.jsonl:
488 IU X-Ray train reports, all 14 observations: two former held-out sets). Held-out: labeler_heldout.jsonl, IU X-Ray train
reports labeled by hand after the rules were frozen and committed before the labeler ran on them;
its individual errors are never printed (only the aggregate), so it stays unseen by whoever tunes
next. Writes benchmarks/results/labeler_agreement_<tag>.json and prints the tables.
`--errors tuning|dev` lists the disagreements of that part.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrg.data.jsonl import write_atomic
from xrg.metrics.labeler import label_reports
from xrg.metrics.labeler.agreement import agreement, format_agreement

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "metrics" / "fixtures"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", choices=("tuning", "dev"), help="print the disagreements of this part")
    parser.add_argument("--tag", default="current", help="name of the results file")
    args = parser.parse_args()

    parts = {"tuning": _rows(FIXTURES / "labeler_tuning.jsonl"), "development": _rows(FIXTURES / "labeler_cases.jsonl")}
    if (FIXTURES / "labeler_heldout.jsonl").is_file():
        parts["held-out"] = _rows(FIXTURES / "labeler_heldout.jsonl")
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
        if args.errors and {"tuning": "tuning", "dev": "development"}[args.errors] == name:
            for row, guess in zip(rows, predicted):
                wrong = {k: (v, guess[k]) for k, v in row["labels"].items() if v != guess[k]}
                if wrong:
                    print(f"\n{row.get('id', '')}: {row['text']}\n   hand vs labeler: {wrong}")
    out = REPO / "benchmarks" / "results" / f"labeler_agreement_{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(results, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
