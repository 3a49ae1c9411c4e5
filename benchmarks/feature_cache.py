"""CPU seconds of a writer fit over a frozen image encoder, with and without `cache_frozen_features`.

The findings-first writer with `recipes/stages/frozen_findings_head.yaml` (encoder and findings head
frozen, 128 px with the detail channel; random frozen weights: the cost does not depend on them) is
fitted on the benchmark's 1,000 training studies for each of `--epochs`, without validation, twice
per count: re-encoding every step, and reading features kept when the fit starts. Both in this
process, so the ratio holds on a noisy machine; the per-epoch cost is the slope between two counts.

    python benchmarks/feature_cache.py [--epochs 1 3] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from synthetic_runs import REPO, Results, add_data_args, data_overrides, measured
from xrg.cli import main

RECIPE = REPO / "recipes/mix/findings_transformer_synthetic.yaml"
STAGE = REPO / "recipes/stages/frozen_findings_head.yaml"


def fit_cpu_s(a, epochs: int, cache: bool) -> float:
    run = REPO / "runs/bench_feature_cache"
    _, cost = measured(main, [
        "fit", "--config", str(RECIPE), "--config", str(STAGE), *data_overrides(a),
        f"--data.init_args.resize={a.image_size}",  # no random crop: the stage's images, the same every epoch
        f"--trainer.default_root_dir={run}", f"--trainer.max_epochs={epochs}", "--trainer.limit_val_batches=0",
        "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
        "--trainer.logger=false", f"--model.init_args.cache_frozen_features={str(cache).lower()}"])
    return cost["cpu_s"]


def run(a) -> Results:
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a))
    for epochs in a.epochs:
        results[f"{epochs} epochs"] = {name: fit_cpu_s(a, epochs, cache) for name, cache in (("encoded every step", False),
                                                                                          ("kept features", True))}
    first, last = min(a.epochs), max(a.epochs)
    if last > first:
        results["per epoch"] = {name: round((results[f"{last} epochs"][name] - results[f"{first} epochs"][name]) / (last - first), 1)
                                for name in results[f"{last} epochs"]}
    results.save()
    return results


def print_table(results: Results) -> None:
    print("| fit (1,000 training studies, 128 px) | encoded every step, CPU s | kept features, CPU s | ratio |\n|---|---|---|---|")
    for name, row in results.items():
        if name != "settings":
            plain, kept = row["encoded every step"], row["kept features"]
            print(f"| {name} | {plain:.0f} | {kept:.0f} | {plain / kept:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=128, views=2)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/feature_cache.json"))
    a = parser.parse_args()
    print_table(run(a))
    print(f"\nwrote {a.out}")
