"""R2Gen on the synthetic benchmark with and without its relational memory (RM + MCLN), same budget.

    python benchmarks/r2gen_synthetic.py        # -> benchmarks/results/r2gen_synthetic.json

Both variants are recipes/r2gen/synthetic.yaml (its epochs, learning rates, seed) with only
`rm_slots` set: 0 (off), and R2Gen's 3 slots (as many RM heads as decoder heads). They are fitted
one after the other on the same studies and scored on the same test split (synthetic_runs.py's data
arguments: 2,000 studies, 800 in the test split); each row records its fit's CPU seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from synthetic_runs import REPO, Results, add_data_args, fit, measured, print_rows, run_from_command_line, test_scores

RECIPE = REPO / "recipes" / "r2gen" / "synthetic.yaml"
RM = "--model.init_args.decoder.init_args.rm_slots"
VARIANTS = {"without RM": ("plain", f"{RM}=0"), "with RM (3 slots)": ("rm", f"{RM}=3")}  # row: (run folder, setting)


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a))
    for seed in a.seeds:
        for name, (folder, setting) in VARIANTS.items():
            row = f"{name}, seed {seed}"
            checkpoint, cost = measured(fit, RECIPE, Path(a.workdir) / f"{folder}_seed{seed}", a, setting, f"--seed_everything={seed}",
                                        f"--trainer.max_epochs={a.epochs}", *a.set)
            results[row] = {"fit": cost, "checkpoint": str(checkpoint)}
            scores, test_cost = measured(test_scores, checkpoint, a)
            results[row] |= {"test": test_cost, **scores}
            results.save()
    return results


def print_table(results: dict) -> None:
    print_rows({name: row for name, row in results.items() if name != "settings"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=112, views=2)
    parser.add_argument("--epochs", type=int, default=32, help="the recipe's budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a shared 2-core machine: 1)")
    parser.add_argument("--set", action="append", default=[], help="one extra CLI override for both variants (--set=--key=value)")
    run_from_command_line(parser, "r2gen", run, print_table)
