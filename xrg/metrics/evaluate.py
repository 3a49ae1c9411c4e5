"""``xrg evaluate``: score a predictions JSONL (what ``xrg predict`` writes) with NLG and CE metrics.

Each line is ``{"id": ..., "generated": ..., "reference": ...}``. Bad lines raise ``DataError``
naming the file and line. An empty ``generated`` is a legitimate model output (the model stopped at
once): it is kept empty (not cleaned), scores ~0 on every metric, and is counted in the summary.

`--metrics radgraph,chexbert,green,ratescore,bertscore` adds the model-based metrics
(`xrg.metrics.model_based`; each is loaded before anything is scored, so a missing package or
missing weights stop the run at once with one line). `--compare A.jsonl B.jsonl` scores two
systems on the same studies and reports, per metric, B - A with a paired bootstrap interval and
an approximate-randomisation p-value (`xrg.metrics.bootstrap`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xrg.cli import CommandParser
from xrg.data.cleaning import CLEANERS, get_cleaner
from xrg.data.errors import DataError
from xrg.data.jsonl import check_report_length, partial_path, read_jsonl_objects, sidecar_path
from xrg.metrics.bootstrap import (BOOTSTRAP_NOTE, COMPARE_NOTE, bootstrap_intervals, concatenate_stats, labels_scorer,
                                   mean_scorer, paired_comparison)
from xrg.metrics.nlg.scores import METRICS, pair_stats, score_pairs


def read_predictions(path: Path) -> list[dict[str, str]]:
    """Validated rows ``{"id", "generated", "reference"}`` of a predictions JSONL file, and
    ``{"id", "error"}`` for a study that ``xrg predict`` could not read."""
    rows: list[dict[str, str]] = []
    first_seen: dict[str, str] = {}
    for where, row in read_jsonl_objects(path, "predictions"):
        is_error = row.get("error") is not None
        for key in ("id", "error") if is_error else ("id", "generated", "reference"):
            if row.get(key) is None:
                raise DataError(f"{where}: missing {key!r}")
        if not isinstance(row["id"], (str, int)):
            raise DataError(f"{where}: 'id' must be a string or an integer, got {type(row['id']).__name__}")
        for key in ("error",) if is_error else ("generated", "reference"):
            if not isinstance(row[key], str):
                raise DataError(f"{where}: {key!r} must be a string, got {type(row[key]).__name__}")
            check_report_length(where, key, row[key])
        if not is_error and not row["reference"].strip():
            raise DataError(f"{where}: empty 'reference' for study {row['id']!r}")
        study = str(row["id"])
        if study in first_seen:
            raise DataError(f"{where}: duplicated id {study!r} (first seen on line {first_seen[study].rsplit(':', 1)[1]})")
        first_seen[study] = where
        if is_error:
            rows.append({"id": study, "error": row["error"]})
        else:
            rows.append({"id": study, "generated": row["generated"], "reference": row["reference"]})
    if not rows:
        raise DataError(f"{path}: no predictions")
    return rows


def check_complete(path: Path, rows: int, expect: int | None) -> None:
    """Refuse a predictions file that holds fewer rows than it should (`--expect`, or the
    `<file>.meta.json` that `xrg predict` writes once the file is complete); warn when nothing
    says how many there should be."""
    if expect is not None and rows != expect:
        raise DataError(f"{path}: {rows} predictions, expected {expect} (--expect): the file is incomplete "
                        "or holds another set of studies")
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8"))["rows"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{sidecar}: unreadable ({error}); delete it to score {path.name} unchecked") from None
        if recorded != rows:
            raise DataError(f"{path}: {rows} rows, but {sidecar.name} records {recorded}: the file was cut short "
                            "or changed after `xrg predict` finished it; rerun predict (or delete the sidecar)")
    elif expect is None:
        warn(f"{path} has no {sidecar.name} (what a finished `xrg predict` writes): nothing shows that it "
             "holds every study; pass --expect N to check")
    if partial_path(path).exists():
        warn(f"{partial_path(path)} exists: a later `xrg predict` into {path.name} did not finish; "
             f"{path.name} is from an earlier, complete run")


def warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def _clinical_efficacy(generated: list[str], references: list[str], labeler: str) -> dict[str, float]:
    try:
        from xrg.metrics.ce import clinical_efficacy
    except ImportError as error:
        print(f"note: clinical efficacy unavailable ({error}); reporting NLG only")
        return {}
    return clinical_efficacy(generated, references, labeler=labeler, progress=True)


def evaluate(
    rows: list[dict[str, str]],
    clean: str = "none",
    meteor: bool = True,
    tokenize: str = "none",
    ce_labeler: str | None = "chexpert-rules",
    bootstrap: int = 0,
    seed: int = 0,
    model_metrics: Sequence[Any] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary JSON, per-sample rows) for validated prediction rows; error rows (a study
    `xrg predict` could not read) are counted, not scored."""
    unreadable = [row for row in rows if "error" in row]
    rows = [row for row in rows if "error" not in row]
    if not rows:
        raise DataError(f"no study has a prediction: all {len(unreadable)} rows are errors")
    cleaner = get_cleaner(clean)
    # An empty report stays empty: cleaning would turn it into " ." and hide the failure.
    generated = [cleaner(row["generated"]) if row["generated"].strip() else "" for row in rows]
    references = [cleaner(row["reference"]) for row in rows]
    metrics = METRICS if meteor else tuple(name for name in METRICS if name != "meteor")
    scores = score_pairs(generated, references, metrics, tokenize)
    summary: dict[str, Any] = dict(scores.corpus)
    if ce_labeler:
        summary.update(_clinical_efficacy(generated, references, ce_labeler))
    from xrg.metrics.model_based import score as model_based_scores

    model_summary, model_per_sample = model_based_scores(model_metrics, generated, references)
    summary.update(model_summary)
    summary.update(
        n_studies=len(rows),
        n_empty_generated=sum(not text.strip() for text in generated),
        n_unreadable=len(unreadable),
        clean=clean,
        tokenize=tokenize,
    )
    if bootstrap:
        if tokenize != "none":
            raise ValueError("--bootstrap works on the statistics of untokenised text; use --tokenize none")
        intervals = bootstrap_intervals(scores.stats, bootstrap, seed)
        if model_per_sample:
            intervals.update(bootstrap_intervals(mean_scorer(model_per_sample), bootstrap, seed, n=len(rows)))
        summary["bootstrap"] = {
            "resamples": bootstrap,
            "seed": seed,
            "ci95": {key: list(intervals[key]) for key in summary if key in intervals},
            "note": BOOTSTRAP_NOTE,
        }
    per_sample = [
        {"id": row["id"], "generated": gen, "reference": ref,
         **{key: float(values[index]) for key, values in (scores.per_pair | model_per_sample).items()}}
        for index, (row, gen, ref) in enumerate(zip(rows, generated, references))
    ]
    return summary, per_sample


