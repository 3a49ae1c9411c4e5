"""How well do generated reports state the right findings? Per-finding accuracy on the synthetic test split.

    python benchmarks/demo_quality.py --ckpt runs/r2gen_synthetic/.../last.ckpt [--split test]

Generated reports are labelled with the offline `chexpert-rules` labeler; a finding counts as
stated when its code is 1 (positive). Ground truth is the benchmark's labels.json (1 = present).
Chance is the majority-class accuracy of each finding on the same split, so a report generator
that always writes the most common sentence scores exactly chance.
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
    predicted = label_reports(generated)
    table = {}
    for j, name in enumerate(CHEXPERT_LABELS):
        true_pos = [not math.isnan(v) and v == 1 for v in truth[:, j].tolist()]
        pred_pos = [row[name] == 1 for row in predicted]
        support = sum(true_pos)
        accuracy = sum(t == p for t, p in zip(true_pos, pred_pos)) / len(true_pos)
        chance = max(support, len(true_pos) - support) / len(true_pos)
        table[name] = {"accuracy": accuracy, "chance": chance, "positives": support}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", default="benchmarks/results/demo_quality.json")
    args = parser.parse_args()

    model = xrg.load(args.ckpt)
    checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    data_config = dict(checkpoint["datamodule_hyper_parameters"])
    data_config.pop("_instantiator", None)
    datamodule = instantiate_module(L.LightningDataModule, data_config)
    ids, generated, truth = generate_split(model, datamodule, args.split)
    table = per_finding_accuracy(generated, truth)

    print(f"{'finding':<28} {'positives':>9} {'accuracy':>9} {'chance':>7}")
    for name, row in table.items():
        if row["positives"]:
            print(f"{name:<28} {row['positives']:>9} {row['accuracy']:>9.3f} {row['chance']:>7.3f}")
    mentioned = [r for r in table.values() if r["positives"]]
    mean_acc = sum(r["accuracy"] for r in mentioned) / len(mentioned)
    mean_chance = sum(r["chance"] for r in mentioned) / len(mentioned)
    print(f"{'mean over present findings':<28} {'':>9} {mean_acc:>9.3f} {mean_chance:>7.3f}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": args.ckpt, "split": args.split, "studies": len(ids),
                               "per_finding": table, "mean_accuracy": mean_acc, "mean_chance": mean_chance,
                               "examples": [{"id": i, "generated": g} for i, g in list(zip(ids, generated))[:5]]},
                              indent=2))


if __name__ == "__main__":
    main()
