"""TRRG on the synthetic benchmark, at a stated CPU budget.

    python benchmarks/trrg_synthetic.py            # -> benchmarks/results/trrg_synthetic.json

1. stage 1 (recipes/trrg/stage1_synthetic.yaml): zero-shot AUC per finding on the test split
   (positive = label 1; negative = everything else, blank included) and image -> report
   retrieval recall@k;
2. stage 2 (recipes/trrg/stage2_synthetic.yaml) from the stage-1 checkpoint, with clue modules
   and without them (the same recipe with perception/injector/interaction set to null), scored
   on the test split: clinical efficacy (chexpert-rules) and NLG.
Every run records its CPU seconds (this process's user + system time) next to its numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import lightning as L
import torch

import xrg
from xrg.blocks.findings.zero_shot import ZeroShotDiseasePerception
from xrg.cli import main
from xrg.data import ReportDataModule
from xrg.data.datamodule import SyntheticBenchmark
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.contrastive import retrieval_recall

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "trrg"
HEADLINE = ("ce/chexpert-rules/macro14/f1", "ce/chexpert-rules/micro14/f1", "ce/chexpert-rules/macro5/f1",
            "nlg/bleu_4", "nlg/rouge_l", "nlg/cider")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(fn, *args):
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fn(*args)
    return result, {"cpu_s": round(cpu_seconds() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)}


def data_overrides(a) -> list[str]:
    return [f"--data.init_args.synthetic.root={a.root}", f"--data.init_args.synthetic.num_studies={a.num_studies}",
            f"--data.init_args.image_size={a.image_size}", f"--data.init_args.resize={a.image_size + a.image_size // 8}",
            f"--data.init_args.max_views={a.views}"]


def datamodule(a) -> ReportDataModule:
    dm = ReportDataModule(synthetic=SyntheticBenchmark(root=a.root, num_studies=a.num_studies, seed=0, views=2),
                          image_size=a.image_size, resize=a.image_size + a.image_size // 8, max_views=a.views,
                          batch_size=64)
    dm.prepare_data()
    dm.setup("test")
    return dm


def best_checkpoint(run: Path) -> Path:
    found = sorted(run.rglob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else next(run.rglob("last.ckpt"))


def fit(recipe: str, run: Path, a, *extra: str) -> Path:
    main(["fit", "--config", str(RECIPES / recipe), *data_overrides(a), f"--trainer.default_root_dir={run}",
          "--trainer.enable_checkpointing=true", *extra])
    return best_checkpoint(run)


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
    from torchmetrics.functional.classification import binary_auroc

    auc = {}
    for k, name in enumerate(CHEXPERT_LABELS):
        positive = (labels[:, k] == 1).long()
        if 0 < positive.sum() < len(positive):  # AUC needs both classes
            auc[name] = round(binary_auroc(probs[:, k], positive).item(), 4)
    recall = retrieval_recall(torch.cat(images), torch.cat(reports), (1, 5, 10))
    return {"zero_shot_auc": auc, "zero_shot_auc_mean": round(sum(auc.values()) / len(auc), 4),
            "recall": {f"@{k}": round(v, 4) for k, v in recall.items()}, "test_studies": len(labels)}


def test_scores(checkpoint: Path, a) -> dict:
    model = xrg.load(checkpoint)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (scores,) = trainer.test(model, datamodule=datamodule(a), verbose=False)
    return {key: round(float(scores[f"test/{key}"]), 4) for key in HEADLINE if f"test/{key}" in scores}


def run(a) -> dict:
    work = Path(a.workdir)
    results = {"settings": vars(a)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every phase, so a long run leaves its numbers as it goes
        Path(a.out).write_text(json.dumps(results, indent=1))

    stage1, cost = measured(fit, "stage1_synthetic.yaml", work / "stage1", a, f"--trainer.max_epochs={a.stage1_epochs}")
    results["stage1"] = {"fit": cost, **evaluate_stage1(stage1, a)}
    save()
    stage2 = [f"--trainer.max_epochs={a.stage2_epochs}", "--model.init_args.generate_in_validation=false",
              f"--model.init_args.init_from.checkpoint={stage1}"]
    no_clues = ["--model.init_args.perception=null", "--model.init_args.injector=null", "--model.init_args.interaction=null",
                "--model.init_args.init_from.blocks={image_encoder: image_encoder}"]
    for name, extra in (("with_clues", []), ("without_clues", no_clues)):
        checkpoint, cost = measured(fit, "stage2_synthetic.yaml", work / name, a, *stage2, *extra)
        scores, test_cost = measured(test_scores, checkpoint, a)
        results[f"stage2_{name}"] = {"fit": cost, "test": test_cost, **scores}
        save()
    return results


def print_table(results: dict) -> None:
    s1 = results["stage1"]
    print(f"\nstage 1 ({s1['fit']['cpu_s']} CPU s): zero-shot AUC mean {s1['zero_shot_auc_mean']}, "
          f"recall {s1['recall']}")
    for name, auc in s1["zero_shot_auc"].items():
        print(f"  {name:28s} {auc:.3f}")
    print(f"\n{'stage 2':16s}" + "".join(f"{k.split('/')[-2] + '/' + k.split('/')[-1]:>16s}" for k in HEADLINE) + f"{'fit CPU s':>12s}")
    for name in ("with_clues", "without_clues"):
        row = results[f"stage2_{name}"]
        print(f"{name:16s}" + "".join(f"{row.get(k, float('nan')):>16.4f}" for k in HEADLINE) + f"{row['fit']['cpu_s']:>12}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data_cache/synthetic")
    parser.add_argument("--num-studies", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--views", type=int, default=1, help="views per study fed to the models (the benchmark has 2)")
    parser.add_argument("--stage1-epochs", type=int, default=10)
    parser.add_argument("--stage2-epochs", type=int, default=6)
    parser.add_argument("--workdir", default="runs/trrg_benchmark")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "trrg_synthetic.json"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    outcome = run(args)
    print_table(outcome)
    print(f"\nwrote {args.out}")
