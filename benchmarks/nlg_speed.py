"""NLG speed: xrg vs pycocoevalcap 1.2 on the same 3,000 report pairs, in the same run.

    python benchmarks/nlg_speed.py [--pairs PATH] [--repeats 5] [--no-meteor]

Times BLEU-1..4 + ROUGE-L + CIDEr-D (the goal: >= 10x faster with identical values) and, unless
--no-meteor, METEOR (both run the same jar; xrg keeps one process and pipelines the pairs).
Each timing is the median of --repeats runs. Writes benchmarks/results/nlg_speed.json and
prints a table. Needs ../shared/data (or --pairs) and pycocoevalcap.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from xrg.data.jsonl import write_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = REPO / ".." / "shared" / "data" / "golden" / "nlg_timing_pairs_3000.json"
COCO_NAMES = {"Bleu_1": "nlg/bleu_1", "Bleu_2": "nlg/bleu_2", "Bleu_3": "nlg/bleu_3", "Bleu_4": "nlg/bleu_4",
              "ROUGE_L": "nlg/rouge_l", "CIDEr": "nlg/cider", "METEOR": "nlg/meteor"}


def _median_time(function, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def _pycocoevalcap_fast(gts: dict, res: dict) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"Bleu_{order + 1}": bleu[order] for order in range(4)}
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-meteor", action="store_true")
    args = parser.parse_args()
    if not args.pairs.is_file():
        raise SystemExit(f"{args.pairs} not found: pass --pairs or provide ../shared/data")
    from xrg.metrics.nlg import score_pairs

    pairs = json.loads(args.pairs.read_text())["pairs"]
    generated, references = [p["res"] for p in pairs], [p["gts"] for p in pairs]
    gts = {index: [text] for index, text in enumerate(references)}
    res = {index: [text] for index, text in enumerate(generated)}

    rows = []
    coco_time, coco_runs, coco = _median_time(lambda: _pycocoevalcap_fast(gts, res), args.repeats)
    xrg_time, xrg_runs, ours = _median_time(lambda: score_pairs(generated, references, ("bleu", "rouge_l", "cider")).corpus, args.repeats)
    rows.append(("BLEU-1..4 + ROUGE-L + CIDEr-D", coco_time, xrg_time, coco_runs, xrg_runs))
    if not args.no_meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        from xrg.metrics.nlg.meteor import meteor_process

        coco_meteor = Meteor()
        coco_meteor.compute_score({0: ["warm up"]}, {0: ["warm up"]})  # both timed with a warm JVM
        meteor_process().score(["warm up"], ["warm up"])
        coco_m_time, coco_m_runs, (coco["METEOR"], _) = _median_time(lambda: coco_meteor.compute_score(gts, res), args.repeats)
        xrg_m_time, xrg_m_runs, (ours["nlg/meteor"], _) = _median_time(lambda: meteor_process().score(generated, references), args.repeats)
        rows.append(("METEOR (warm JVM)", coco_m_time, xrg_m_time, coco_m_runs, xrg_m_runs))

    differences = {name: abs(coco[name] - ours[key]) for name, key in COCO_NAMES.items() if name in coco}
    result = {
        "pairs": len(pairs),
        "repeats": args.repeats,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "timings_s": [
            {"metrics": name, "pycocoevalcap_median": c, "xrg_median": x, "speedup": c / x, "pycocoevalcap_runs": cr, "xrg_runs": xr}
            for name, c, x, cr, xr in rows
        ],
        "pycocoevalcap": coco,
        "xrg": {key: ours[key] for key in COCO_NAMES.values() if key in ours},
        "max_abs_difference": max(differences.values()),
        "abs_difference": differences,
    }
    out = REPO / "benchmarks" / "results" / "nlg_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=2) + "\n")

    print(f"{len(pairs)} pairs, median of {args.repeats} runs")
    print(f"{'metrics':<32} {'pycocoevalcap s':>16} {'xrg s':>8} {'speedup':>8}")
    for name, c, x, _, _ in rows:
        print(f"{name:<32} {c:>16.3f} {x:>8.3f} {c / x:>7.1f}x")
    print(f"{'score':<12} {'pycocoevalcap':>20} {'xrg':>20} {'|diff|':>10}")
    for name, key in COCO_NAMES.items():
        if name in coco:
            print(f"{name:<12} {coco[name]:>20.15f} {ours[key]:>20.15f} {differences[name]:>10.1e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
