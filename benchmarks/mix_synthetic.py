"""A mixed recipe beside its parents at the same budget: recipes/mix/concepts_findings_transformer_synthetic.yaml
(RadAlign's concepts + RaDialog's findings, as tokens, into a transformer decoder) against the same
recipe with only the RadAlign guide and with only the RaDialog guide, on one split, scored on its test split.

    python benchmarks/mix_synthetic.py --epochs 8      # -> benchmarks/results/mix_synthetic.json

The parents differ from the mix by one guide each, so the table says what each paper's part adds.
Data arguments are synthetic_runs.py's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from synthetic_runs import REPO, Results, add_data_args, fit, measured, print_rows, run_from_command_line, test_scores

RECIPE = REPO / "recipes" / "mix" / "concepts_findings_transformer_synthetic.yaml"
VARIANTS = {"mix (both guides)": None, "RadAlign concepts only": "RecognisedConcepts",
            "RaDialog findings only": "PredictedFindings"}


def variant(keep: str | None, out: Path) -> Path:
    config = yaml.safe_load(RECIPE.read_text())
    if keep is not None:
        guides = config["model"]["init_args"]["guides"]
        config["model"]["init_args"]["guides"] = [g for g in guides if g["class_path"] == keep]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def run(a) -> dict:
    work = Path(a.workdir)
    results = Results(a.out, vars(a))
    for name, keep in VARIANTS.items():
        if a.variants and (keep or "mix") not in a.variants:
            continue
        slug = (keep or "mix").lower()
        recipe = variant(keep, work / f"{slug}.yaml")
        checkpoint, cost = measured(fit, recipe, work / slug, a, f"--trainer.max_epochs={a.epochs}", *a.set)
        scores, test_cost = measured(test_scores, checkpoint, a)
        results[name] = {"fit": cost, "test": test_cost, "checkpoint": str(checkpoint), **scores}
        results.save()
    return results


def print_table(results: dict) -> None:
    print_rows({k: v for k, v in results.items() if k != "settings"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(parser, image_size=96)
    parser.add_argument("--epochs", type=int, default=16, help="the recipe's own budget")
    parser.add_argument("--set", action="append", default=[], help="extra CLI override for every run")
    parser.add_argument("--variants", nargs="*", default=[], help="run only these (mix, RecognisedConcepts, "
                        "PredictedFindings), e.g. one per process with its own --out")
    run_from_command_line(parser, "mix", run, print_table)
