"""``xrg evaluate``: score a predictions JSONL (what ``xrg predict`` writes) with NLG and CE metrics.

Each line is ``{"id": ..., "generated": ..., "reference": ...}``. Bad lines raise ``DataError``
naming the file and line. An empty ``generated`` is a legitimate model output (the model stopped at
once): it is kept empty (not cleaned), scores ~0 on every metric, and is counted in the summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from xrg.data.cleaning import CLEANERS, get_cleaner
from xrg.data.errors import DataError
from xrg.data.jsonl import read_jsonl_objects
from xrg.metrics.bootstrap import BOOTSTRAP_NOTE, bootstrap_intervals
from xrg.metrics.nlg.scores import METRICS, score_pairs


def read_predictions(path: Path) -> list[dict[str, str]]:
    """Validated rows ``{"id", "generated", "reference"}`` of a predictions JSONL file."""
    rows: list[dict[str, str]] = []
    first_seen: dict[str, str] = {}
    for where, row in read_jsonl_objects(path, "predictions"):
        for key in ("id", "generated", "reference"):
            if row.get(key) is None:
                raise DataError(f"{where}: missing {key!r}")
        if not isinstance(row["id"], (str, int)):
            raise DataError(f"{where}: 'id' must be a string or an integer, got {type(row['id']).__name__}")
        for key in ("generated", "reference"):
            if not isinstance(row[key], str):
                raise DataError(f"{where}: {key!r} must be a string, got {type(row[key]).__name__}")
        if not row["reference"].strip():
            raise DataError(f"{where}: empty 'reference' for study {row['id']!r}")
        study = str(row["id"])
        if study in first_seen:
            raise DataError(f"{where}: duplicated id {study!r} (first seen on line {first_seen[study].rsplit(':', 1)[1]})")
        first_seen[study] = where
        rows.append({"id": study, "generated": row["generated"], "reference": row["reference"]})
    if not rows:
        raise DataError(f"{path}: no predictions")
    return rows


def _clinical_efficacy(generated: list[str], references: list[str], labeler: str) -> dict[str, float]:
    try:
        from xrg.metrics.ce import clinical_efficacy
    except ImportError as error:
        print(f"note: clinical efficacy unavailable ({error}); reporting NLG only")
        return {}
    return clinical_efficacy(generated, references, labeler=labeler)


def evaluate(
    rows: list[dict[str, str]],
    clean: str = "none",
    meteor: bool = True,
    tokenize: str = "none",
    ce_labeler: str | None = "chexpert-rules",
    bootstrap: int = 0,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary JSON, per-sample rows) for validated prediction rows."""
    cleaner = get_cleaner(clean)
    # An empty report stays empty: cleaning would turn it into " ." and hide the failure.
    generated = [cleaner(row["generated"]) if row["generated"].strip() else "" for row in rows]
    references = [cleaner(row["reference"]) for row in rows]
    metrics = METRICS if meteor else tuple(name for name in METRICS if name != "meteor")
    scores = score_pairs(generated, references, metrics, tokenize)
    summary: dict[str, Any] = dict(scores.corpus)
    if ce_labeler:
        summary.update(_clinical_efficacy(generated, references, ce_labeler))
    summary.update(
        n_studies=len(rows),
        n_empty_generated=sum(not text.strip() for text in generated),
        clean=clean,
        tokenize=tokenize,
    )
    if bootstrap:
        if tokenize != "none":
            raise ValueError("--bootstrap works on the statistics of untokenised text; use --tokenize none")
        intervals = bootstrap_intervals(scores.stats, bootstrap, seed)
        summary["bootstrap"] = {
            "resamples": bootstrap,
            "seed": seed,
            "ci95": {key: list(intervals[key]) for key in scores.corpus if key in intervals},
            "note": BOOTSTRAP_NOTE,
        }
    per_sample = [
        {"id": row["id"], "generated": gen, "reference": ref, **{key: float(values[index]) for key, values in scores.per_pair.items()}}
        for index, (row, gen, ref) in enumerate(zip(rows, generated, references))
    ]
    return summary, per_sample


def format_table(summary: dict[str, Any]) -> str:
    intervals = summary.get("bootstrap", {}).get("ci95", {})
    lines = [f"{'metric':<40} {'value':>8}  95% CI", "-" * 70]
    for key, value in summary.items():
        if "/" not in key:
            continue
        interval = intervals.get(key)
        band = f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
        if intervals and not interval and key.startswith("nlg/"):
            band = "(not bootstrapped)"
        lines.append(f"{key:<40} {value:>8.4f}  {band}")
    lines.append(f"{summary['n_studies']} studies, {summary['n_empty_generated']} empty generated, clean={summary['clean']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrg evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL with id, generated, reference")
    parser.add_argument("--clean", choices=sorted(CLEANERS), default="none", help="R2Gen report cleaning for both texts")
    parser.add_argument("--output", type=Path, help="write the summary JSON here")
    parser.add_argument("--per-sample", type=Path, help="write per-study scores (JSONL) here")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for 95%% CIs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenize", choices=("none", "ptb"), default="none", help="none: R2Gen; ptb: COCO-style")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java needed)")
    parser.add_argument("--labeler", default="chexpert-rules", help="labeler for clinical efficacy")
    parser.add_argument("--no-ce", action="store_true", help="skip clinical efficacy")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    rows = read_predictions(args.predictions)
    summary, per_sample = evaluate(
        rows,
        clean=args.clean,
        meteor=not args.no_meteor,
        tokenize=args.tokenize,
        ce_labeler=None if args.no_ce else args.labeler,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    print(format_table(summary))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.per_sample:
        args.per_sample.parent.mkdir(parents=True, exist_ok=True)
        with args.per_sample.open("w", encoding="utf-8") as handle:
            for row in per_sample:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0
