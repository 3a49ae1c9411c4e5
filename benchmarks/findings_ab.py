"""Small A/B experiments on the findings-first writer: which option makes the report state what the head sees.

    python benchmarks/findings_ab.py --rows base token_scale visual_dropout --epochs 4 --image-size 96

Each row is the findings-first recipe (recipes/mix/findings_transformer_synthetic.yaml) with a few
CLI overrides, fitted on synthetic_runs.py's benchmark (same 1,000 training and 800 test studies)
at a small scale, then scored on the test split: the report's CE (what it states), the head's own
decisions (what it perceives: `head/macro14/f1`) and the report against those decisions (what it
was told and stated: `told/macro/f1`). A row that is already in `--out` is kept, not refitted, so
the table grows one run at a time. docs/quality.md's A/B table is this script's output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from functools import partial

import lightning as L
import torch
from synthetic_runs import (REPO, Results, add_data_args, datamodule, fit, measured, print_per_finding, print_rows,
                            run_from_command_line, test_scores)

import xrg
from xrg.blocks.findings.base import best_f1_thresholds
from xrg.data.labels import select_labels
from xrg.metrics.ce import per_label_report
from xrg.tasks.findings import per_label_auc

RECIPE = REPO / "recipes" / "mix" / "findings_transformer_synthetic.yaml"
GUIDE = "--model.init_args.guides.init_args"  # the recipe's one guide (a list of one)
DECODER = "--model.init_args.decoder.init_args"
MODEL = "--model.init_args"
# Every writer row starts from the recipe's settings before issue 17 (the recipe now has the winners
# on), so each row is one option against that base.
BEFORE = (f"{GUIDE}.token_scale=0.02", f"{DECODER}.dropout=0.1", "--model.init_args.optimizer.init_args.lr=1.0e-3",
          f"{MODEL}.visual_token_dropout=0.0", "--data.init_args.label_balance=0.0")
ROWS: dict[str, tuple[str, ...]] = {
    "base": (),
    # the decoder reads the findings tokens
    "token_scale": (f"{GUIDE}.token_scale=1.0",),
    "visual_dropout": (f"{MODEL}.visual_token_dropout=0.5",),
    "token_scale+visual_dropout": (f"{GUIDE}.token_scale=1.0", f"{MODEL}.visual_token_dropout=0.5"),
    "tokens_only": (f"{MODEL}.visual_tokens=false",),
    "token_scale+tokens_only": (f"{GUIDE}.token_scale=1.0", f"{MODEL}.visual_tokens=false"),
}
# The head alone (recipes/mix/findings_classifier_synthetic.yaml, stage 1 of the chained writer):
# what it perceives, as F1 on the test split at per-observation thresholds tuned on the validation split.
CLASSIFIER = REPO / "recipes" / "mix" / "findings_classifier_synthetic.yaml"
DATA = "--data.init_args"
HEAD_ROWS: dict[str, tuple[str, ...]] = {
    "head": (),
    "head+balance0.5": (f"{DATA}.label_balance=0.5",),
    "head+balance1": (f"{DATA}.label_balance=1.0",),
    "head+no_pos_weight": (f"{MODEL}.fit_pos_weight=false",),
    "head+resnet10t": (f"{MODEL}.image_encoder.init_args.model_name=resnet10t",),
    "head+balance1+spatial": (f"{DATA}.label_balance=1.0", f"{MODEL}.findings.init_args.spatial=1.0"),
    "head+balance1+resnet10t": (f"{DATA}.label_balance=1.0", f"{MODEL}.image_encoder.init_args.model_name=resnet10t"),
    # a finer feature map (timm's output_stride 8: 16 x 16 cells at 128 px) under the spatial head (docs/quality.md, section 8)
    "head+balance1+spatial+stride8": (f"{DATA}.label_balance=1.0", f"{MODEL}.findings.init_args.spatial=1.0",
                                      f"{MODEL}.image_encoder.init_args.model_kwargs={{output_stride: 8}}"),
}
SUMMARY = ("ce/chexpert-rules/macro14/f1", "ce/chexpert-rules/micro14/f1", "head/macro14/f1", "told/macro/f1",
           "nlg/bleu_4")


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a)).with_saved_runs()
    for name in a.rows:
        if name in results and not a.refit:
            continue
        head = name in HEAD_ROWS
        extra = HEAD_ROWS[name] if head else ROWS[name]
        overrides = [f"--trainer.max_epochs={a.epochs}", f"--model.init_args.lr_scheduler.init_args.T_max={a.epochs}",
                     "--data.init_args.num_workers=0", *(() if head else BEFORE), *extra]
        if not head:  # the writer generates at validation: once, at the end
            overrides.append(f"--trainer.check_val_every_n_epoch={a.epochs}")
        checkpoint, cost = measured(fit, CLASSIFIER if head else RECIPE, Path(a.workdir) / name, a, *overrides)
        scores, test_cost = measured(head_scores if head else partial(test_scores, per_finding=True), checkpoint, a)
        results[name] = {"overrides": list(extra), "fit": cost, "test": test_cost, **scores}
        results.save()
    return results


def head_scores(checkpoint: Path, a) -> dict:
    """A findings classifier's test F1 per observation, at the thresholds with the best F1 on the
    validation split (as `PredictedFindings(tune_thresholds=True)` sets them), and its test AUC."""
    model = xrg.load(checkpoint)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    probs, labels = {}, {}
    for split in ("val", "test"):
        dm = datamodule(a, predict_split=split, preparation=model.preparation)
        rows = [row for batch in trainer.predict(model, datamodule=dm) for row in batch]
        names = model.findings.label_names
        probs[split] = torch.tensor([[row["findings_probs"][n] for n in names] for row in rows])
        codes = torch.tensor([dm.datasets[split].labels[row["id"]] for row in rows], dtype=torch.float32)
        labels[split] = select_labels(codes, names)
    thresholds = best_f1_thresholds(probs["val"], labels["val"])
    decided = (probs["test"] >= thresholds).float()
    table = per_label_report(decided, labels["test"], names=model.findings.label_names)
    auc = per_label_auc(probs["test"], labels["test"], model.findings.label_names)
    per_finding = {n: {"f1": round(s["f1"], 4), "support": int(s["support"]), "head_f1": round(s["f1"], 4),
                       "auc": round(auc.get(n, float("nan")), 4)} for n, s in table.items()}
    return {"head/macro14/f1": round(sum(s["f1"] for s in table.values()) / len(table), 4),
            "auc_mean": round(sum(auc.values()) / len(auc), 4), "per_finding": per_finding}


def print_table(results: dict) -> None:
    rows = {name: row for name, row in results.items() if name != "settings"}
    print_rows(rows, SUMMARY)
    print_per_finding(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=96, views=2)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=sorted(ROWS) + sorted(HEAD_ROWS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a shared 2-core machine: 1)")
    parser.add_argument("--refit", action="store_true", help="refit rows already in --out")
    run_from_command_line(parser, "findings_ab", run, print_table)
