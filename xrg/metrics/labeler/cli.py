"""`xrg label --input reports.jsonl --output labels.jsonl`: label reports with `chexpert-rules`.

Input lines are `{"id": ..., "report": ...}`; output lines are `{"id": ..., "labels": {14 names}}`
with codes 1 / 0 / -1 / null. A bad line stops the run with its line number.
"""

from __future__ import annotations

import json
from pathlib import Path

from xrg.cli import CommandParser
from xrg.data.errors import DataError
from xrg.data.jsonl import check_report_length, read_jsonl_objects
from xrg.metrics.labeler.rules import ChexpertRulesLabeler
from xrg.progress import track


def read_reports(path: Path) -> list[tuple[object, str]]:
    rows = []
    for where, row in read_jsonl_objects(path, "reports"):
        if "id" not in row or not isinstance(row.get("report"), str):
            raise DataError(f'{where}: expected an object with "id" and a string "report"')
        check_report_length(where, "report", row["report"])
        rows.append((row["id"], row["report"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="xrg label", description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help='JSONL with {"id", "report"} per line')
    parser.add_argument("--output", type=Path, required=True, help='JSONL with {"id", "labels"} per line')
    args = parser.parse_args(argv)

    labeler = ChexpertRulesLabeler()
    rows = read_reports(args.input)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as handle:
        for study_id, report in track(rows, f"labelling {len(rows)} reports"):
            handle.write(json.dumps({"id": study_id, "labels": labeler.label(report)}) + "\n")
    print(f"labeled {len(rows)} reports with {labeler.name} -> {args.output}")
    return 0
