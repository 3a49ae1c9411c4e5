"""How well do generated reports state the right findings? Per-finding accuracy on the synthetic test split.

    python benchmarks/demo_quality.py --ckpt runs/r2gen_synthetic/.../last.ckpt [--split test]

Generated reports are labelled with the offline `chexpert-rules` labeler; a finding counts as
stated when its code is 1 (positive). Ground truth is the benchmark's labels.json (1 = present).
Balanced accuracy has chance level 0.5 (a generator that always writes the most common report
scores exactly that); plain accuracy is shown next to the majority-class rate.
Writes benchmarks/results/demo_quality.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import instantiate_module

import xrg
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.jsonl import write_atomic
from xrg.metrics.labeler import label_reports


def generate_split(model, datamodule, split: str) -> tuple[list[str], list[str], torch.Tensor]:
    datamodule.setup("test")
    loader = datamodule._loader(split, train=False)
    ids, generated, labels = [], [], []
    with torch.no_grad():
        for batch in loader:
            ids += batch["ids"]
            generated += model.generate(batch["images"], batch["view_mask"])
            labels.append(batch["labels"])
    return ids, generated, torch.cat(labels)


def per_finding_accuracy(generated: list[str], truth: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per finding: does the generated report state it exactly when the study has it?

    Findings are rare, so plain accuracy rewards never mentioning them; balanced accuracy (mean
    of sensitivity and specificity) has chance level 0.5 whatever the prevalence.
    """
    predicted = label_reports(generated)
    table = {}
    for j, name in enumerate(CHEXPERT_LABELS):
        true_pos = [not math.isnan(v) and v == 1 for v in truth[:, j].tolist()]
        pred_pos = [row[name] == 1 for row in predicted]
        positives, negatives = sum(true_pos), len(true_pos) - sum(true_pos)
        hits = sum(t and p for t, p in zip(true_pos, pred_pos))
        rejections = sum(not t and not p for t, p in zip(true_pos, pred_pos))
        sensitivity = hits / positives if positives else float("nan")
        specificity = rejections / negatives if negatives else float("nan")
        table[name] = {
            "positives": positives,
            "stated": sum(pred_pos),
            "accuracy": (hits + rejections) / len(true_pos),
            "majority_chance": max(positives, negatives) / len(true_pos),
            "sensitivity": sensitivity,
            "specificity": specificity,
            "balanced_accuracy": (sensitivity + specificity) / 2,
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", default="benchmarks/results/demo_quality.json")
    parser.add_argument("--num-beams", type=int, default=None, help="override the decoder's beam size")
    args = parser.parse_args()

    model = xrg.load(args.ckpt)
    if args.num_beams is not None:
        model.decoder.num_beams = args.num_beams
    checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    data_config = dict(checkpoint["datamodule_hyper_parameters"])
    data_config.pop("_instantiator", None)
    datamodule = instantiate_module(L.LightningDataModule, data_config)
    ids, generated, truth = generate_split(model, datamodule, args.split)
    table = per_finding_accuracy(generated, truth)

    print(f"{'finding':<28} {'positives':>9} {'stated':>6} {'sens':>5} {'spec':>5} {'bal.acc':>7} {'acc':>5} {'majority':>8}")
    for name, row in table.items():
        if row["positives"]:
            print(f"{name:<28} {row['positives']:>9} {row['stated']:>6} {row['sensitivity']:>5.2f} {row['specificity']:>5.2f}"
                  f" {row['balanced_accuracy']:>7.3f} {row['accuracy']:>5.2f} {row['majority_chance']:>8.2f}")
    present = [r for r in table.values() if r["positives"]]
    mean_balanced = sum(r["balanced_accuracy"] for r in present) / len(present)
    print(f"mean balanced accuracy over present findings: {mean_balanced:.3f} (chance 0.5)")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps({"checkpoint": args.ckpt, "split": args.split, "studies": len(ids),
                                  "per_finding": table, "mean_balanced_accuracy": mean_balanced,
                                  "examples": [{"id": i, "generated": g} for i, g in list(zip(ids, generated))[:5]]},
                                 indent=2))


if __name__ == "__main__":
    main()
