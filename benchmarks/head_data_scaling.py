"""Does the findings head run out of training studies or of training steps? The same head on more studies.

    python benchmarks/head_data_scaling.py --runs 1000x12 1000x60 5000x12

Each run `NxE` is the classifier stage (recipes/mix/findings_classifier_synthetic.yaml, label-balanced
as the writer's recipe trains its head) fitted on N training studies for E epochs, its last epoch
scored on synthetic_runs.py's 800 test studies (F1 at the thresholds best on its 200 validation
studies, and AUC). `1000x60` has the steps of `5000x12` on the benchmark's own 1,000 studies, so the
two tell more data from more training apart. The extra studies are the generator's studies 2,000
onward (seed 0): a study is drawn from (seed, index) alone, so studies 0-1,999 are synthetic_runs.py's
benchmark exactly (train 0-999, val 1,000-1,199, test 1,200-1,999).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from findings_ab import CLASSIFIER, head_scores
from synthetic_runs import REPO, Results, add_data_args, fit, measured, run_from_command_line

from xrg.checkpoints import resolve_checkpoint
from xrg.data.jsonl import write_atomic
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.synthetic import ensure_benchmark

BENCHMARK_STUDIES = 2000  # synthetic_runs.py's benchmark: the first 2,000 studies of seed 0
OWN_TRAIN, OWN_VAL = 1000, 200


def parse_run(name: str) -> tuple[int, int]:
    """`NxE` -> (N training studies, E epochs)."""
    studies, _, epochs = name.partition("x")
    if not (studies.isdigit() and epochs.isdigit()) or int(studies) < OWN_TRAIN:
        raise SystemExit(f"--runs {name!r}: expected STUDIESxEPOCHS with at least the benchmark's own "
                         f"{OWN_TRAIN} studies, e.g. 5000x12")
    return int(studies), int(epochs)


def annotation_with(train_studies: int, root: Path) -> Path:
    """`root`'s studies re-split: the benchmark's own splits, plus studies 2,000 onward as training."""
    studies = [s for split in ("train", "val", "test") for s in json.loads((root / "annotation.json").read_text())[split]]
    studies.sort(key=lambda s: s["id"])
    extra = train_studies - OWN_TRAIN
    if len(studies) < BENCHMARK_STUDIES + extra:
        raise ValueError(f"{root} holds {len(studies)} studies; {train_studies} training studies need "
                         f"{BENCHMARK_STUDIES + extra} (raise --extra-studies)")
    splits = {"train": studies[:OWN_TRAIN] + studies[BENCHMARK_STUDIES:BENCHMARK_STUDIES + extra],
              "val": studies[OWN_TRAIN:OWN_TRAIN + OWN_VAL], "test": studies[OWN_TRAIN + OWN_VAL:BENCHMARK_STUDIES]}
    path = root / f"annotation_train{train_studies}.json"
    write_atomic(path, json.dumps({split: [s | {"split": split} for s in rows] for split, rows in splits.items()}))
    return path


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    runs = {name: parse_run(name) for name in a.runs}
    # One size for every invocation: a root generated for fewer studies would be regenerated under a
    # concurrent run that is reading it.
    root = ensure_benchmark(a.scaling_root, BENCHMARK_STUDIES + a.extra_studies, seed=0, image_size=a.benchmark_size,
                            views=2, split_fractions=(0.5, 0.1, 0.4), workers=a.threads)
    results = Results(a.out, vars(a)).with_saved_runs()
    for name, (studies, epochs) in runs.items():
        if name in results:
            continue
        overrides = ["--data.init_args.synthetic=null", f"--data.init_args.annotation_path={annotation_with(studies, root)}",
                     f"--data.init_args.image_dir={root / 'images'}", f"--data.init_args.labels_path={root / 'labels.json'}",
                     f"--trainer.max_epochs={epochs}", f"--model.init_args.lr_scheduler.init_args.T_max={epochs}",
                     "--data.init_args.num_workers=0", "--data.init_args.label_balance=1.0", f"--seed_everything={a.seed}",
                     *a.set]
        run_dir = Path(a.workdir) / name
        _, cost = measured(fit, CLASSIFIER, run_dir, a, *overrides)
        last = resolve_checkpoint(run_dir)  # its newest last.ckpt: the last epoch, not the val pick
        scores, test_cost = measured(head_scores, last, a)
        results[name] = {"train_studies": studies, "epochs": epochs, "fit": cost, "test": test_cost, **scores}
        results.save()
    return results


def print_table(results: dict) -> None:
    rows = {name: row for name, row in results.items() if name != "settings"}
    print(f"{'head, test split':28s}" + "".join(f"{name:>16s}" for name in rows))
    print(f"{'fit CPU s':28s}" + "".join(f"{row['fit']['cpu_s']:>16.0f}" for row in rows.values()))
    print(f"{'macro-14 F1':28s}" + "".join(f"{row['head/macro14/f1']:>16.3f}" for row in rows.values()))
    print(f"{'mean AUC':28s}" + "".join(f"{row['auc_mean']:>16.3f}" for row in rows.values()))
    print("\nper finding: F1 / AUC")
    for label in CHEXPERT_LABELS:
        cells = (row["per_finding"][label] for row in rows.values())
        print(f"{label:28s}" + "".join(f"{c['f1']:>10.2f} / {c['auc']:.2f}" for c in cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=96, views=2)
    parser.add_argument("--scaling-root", default=str(REPO / "data_cache" / "synthetic_scaling"),
                        help="the benchmark's studies and the extra training studies, generated once")
    parser.add_argument("--extra-studies", type=int, default=9000, help="studies generated beyond the benchmark's 2,000")
    parser.add_argument("--runs", nargs="*", default=["1000x12", "1000x60", "5000x12"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="one extra CLI override for every run (--set=--key=value)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a shared 2-core machine: 1)")
    run_from_command_line(parser, "head_data_scaling", run, print_table)