def paired_rows(rows_a: list[dict[str, str]], rows_b: list[dict[str, str]], names: tuple[str, str]) -> list[dict[str, str]]:
    """B's rows in A's order; both files must hold the same studies with the same references."""
    by_id = {row["id"]: row for row in rows_b}
    missing = [row["id"] for row in rows_a if row["id"] not in by_id]
    extra = sorted(set(by_id) - {row["id"] for row in rows_a})
    if missing or extra:
        study, where = (missing[0], names[1]) if missing else (extra[0], names[0])
        raise DataError(f"{where}: no study {study!r} ({len(missing) + len(extra)} ids differ); --compare needs the same studies in both files")
    for row in rows_a:
        if by_id[row["id"]]["reference"] != row["reference"]:
            raise DataError(f"{names[1]}: study {row['id']!r} has another reference than in {names[0]}")
    return [by_id[row["id"]] for row in rows_a]


def compare(
    rows_a: list[dict[str, str]],
    rows_b: list[dict[str, str]],
    clean: str = "none",
    ce_labeler: str | None = "chexpert-rules",
    model_metrics: Sequence[Any] = (),
    resamples: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
) -> dict[str, Any]:
    """Every metric of A and B on the same studies, B - A, its paired bootstrap CI and p-value."""
    import torch

    rows_b = paired_rows(rows_a, rows_b, names)
    cleaner = get_cleaner(clean)
    tidy = lambda text: cleaner(text) if text.strip() else ""  # noqa: E731 - an empty report stays empty
    generated_a, generated_b = [tidy(r["generated"]) for r in rows_a], [tidy(r["generated"]) for r in rows_b]
    references = [cleaner(row["reference"]) for row in rows_a]
    scorers = [concatenate_stats(pair_stats(generated_a, references), pair_stats(generated_b, references)).corpus]
    labelers = []
    if ce_labeler:
        from xrg.metrics.ce import label_texts

        labelers.append((ce_labeler, lambda texts: label_texts(texts, ce_labeler, "labelling")))
    for metric in model_metrics:
        if metric.name == "chexbert":
            labelers.append(("chexbert", metric.label_matrix))
        else:
            a, b = metric.per_sample(generated_a, references), metric.per_sample(generated_b, references)
            scorers.append(mean_scorer({key: np.concatenate([a[key], b[key]]) for key in a}))
    if labelers:
        from xrg.metrics.ce import is_empty_report

        empty = torch.tensor([is_empty_report(text) for text in generated_a + generated_b])
        for labeler, label_matrix in labelers:
            labels = label_matrix(generated_a + generated_b + references)
            pred, ref = labels[: 2 * len(references)], labels[2 * len(references):]
            scorers.append(labels_scorer(pred, torch.cat([ref, ref]), empty, labeler))
    return {
        "a": names[0], "b": names[1], "n_studies": len(rows_a), "clean": clean, "resamples": resamples, "seed": seed,
        "note": COMPARE_NOTE, "metrics": paired_comparison(scorers, len(rows_a), resamples, seed),
    }


