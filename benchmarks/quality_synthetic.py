"""What the reports state: recipes fitted on the synthetic benchmark, scored per finding on its test split.

    python benchmarks/quality_synthetic.py --runs findings_transformer r2gen    # -> benchmarks/results/quality_synthetic.json

Each run is one recipe (with its own epochs unless `--epochs` says otherwise) fitted through `xrg fit`
on synthetic_runs.py's benchmark (2,000 studies at 128 px, 1,000 training and 800 test studies), its
checkpoint (the recipe's own monitor) scored on the test split, with each observation's CE F1; a run
of several stages (UniCrossAdapter after its CLIP pre-training) chains them with `init_from`, each
from the last epoch of the one before (as the stage recipes say: a pre-training stage's monitor, val
AUC or loss on 200 studies, picks noisily, and its last epoch tests as well or better). The
fit's CPU seconds (all stages) (this process and its children, all threads) are recorded beside it: the budget
of docs/quality.md is 15 CPU minutes. `--seed N` reseeds every stage (the studies stay the same), for a
recipe's spread over seeds. Set the ceiling beside it with synthetic_ceiling.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from synthetic_runs import (REPO, Results, add_data_args, choose_decoding, fit, measured, print_per_finding, print_rows,
                            run_from_command_line, test_scores)

from xrg.checkpoints import resolve_checkpoint

RECIPES = REPO / "recipes"
UNICROSS = RECIPES / "unicrossadapter"
# UniCrossAdapter's stage 0 over 24,000 more of the generator's studies (docs/quality.md section 21)
CLIP_MORE_STUDIES = ("--config", str(RECIPES / "data" / "clip_pretraining_studies_4_epochs.yaml"))
# the findings-first writer over 6,000 more studies, its pre-trained head frozen (sections 18-19, 22)
FROZEN_HEAD_WRITER = ("--config", str(RECIPES / "data" / "more_studies_6_epochs.yaml"),
                      "--config", str(RECIPES / "stages" / "frozen_findings_head.yaml"))
# ... over a head that learnt from the frontal view alone: the writer reads it too (sections 22-23)
FRONTAL_HEAD_WRITER = (*FROZEN_HEAD_WRITER, "--config", str(RECIPES / "views" / "frontal.yaml"))
# the lean frontal head over 48,000 studies enriched in rib fractures, pleural thickenings and nodules (section 23)
ENRICHED_HEAD = (RECIPES / "mix" / "findings_classifier_synthetic.yaml",
                 ("--config", str(RECIPES / "data" / "enriched_frontal_pretraining_studies_1_epoch.yaml")))
RUNS = {  # name: its stages (recipe, extra overrides); a later stage starts from the one before (init_from)
    "findings_transformer": [(RECIPES / "mix" / "findings_transformer_synthetic.yaml", ())],
    # the same recipe for 48 epochs: the 15-CPU-minute setting (docs/quality.md section 10)
    "findings_transformer_48": [(RECIPES / "mix" / "findings_transformer_synthetic.yaml",
                                 ("--config", str(RECIPES / "schedules" / "cosine_48_epochs.yaml")))],
    # about the same steps over 6,000 more training studies (the benchmark's val and test unchanged; section 14)
    "findings_transformer_more_studies": [(RECIPES / "mix" / "findings_transformer_synthetic.yaml",
                                           ("--config", str(RECIPES / "data" / "more_studies_6_epochs.yaml")))],
    # the writer over a findings head pre-trained alone on 24,000, then 48,000 more studies at 128 px,
    # frozen, its features kept once per fit (sections 18-19)
    "findings_transformer_pretrained_head": [
        (RECIPES / "mix" / "findings_classifier_synthetic.yaml", ("--config", str(RECIPES / "data" / "pretraining_studies_4_epochs.yaml"))),
        (RECIPES / "mix" / "findings_classifier_synthetic.yaml", ("--config", str(RECIPES / "data" / "pretraining_studies_4_epochs.yaml"),
                                                                  "--config", str(RECIPES / "stages" / "continued_findings_head.yaml"))),
        (RECIPES / "mix" / "findings_transformer_synthetic.yaml", FROZEN_HEAD_WRITER)],
    # the same writer over a head pre-trained once on the frontal views of 48,000 more studies, 1 epoch,
    # 5 decoder epochs: both stages within 15 CPU minutes, rendering included (section 22)
    "findings_transformer_frontal_head": [
        (RECIPES / "mix" / "findings_classifier_synthetic.yaml",
         ("--config", str(RECIPES / "data" / "frontal_pretraining_studies_1_epoch.yaml"))),
        (RECIPES / "mix" / "findings_transformer_synthetic.yaml",
         (*FRONTAL_HEAD_WRITER, "--config", str(RECIPES / "schedules" / "cosine_5_epochs.yaml")))],
    # the head's 48,000 studies enriched in rib fractures, pleural thickenings and nodules, the writer's
    # 10 epochs (section 23): both stages within 15 CPU minutes, rendering included
    "findings_transformer_enriched_head": [
        ENRICHED_HEAD,
        (RECIPES / "mix" / "findings_transformer_synthetic.yaml",
         (*FRONTAL_HEAD_WRITER, "--config", str(RECIPES / "schedules" / "cosine_10_epochs.yaml")))],
    # ... and the writer's 6,000 extra studies enriched the same way (section 25)
    "findings_transformer_enriched": [
        ENRICHED_HEAD,
        (RECIPES / "mix" / "findings_transformer_synthetic.yaml",
         (*FRONTAL_HEAD_WRITER, "--config", str(RECIPES / "data" / "enriched_more_studies.yaml"),
          "--config", str(RECIPES / "schedules" / "cosine_10_epochs.yaml")))],
    "r2gen": [(RECIPES / "r2gen" / "synthetic.yaml", ())],
    "unicrossadapter": [(UNICROSS / "synthetic.yaml", ())],
    "unicrossadapter_pretrained": [(UNICROSS / "clip_synthetic.yaml", ()), (UNICROSS / "synthetic.yaml", ())],
    "unicrossadapter_pretrained_more_studies": [
        (UNICROSS / "clip_synthetic.yaml", CLIP_MORE_STUDIES),
        (UNICROSS / "synthetic.yaml", ())],
    # UniCrossAdapter's encoder under the findings-first writer (docs/quality.md section 13; --image-size 64)
    "unicross_findings_transformer": [(RECIPES / "mix" / "unicross_findings_transformer_synthetic.yaml", ())],
    "unicross_findings_transformer_pretrained": [(UNICROSS / "clip_synthetic.yaml", ()),
                                                 (RECIPES / "mix" / "unicross_findings_transformer_synthetic.yaml", ())],
    "unicross_findings_transformer_pretrained_more_studies": [
        (UNICROSS / "clip_synthetic.yaml", CLIP_MORE_STUDIES),
        (RECIPES / "mix" / "unicross_findings_transformer_synthetic.yaml", ())],
}


def fit_stages(name: str, a) -> Path:
    """Fit a run's stages in order, each from the previous one's last epoch; the last stage's pick."""
    checkpoint = None
    for index, (recipe, extra) in enumerate(RUNS[name]):
        last = index == len(RUNS[name]) - 1
        epochs = [f"--trainer.max_epochs={a.epochs}"] if a.epochs and last else []
        chained = [f"--model.init_args.init_from.checkpoint={checkpoint}"] if checkpoint else []
        seed = [f"--seed_everything={a.seed}"] if a.seed is not None else []  # every stage: init, order, augmentation
        run = Path(a.workdir) / name / f"stage{index}"
        checkpoint = fit(recipe, run, a, "--data.init_args.num_workers=0", *extra, *chained, *epochs, *seed,
                         *(a.set if last else ()))
        if not last:
            checkpoint = resolve_checkpoint(run)  # the stage's newest last.ckpt
    return checkpoint


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a))
    fitted = [(name, *measured(fit_stages, name, a)) for name in a.runs]
    for given in a.checkpoint:  # NAME:PATH[:FIT_CPU_S]: a checkpoint fitted before, e.g. by r2gen_synthetic.py
        name, path, *cpu = given.split(":")
        fitted.append((name, Path(path), {"cpu_s": float(cpu[0]) if cpu else float("nan")}))
    for name, checkpoint, cost in fitted:
        results[name] = {"fit": cost, "checkpoint": str(checkpoint)}
        decoding = None
        if a.choose_decoding:  # decoding settings picked on val CE, then used on the test split
            results[name]["decoding"], choice_cost = measured(choose_decoding, checkpoint, a)
            results[name]["decoding"]["cpu_s"] = choice_cost["cpu_s"]
            decoding = results[name]["decoding"]["chosen"]
        scores, test_cost = measured(test_scores, checkpoint, a, per_finding=True, decoding=decoding)
        results[name] |= {"test": test_cost, **scores}
        results.save()
    return results


def print_table(results: dict) -> None:
    rows = {name: row for name, row in results.items() if name != "settings"}
    print_rows(rows)
    print_per_finding(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 96 px: the findings-first recipe's own crop, so the default run reproduces docs/quality.md's figure
    add_data_args(parser, image_size=96, views=2)
    parser.add_argument("--runs", nargs="*", default=["findings_transformer"], choices=sorted(RUNS))
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="NAME:PATH[:FIT_CPU_S]: also score a checkpoint fitted elsewhere on the same benchmark")
    parser.add_argument("--epochs", type=int, default=None, help="override the (last stage's) recipe's max_epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a shared 2-core machine: 1)")
    parser.add_argument("--seed", type=int, default=None,
                        help="every stage's seed_everything (default: the recipes' own); the benchmark's studies stay the same")
    parser.add_argument("--choose-decoding", action="store_true",
                        help="pick beams / length penalty on val CE macro-14 (synthetic_runs.DECODINGS) before testing")
    parser.add_argument("--set", action="append", default=[], help="one extra CLI override for every run's last stage (--set=--key=value)")
    run_from_command_line(parser, "quality", run, print_table)
