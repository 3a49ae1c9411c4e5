"""RaDialog's four stages on the synthetic benchmark against the R2Gen baseline, at a stated CPU budget.

    python benchmarks/radialog_synthetic.py        # -> benchmarks/results/radialog_synthetic.json

Stages chain as in recipes/radialog/ (each starts from the previous stage's best checkpoint):
classifier (test AUC per finding) -> Q-Former alignment -> LLM report generation (test CE/NLG)
-> instruction tuning (test CE/NLG). The R2Gen demo recipe (recipes/r2gen/synthetic.yaml) is fitted
on the same studies and scored on the same test split, or taken from `--r2gen-checkpoint`.
Data arguments are synthetic_runs.py's (default: 2,000 studies, 800 in the test split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthetic_runs import (
    AUC_KEYS,
    REPO,
    Results,
    add_data_args,
    fit,
    measured,
    print_auc,
    print_rows,
    run_from_command_line,
    test_scores,
)

RECIPES = REPO / "recipes"


def run(a) -> dict:
    work = Path(a.workdir)
    results = Results(a.out, vars(a))

    stages = (("classifier", a.classifier_epochs), ("qformer", a.qformer_epochs), ("llm", a.llm_epochs),
              ("instruct", a.instruct_epochs))
    previous = None
    for name, epochs in stages:
        extra = [f"--trainer.max_epochs={epochs}", *a.set]
        if previous is not None:
            extra.append(f"--model.init_args.init_from.checkpoint={previous}")
        previous, cost = measured(fit, RECIPES / "radialog" / f"{name}_synthetic.yaml", work / name, a, *extra)
        results[name] = {"fit": cost, "checkpoint": str(previous)}
        if name == "classifier":
            results[name] |= test_scores(previous, a, AUC_KEYS)
        elif name in ("llm", "instruct"):
            scores, test_cost = measured(test_scores, previous, a)
            results[name] |= {"test": test_cost, **scores}
        results.save()
    if a.r2gen_checkpoint:
        results["r2gen"] = {"checkpoint": a.r2gen_checkpoint}
        checkpoint = a.r2gen_checkpoint
    else:
        checkpoint, cost = measured(fit, RECIPES / "r2gen" / "synthetic.yaml", work / "r2gen", a,
                                    f"--trainer.max_epochs={a.r2gen_epochs}")
        results["r2gen"] = {"fit": cost, "checkpoint": str(checkpoint)}
    scores, test_cost = measured(test_scores, checkpoint, a)
    results["r2gen"] |= {"test": test_cost, **scores}
    results.save()
    return results


def print_table(results: dict) -> None:
    print_auc("findings classifier", results["classifier"])
    print()
    print_rows({f"radialog {name}": results[name] for name in ("llm", "instruct")} | {"r2gen": results["r2gen"]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=112, views=2)
    parser.add_argument("--classifier-epochs", type=int, default=8)
    parser.add_argument("--qformer-epochs", type=int, default=4)
    parser.add_argument("--llm-epochs", type=int, default=10)
    parser.add_argument("--instruct-epochs", type=int, default=4)
    parser.add_argument("--r2gen-epochs", type=int, default=32)
    parser.add_argument("--r2gen-checkpoint", help="score this R2Gen checkpoint instead of fitting one")
    parser.add_argument("--set", action="append", default=[], help="one extra CLI override for every RaDialog stage (repeatable; --set=--key=value)")
    run_from_command_line(parser, "radialog", run, print_table)
