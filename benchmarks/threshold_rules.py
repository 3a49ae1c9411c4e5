"""How should a findings guide set its thresholds? Each rule replayed on one checkpoint's head.

    python benchmarks/threshold_rules.py --checkpoint runs/.../best-epoch=23.ckpt --image-size 96

The checkpoint's findings head reads the validation and test splits of the synthetic benchmark
once; each rule then sets one threshold per observation from the validation probabilities
(`best_f1_thresholds`, as `PredictedFindings(tune_thresholds)` does), and the head's decisions at
those thresholds are scored on the test split (CE macro-14 / micro-14 F1 of the decisions, 1 =
positive). Besides the whole validation split, each rule is tuned on random halves of it, the size
of the README demo's 100 validation studies, to show how it fares on few positives.
Writes benchmarks/results/threshold_rules.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import xrg
from synthetic_runs import REPO, add_data_args, datamodule
from xrg.blocks.findings.base import best_f1_thresholds
from xrg.data.jsonl import write_atomic
from xrg.metrics.ce import ce_from_labels

RULES = {"0.5, not tuned": None, "best F1": {}, "best F1, max_call_ratio 2": {"max_call_ratio": 2.0},
         "best F1, max_call_ratio 1.5": {"max_call_ratio": 1.5}, "best F1, max_call_ratio 1": {"max_call_ratio": 1.0}}


def head_probabilities(model, a, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The findings guide's head probabilities `[N, K]` and the labels of `split`."""
    return model.guides["findings"].probabilities(model, datamodule(a, 64, split).predict_dataloader())


def decision_f1(probs: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor) -> tuple[float, float]:
    """(macro-14, micro-14) CE F1 of the decisions `probs >= thresholds` against `labels`."""
    scores = ce_from_labels((probs >= thresholds).float(), labels)
    return scores["ce/chexpert-rules/macro14/f1"], scores["ce/chexpert-rules/micro14/f1"]


def run(a) -> dict:
    model = xrg.load(a.checkpoint)
    val, test = head_probabilities(model, a, "val"), head_probabilities(model, a, "test")
    generator = torch.Generator().manual_seed(0)
    halves = [torch.randperm(len(val[0]), generator=generator)[: len(val[0]) // 2] for _ in range(a.halves)]
    results = {"settings": vars(a)}
    for name, rule in RULES.items():
        def scored(rows: torch.Tensor | slice) -> tuple[float, float]:
            thresholds = (torch.full((val[0].shape[1],), 0.5) if rule is None
                          else best_f1_thresholds(val[0][rows], val[1][rows], **rule))
            return decision_f1(*test, thresholds)
        whole, on_halves = scored(slice(None)), [scored(rows) for rows in halves]
        results[name] = {"val": whole, "halves_mean": [sum(s[i] for s in on_halves) / len(on_halves) for i in (0, 1)],
                         "halves_worst_micro": min(s[1] for s in on_halves)}
    return results


def print_table(results: dict) -> None:
    print(f"{'thresholds':30s}{'whole val: macro / micro':>28s}{'val halves: macro / micro':>28s}{'worst micro':>13s}")
    for name, row in results.items():
        if name != "settings":
            print(f"{name:30s}{row['val'][0]:>19.3f} / {row['val'][1]:.3f}{row['halves_mean'][0]:>19.3f} / "
                  f"{row['halves_mean'][1]:.3f}{row['halves_worst_micro']:>13.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=96, views=2)
    parser.add_argument("--checkpoint", required=True, help="a ReportGeneration checkpoint with a PredictedFindings guide")
    parser.add_argument("--halves", type=int, default=30, help="random halves of the validation split to tune on")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "threshold_rules.json"))
    args = parser.parse_args()
    results = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(args.out), json.dumps(results, indent=1))
    print_table(results)
    print(f"\nwrote {args.out}")
