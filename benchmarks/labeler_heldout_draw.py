"""Draw IU X-Ray train reports for a new hand-labeled held-out set of the `chexpert-rules` labeler.

    python benchmarks/labeler_heldout_draw.py --count 220 --seed 2412 --output reports_to_label.jsonl

(seed 1202 drew round 1's set, now in the tuning set; seed 2412 round 2's, labeler_heldout.jsonl.
The candidates depend on the fixtures present, so a draw repeats only from its commit: round 2's
from 1893096, where labeler_heldout.jsonl did not exist yet.)

Candidates are the distinct train-split report texts (compared lowercased, whitespace collapsed)
that are neither a development case (labeler_cases.jsonl) nor in the tuning set
(labeler_tuning.jsonl) nor in an existing held-out file; `random.Random(seed).sample` over them,
sorted, picks `count`. Writes lines {"id", "text"} only: the labeler is not run here, so the hand
labels are written before anyone sees its output.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "metrics" / "fixtures"
ANNOTATION = REPO.parent / "shared" / "data" / "iu_xray" / "annotation.json"


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=220)
    parser.add_argument("--seed", type=int, default=1202)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    used = set()
    for name in ("labeler_cases.jsonl", "labeler_tuning.jsonl", "labeler_heldout.jsonl"):
        if (FIXTURES / name).is_file():
            used |= {normalised(json.loads(line)["text"]) for line in (FIXTURES / name).open()}
    first: dict[str, dict] = {}  # one train item per distinct text: the first in the file
    for item in json.loads(ANNOTATION.read_text())["train"]:
        key = normalised(item["report"])
        if key and key not in used:
            first.setdefault(key, item)
    candidates = sorted(first)
    chosen = sorted(random.Random(args.seed).sample(candidates, args.count))
    with args.output.open("w") as out:
        for key in chosen:
            out.write(json.dumps({"id": first[key]["id"], "text": first[key]["report"]}) + "\n")
    print(f"{len(candidates)} candidates, wrote {len(chosen)} to {args.output}")


if __name__ == "__main__":
    main()
