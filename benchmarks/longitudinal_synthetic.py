"""Does the model read the prior study? recipes/mix/prior_study_longitudinal.yaml (the transformer
with the `PriorStudy` guide: prior views as tagged memory) against the same recipe without the
guide, on the synthetic longitudinal pairs, same budget, scored on the test split by how often the
report words each tracked finding's course ("new", "unchanged", "resolved") right.

    python benchmarks/longitudinal_synthetic.py --pairs 1000 --epochs 16   # -> benchmarks/results/longitudinal_synthetic.json

Without the prior, "new" and "unchanged" look the same in the current image and "resolved" looks
like no finding, so the no-prior model is near chance on the course; the gap is what the prior adds.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch
import yaml

import xrg
from synthetic_runs import REPO, Results, best_checkpoint, measured
from xrg.cli import main
from xrg.data import ReportDataModule
from xrg.data.synthetic.longitudinal import COURSES, generate_longitudinal, stated_courses

RECIPE = REPO / "recipes" / "mix" / "prior_study_longitudinal.yaml"


def recipe_without_prior(out: Path) -> Path:
    config = yaml.safe_load(RECIPE.read_text())
    config["model"]["init_args"].pop("guides")
    config["data"]["init_args"]["prior_views"] = 0
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def course_scores(checkpoint: Path, data: Path, prior_views: int, crop: int, batch_size: int = 32) -> dict:
    """Share of (test study, tracked finding) whose course the generated report states right, overall and per course."""
    model = xrg.load(checkpoint).eval()
    dm = ReportDataModule(annotation_path=str(data / "annotation.json"), prior_views=prior_views, max_views=2,
                          image_size=crop, resize=crop + crop // 8, eval_batch_size=batch_size)
    dm.setup("test")
    truth = json.loads((data / "courses.json").read_text())
    right, total = Counter(), Counter()
    with torch.no_grad():
        for batch in dm.test_dataloader():
            for study, report in zip(batch["ids"], model.generate_reports(model.encode(batch, with_loss=False))):
                stated = stated_courses(report)
                for finding, course in truth[study].items():
                    total[course] += 1
                    right[course] += stated.get(finding) == course
    scores = {f"course_accuracy/{c}": round(right[c] / total[c], 4) for c in COURSES if total[c]}
    scores["course_accuracy"] = round(sum(right.values()) / sum(total.values()), 4)
    return scores


def run(a) -> dict:
    work, data = Path(a.workdir), Path(a.data)
    generate_longitudinal(data, a.pairs, image_size=a.image_size)  # reused when already built
    results = Results(a.out, vars(a))
    work.mkdir(parents=True, exist_ok=True)
    for name, recipe, prior_views in (("with prior", RECIPE, 2), ("without prior", recipe_without_prior(work / "no_prior.yaml"), 0)):
        run_dir = work / name.replace(" ", "_")
        overrides = [f"--data.init_args.annotation_path={data / 'annotation.json'}",
                     f"--data.init_args.labels_path={data / 'labels.json'}", f"--trainer.max_epochs={a.epochs}",
                     f"--trainer.default_root_dir={run_dir}", "--trainer.enable_progress_bar=false",
                     f"--data.init_args.image_size={a.crop}", f"--data.init_args.resize={a.crop + a.crop // 8}"]
        _, cost = measured(main, ["fit", "--config", str(recipe), *overrides])
        checkpoint = best_checkpoint(run_dir)
        results[name] = {"fit": cost, "checkpoint": str(checkpoint), **course_scores(checkpoint, data, prior_views, a.crop)}
        results.save()
    return results


def print_table(results: dict) -> None:
    keys = ["course_accuracy", *(f"course_accuracy/{c}" for c in COURSES)]
    print(f"{'':16s}" + "".join(f"{k.split('/')[-1]:>18s}" for k in keys) + f"{'fit CPU s':>12s}")
    for name, row in results.items():
        if name != "settings":
            print(f"{name:16s}" + "".join(f"{row.get(k, float('nan')):>18.4f}" for k in keys) + f"{row['fit']['cpu_s']:>12}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO / "data_cache" / "longitudinal"))
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=128, help="pixels of the generated pairs")
    parser.add_argument("--crop", type=int, default=112, help="crop fed to the models")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--workdir", default="runs/longitudinal_benchmark")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "longitudinal_synthetic.json"))
    args = parser.parse_args()
    print_table(run(args))
    print(f"\nwrote {args.out}")
