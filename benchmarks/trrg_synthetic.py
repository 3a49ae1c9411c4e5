"""TRRG on the synthetic benchmark, at a stated CPU budget.

    python benchmarks/trrg_synthetic.py            # -> benchmarks/results/trrg_synthetic.json

1. stage 1 (recipes/trrg/stage1_synthetic.yaml): zero-shot AUC per finding on the test split
   (positive = label 1; negative = 0 or blank; uncertain left out, as heads train) and image -> report
   retrieval recall@k;
2. stage 2 (recipes/trrg/stage2_synthetic.yaml) from the stage-1 checkpoint, with clue modules
   and without them (the same recipe with perception/injector/interaction set to null), scored
   on the test split: clinical efficacy (chexpert-rules) and NLG; for the run with clues also the
   AUC of its perception after fine-tuning (what the clue tokens carry).
Defaults are the recipes' settings (96 px frontal view, the recipes' epochs and cosine schedules);
`--stage2-recipe stage2_llm_synthetic.yaml` compares the clue path with the LLM decoder instead.
Data arguments are synthetic_runs.py's (default: 2,000 studies, 800 in the test split).
Every run records its CPU seconds (this process's user + system time) next to its numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from synthetic_runs import (
    REPO,
    Results,
    add_data_args,
    datamodule,
    fit,
    measured,
    print_rows,
    run_from_command_line,
    test_scores,
)

import xrg
from xrg.blocks.findings.zero_shot import ZeroShotDiseasePerception
from xrg.data.labels import CHEXPERT_LABELS, select_labels
from xrg.tasks.contrastive import retrieval_recall
from xrg.tasks.findings import per_label_auc

RECIPES = REPO / "recipes" / "trrg"


def auc_summary(probs: torch.Tensor, labels: torch.Tensor, names: list[str]) -> tuple[dict[str, float], float]:
    """Test AUC per named finding (labels: a batch's 14 columns) and their mean, rounded for the JSON."""
    auc = per_label_auc(probs, select_labels(labels, names), names)
    return {name: round(value, 4) for name, value in auc.items()}, round(sum(auc.values()) / len(auc), 4)


@torch.no_grad()
def perception_auc(checkpoint: Path, a) -> dict:
    """A stage-2 checkpoint's perception on the test split: what its clues carry after fine-tuning
    (the image encoder keeps training under the consistency loss; the prompt side stays frozen)."""
    task = xrg.load(checkpoint)
    perception = task.guides["clues"].perception
    probs, labels = [], []
    for batch in datamodule(a).test_dataloader():
        probs.append(perception(task.image_encoder(batch["images"], batch["view_mask"])).sigmoid())
        labels.append(batch["labels"])
    auc, mean = auc_summary(torch.cat(probs), torch.cat(labels), perception.label_names)
    return {"perception_auc": auc, "perception_auc_mean": mean}


@torch.no_grad()
def evaluate_stage1(checkpoint: Path, a) -> dict:
    task = xrg.load(checkpoint)
    perception = ZeroShotDiseasePerception(task.joint.text_encoder, list(CHEXPERT_LABELS), embed_dim=task.joint.embed_dim)
    perception.joint = task.joint  # the stage-1 joint space, as stage 2 loads it
    perception.eval()
    probs, labels, images, reports = [], [], [], []
    for batch in datamodule(a).test_dataloader():
        visual = task.image_encoder(batch["images"], batch["view_mask"])
        probs.append(perception(visual).sigmoid())
        labels.append(batch["labels"])
        images.append(task.joint.embed_images(visual.pooled))
        reports.append(task.joint.embed_texts(batch["reports"]))
    probs, labels = torch.cat(probs), torch.cat(labels)
    auc, mean = auc_summary(probs, labels, perception.label_names)
    recall = retrieval_recall(torch.cat(images), torch.cat(reports), (1, 5, 10))
    return {"zero_shot_auc": auc, "zero_shot_auc_mean": mean,
            "recall": {f"@{k}": round(v, 4) for k, v in recall.items()}, "test_studies": len(labels)}


def epochs(n: int | None) -> list[str]:
    """The epoch budget, with the recipes' cosine schedule stretched to end with it (None: the recipe's)."""
    return [] if n is None else [f"--trainer.max_epochs={n}", f"--model.init_args.lr_scheduler.init_args.T_max={n}"]


def run(a) -> dict:
    work = Path(a.workdir)
    results = Results(a.out, vars(a))

    if a.stage1_checkpoint:
        stage1, cost = Path(a.stage1_checkpoint), {"reused": a.stage1_checkpoint}
    else:
        # the epoch flags last: they win over an overlay given with --stage1-set that sets its own epochs
        stage1, cost = measured(fit, RECIPES / "stage1_synthetic.yaml", work / "stage1", a, *a.stage1_set,
                                *epochs(a.stage1_epochs))
    results["stage1"] = {"fit": cost, **evaluate_stage1(stage1, a)}
    results.save()
    if a.stage1_only:
        return results
    stage2 = ["--model.init_args.generate_in_validation=false", f"--model.init_args.init_from.checkpoint={stage1}"]
    no_clues = ["--model.init_args.guides=[]", "--model.init_args.frozen=[]",
                "--model.init_args.init_from.blocks={image_encoder: image_encoder}"]
    for name, extra in (("with_clues", []), ("without_clues", no_clues)):
        checkpoint, cost = measured(fit, RECIPES / a.stage2_recipe, work / name, a, *stage2, *a.stage2_set, *extra,
                                    *epochs(a.stage2_epochs))
        scores, test_cost = measured(test_scores, checkpoint, a)
        results[f"stage2_{name}"] = {"fit": cost, "test": test_cost, **scores}
        if name == "with_clues":
            results[f"stage2_{name}"].update(perception_auc(checkpoint, a))
        results.save()
    return results


def print_table(results: dict) -> None:
    s1 = results["stage1"]
    print(f"\nstage 1 ({s1['fit'].get('cpu_s', 'reused')} CPU s): zero-shot AUC mean {s1['zero_shot_auc_mean']}, "
          f"recall {s1['recall']}")
    for name, auc in s1["zero_shot_auc"].items():
        print(f"  {name:28s} {auc:.3f}")
    print()
    print_rows({name: results[f"stage2_{name}"] for name in ("with_clues", "without_clues") if f"stage2_{name}" in results})
    clues = results.get("stage2_with_clues", {})
    if "perception_auc_mean" in clues:
        print(f"\nperception after stage 2 (with clues): AUC mean {clues['perception_auc_mean']}")
        for name, auc in clues["perception_auc"].items():
            print(f"  {name:28s} {auc:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=96, views=1)  # the recipes' crop and frontal view
    parser.add_argument("--stage1-epochs", type=int, help="default: the recipe's (40)")
    parser.add_argument("--stage2-epochs", type=int, help="default: the recipe's (30; the LLM recipe 20)")
    parser.add_argument("--stage2-recipe", default="stage2_synthetic.yaml",
                        help="stage2_synthetic.yaml (transformer decoder) or stage2_llm_synthetic.yaml (tiny LLM)")
    parser.add_argument("--stage1-set", action="append", default=[], help="one extra CLI override (repeatable; write --stage1-set=--key=value) for stage 1, e.g. "
                        "--model.init_args.block_lr='{image_encoder: 3.0e-3}'")
    parser.add_argument("--stage2-set", action="append", default=[], help="one extra CLI override (repeatable; write --stage1-set=--key=value) for stage 2")
    parser.add_argument("--stage1-checkpoint", help="evaluate this stage-1 checkpoint instead of fitting one")
    parser.add_argument("--stage1-only", action="store_true", help="stop after stage 1")
    run_from_command_line(parser, "trrg", run, print_table)