def format_comparison(result: dict[str, Any]) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}",
             f"{'metric':<34} {'A':>8} {'B':>8} {'B - A':>8}  {'95% CI of B - A':<20} {'p':>6}", "-" * 92]
    for key, row in result["metrics"].items():
        low, high = row["ci"]
        lines.append(f"{key:<34} {row['a']:>8.4f} {row['b']:>8.4f} {row['delta']:>+8.4f}  [{low:+.4f}, {high:+.4f}]   {row['p_value']:>6.4f}")
    lines.append(f"{result['n_studies']} paired studies, {result['resamples']} resamples and shuffles, seed {result['seed']}; METEOR not compared")
    return "\n".join(lines)


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
    unreadable = f", {summary['n_unreadable']} unreadable (not scored)" if summary.get("n_unreadable") else ""
    lines.append(f"{summary['n_studies']} studies, {summary['n_empty_generated']} empty generated{unreadable}, "
                 f"clean={summary['clean']}")
    return "\n".join(lines)


def build_parser() -> CommandParser:
    parser = CommandParser(prog="xrg evaluate", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="JSONL with id, generated, reference")
    source.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"),
                        help="two predictions JSONL files on the same studies: B - A per metric, CI and p-value")
    parser.add_argument("--expect", type=int, metavar="N", help="fail unless each file holds N rows (one per study)")
    parser.add_argument("--clean", choices=sorted(CLEANERS), default="none", help="R2Gen report cleaning for both texts")
    parser.add_argument("--output", type=Path, help="write the summary JSON here")
    parser.add_argument("--per-sample", type=Path, help="write per-study scores (JSONL) here")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="bootstrap resamples for 95%% CIs (with --compare: resamples and shuffles, default 1000)")
    parser.add_argument("--metrics", default="", metavar="NAMES",
                        help="model-based metrics to add, comma-separated: radgraph,chexbert,green,ratescore,bertscore")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenize", choices=("none", "ptb"), default="none", help="none: R2Gen; ptb: COCO-style")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java needed)")
    parser.add_argument("--labeler", default="chexpert-rules", help="labeler for clinical efficacy")
    parser.add_argument("--no-ce", action="store_true", help="skip clinical efficacy")
    return parser


def main(argv: list[str]) -> int:
    from xrg.metrics.model_based import load_metric, parse_metric_names

    args = build_parser().parse_args(argv)
    # Read the inputs and load every model first: a bad file or missing weights stop the run at once.
    paths = args.compare or [args.predictions]
    inputs = [read_predictions(path) for path in paths]
    for path, rows in zip(paths, inputs):
        check_complete(path, len(rows), args.expect)
        unreadable = [row for row in rows if "error" in row]
        if unreadable:
            warn(f"{path}: {len(unreadable)} of {len(rows)} studies have no prediction (predict could not read "
                 f"them; first: {unreadable[0]['id']}: {unreadable[0]['error']}); scoring the other "
                 f"{len(rows) - len(unreadable)}")
    model_metrics = [load_metric(name) for name in parse_metric_names(args.metrics)]
    if args.compare:
        inputs = [[row for row in rows if "error" not in row] for rows in inputs]
        result = compare(*inputs, clean=args.clean, ce_labeler=None if args.no_ce else args.labeler,
                         model_metrics=model_metrics, resamples=args.bootstrap or 1000, seed=args.seed,
                         names=tuple(str(path) for path in args.compare))
        print(format_comparison(result))
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0
    (rows,) = inputs
    summary, per_sample = evaluate(
        rows,
        clean=args.clean,
        meteor=not args.no_meteor,
        tokenize=args.tokenize,
        ce_labeler=None if args.no_ce else args.labeler,
        bootstrap=args.bootstrap,
        seed=args.seed,
        model_metrics=model_metrics,
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
