"""Does a findings-token writer write exactly what it is told? Every single finding and every pair.

A writer whose findings guide tells its decoder one token per observation (`PredictedFindings(tokens:
true)`) is told, for one test study of the synthetic benchmark, each observation alone and each
pair of observations (No Finding aside), with the head's decisions replaced by those and the
visual tokens hidden, so the findings tokens are all it reads (the findings-first recipe trains
half its studies so, `visual_token_dropout: 0.5`). The reports are labeled by `chexpert-rules`; a
report is exact when the observations it states positive are the told ones. The table gives, per
checkpoint, exact singles (of 13) and pairs (of 78); then, among the pairs of findings it writes
when told alone (a failure there is one to combine), the exact ones, and those whose report keeps
only the first of the two in CheXpert order (the order training reports state them in, `sentence_order:
findings_first`) or only the second, and per observation how often a report told it left it out
(of 13: alone and with each other) and how often a report stated it untold.

Cheap (one beam-search batch of 91 reports per checkpoint) and independent of the head: it
separates a decoder that confuses its tokens from a head that perceives the wrong findings
(docs/quality.md section 16).

    python benchmarks/told_findings.py RUN_DIR_OR_CKPT [...] --out benchmarks/results/told_findings.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

import xrg
from synthetic_runs import REPO, add_data_args, best_checkpoint, datamodule
from xrg.data.jsonl import write_atomic
from xrg.data.labels import COLUMN
from xrg.metrics.ce import label_texts


def told_sets(names: list[str]) -> list[tuple[str, ...]]:
    findings = [n for n in names if n != "No Finding"]
    return [(n,) for n in findings] + list(itertools.combinations(findings, 2))


@torch.no_grad()
def written_when_told(checkpoint: Path, study: dict) -> dict:
    model = xrg.load(checkpoint).eval()
    guide = next(g for g in model.guides.values() if getattr(g, "tokens", False) and hasattr(g, "head"))
    names = list(guide.head.label_names)
    told = told_sets(names)
    batch = {k: v.repeat(len(told), *[1] * (v.dim() - 1)) if torch.is_tensor(v) else v * len(told)
             for k, v in study.items()}
    decided = torch.full((len(told), len(names)), -30.0)  # logits: the head decides exactly the told ones
    for row, found in enumerate(told):
        decided[row, [names.index(n) for n in found]] = 30.0
    guide.head.forward = lambda visual: decided
    encoded = model.encode(batch, with_loss=False)
    memory = encoded.memory
    mask = torch.zeros(memory.tokens.shape[:2], dtype=torch.bool)
    mask[:, -len(names):] = True  # the findings tokens come last: hide everything before them
    reports = model.decoder.generate(memory._replace(mask=mask))
    labels = label_texts(reports)
    stated = [{n for n in names if n != "No Finding" and labels[row, COLUMN[n]] == 1} for row in range(len(told))]
    exact = [s == set(found) for s, found in zip(stated, told)]
    missed = {n: sum(n in found and n not in s for s, found in zip(stated, told)) for n in names if n != "No Finding"}
    extra = {n: sum(n in s and n not in found for s, found in zip(stated, told)) for n in names if n != "No Finding"}
    singles = sum(e for e, found in zip(exact, told) if len(found) == 1)
    # Pairs of findings it writes when told alone (some, e.g. rib fracture, it may never write):
    # a failure there is a failure to combine. A pair's reports state the first in CheXpert order
    # first (findings_first training order), so which one a report leaving one out keeps says
    # whether the decoder stops after one finding.
    alone = {found[0] for e, found in zip(exact, told) if e and len(found) == 1}
    pairs = [(s, found) for s, found in zip(stated, told) if len(found) == 2 and set(found) <= alone]
    first_only = sum(found[0] in s and found[1] not in s for s, found in pairs)
    second_only = sum(found[1] in s and found[0] not in s for s, found in pairs)
    return {"checkpoint": str(checkpoint), "exact_singles": singles, "singles": sum(len(f) == 1 for f in told),
            "exact_pairs": sum(exact) - singles, "pairs": sum(len(f) == 2 for f in told),
            "exact_pairs_of_written_alone": sum(s == set(found) for s, found in pairs), "pairs_of_written_alone": len(pairs),
            "first_only": first_only, "second_only": second_only, "missed": missed, "stated_untold": extra,
            "examples": {" + ".join(found): report for found, report in list(zip(told, reports))[:3]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="checkpoints, or run folders (their best checkpoint)")
    add_data_args(parser, image_size=96)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "told_findings.json"))
    a = parser.parse_args()
    torch.set_num_threads(1)
    study = next(iter(datamodule(a, batch_size=1).test_dataloader()))
    results = {}
    for run in a.runs:
        if not run.is_file() and not any(run.rglob("*.ckpt")):
            parser.error(f"{run}: not a checkpoint, nor a folder holding one")
        results[str(run)] = written_when_told(run if run.is_file() else best_checkpoint(run), study)
    write_atomic(Path(a.out), json.dumps(results, indent=1))
    print(f"{'run':48s} {'singles':>8s} {'pairs':>6s} {'of alone':>9s} {'1st only':>8s} {'2nd only':>8s}  "
          "missed (of 13) / stated untold")
    for run, r in results.items():
        missed = ", ".join(f"{n[:12]} {v}" for n, v in r["missed"].items() if v)
        extra = ", ".join(f"{n[:12]} {v}" for n, v in r["stated_untold"].items() if v)
        print(f"{run[-48:]:48s} {r['exact_singles']:>4d}/{r['singles']:<3d} {r['exact_pairs']:>3d}/{r['pairs']:<3d} "
              f"{r['exact_pairs_of_written_alone']:>4d}/{r['pairs_of_written_alone']:<4d}"
              f"{r['first_only']:>8d} {r['second_only']:>8d}  {missed or '-'} / {extra or '-'}")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
