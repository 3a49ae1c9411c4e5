"""Instruction data in the RaDialog-INS style, built from an annotation plus labels.

Each record is one dialog of two turns about one study: first the report (user asks for it, the
assistant's reply is `report`), then the task (`instruction` -> `answer`). JSONL, one per line:

    {"id": "<study id>", "task": "<task>", "instruction": "<text or null>", "answer": "<text>",
     "report": "<first assistant turn, optional: the study's reference report when absent>"}

`task` "report" has no second turn (`instruction` null, `answer` the report). Tasks derived here
from reports and labels alone:
- "report": report generation;
- "correction": the first turn is a wrong report (another study's, whose findings differ from
  this study's as little as possible); the instruction names the flipped findings; the answer is
  the correct report;
- "finding_qa_binary": "Is there <finding>?" -> "Yes." / "No." for a labelled finding;
- "finding_qa_all": "Which findings are in the image?" -> all positive findings.
Tasks whose answers an LLM must author ("summary", "plain_language") are never fabricated:
`--external-prompts` writes the prompts to give such a model, `--external-answers` reads its
answers back (`{"id", "task", "answer"}` per line). Region QA and reasoning need region / reasoning
annotations that R2Gen-format data lacks, so they are not built.

    python -m xrg.data.instruct --annotation A.json --labels L.json --out ins.jsonl
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from xrg.cli import CommandParser
from xrg.data.errors import DataError
from xrg.data.jsonl import read_jsonl_objects
from xrg.data.labels import CHEXPERT_LABELS

DERIVED_TASKS = ("report", "correction", "finding_qa_binary", "finding_qa_all")
EXTERNAL_TASKS = {
    "summary": "Summarize the following radiology report in one or two sentences for a clinician:\n{report}",
    "plain_language": "Explain the following radiology report in simple words a patient understands:\n{report}",
}
# The user's second-turn text for external tasks, as the model will see it.
EXTERNAL_INSTRUCTIONS = {"summary": "Summarize the report.", "plain_language": "Explain the report in simple language."}
FIELDS = ("id", "task", "instruction", "answer")


@dataclass
class LabelledStudy:
    id: str
    report: str
    labels: list[float]  # CheXpert order; NaN blank, -1 uncertain

    def positives(self) -> set[str]:
        return {n for n, v in zip(CHEXPERT_LABELS, self.labels) if v == 1}


def _lower(name: str) -> str:
    return name.lower()


def finding_qa_binary(study: LabelledStudy, rng: random.Random) -> dict | None:
    known = [(n, v) for n, v in zip(CHEXPERT_LABELS, study.labels) if v in (0, 1) and n != "No Finding"]
    if not known:
        return None
    name, value = rng.choice(known)
    return {"instruction": f"Is there {_lower(name)}?", "answer": "Yes." if value == 1 else "No."}


def finding_qa_all(study: LabelledStudy, rng: random.Random) -> dict:
    found = sorted(study.positives() - {"No Finding"}, key=CHEXPERT_LABELS.index)
    answer = ", ".join(map(_lower, found)) + "." if found else "No findings."
    return {"instruction": "Which findings are in the image?", "answer": answer}


def correction(study: LabelledStudy, others: list[LabelledStudy], rng: random.Random) -> dict | None:
    """A wrong report: another study's, the one whose positive findings differ least (but do)."""
    mine = study.positives() - {"No Finding"}
    candidates = [(len(mine ^ (o.positives() - {"No Finding"})), rng.random(), o) for o in others if o.id != study.id]
    candidates = [c for c in candidates if c[0] > 0 and c[2].report != study.report]
    if not candidates:
        return None
    _, _, wrong = min(candidates, key=lambda c: c[:2])
    theirs = wrong.positives() - {"No Finding"}
    fixes = [f"there is {_lower(n)}" for n in sorted(mine - theirs)] + [f"there is no {_lower(n)}" for n in sorted(theirs - mine)]
    return {
        "report": wrong.report,
        "instruction": f"The report is wrong: {'; '.join(fixes)}. Please correct the report.",
        "answer": study.report,
    }


def derive_samples(studies: list[LabelledStudy], tasks: Iterable[str] = DERIVED_TASKS, seed: int = 0) -> list[dict]:
    """One record per study and task (where the task applies), in a fixed order."""
    rng = random.Random(seed)
    unknown = set(tasks) - set(DERIVED_TASKS)
    if unknown:
        raise ValueError(f"tasks {sorted(unknown)} cannot be derived from reports and labels; derivable: {DERIVED_TASKS}")
    records = []
    for study in studies:
        for task in tasks:
            if task == "report":
                sample = {"instruction": None, "answer": study.report}
            elif task == "correction":
                sample = correction(study, studies, rng)
            elif task == "finding_qa_binary":
                sample = finding_qa_binary(study, rng)
            else:
                sample = finding_qa_all(study, rng)
            if sample is not None:
                records.append({"id": study.id, "task": task, **sample})
    return records


def external_prompts(studies: list[LabelledStudy], tasks: Iterable[str]) -> list[dict]:
    return [{"id": s.id, "task": t, "prompt": EXTERNAL_TASKS[t].format(report=s.report)} for s in studies for t in tasks]


def read_jsonl(path: str | Path, required: Iterable[str]) -> list[dict]:
    """Records of a JSONL file; a bad line raises DataError naming the file, line and key."""
    rows = []
    for where, row in read_jsonl_objects(path):
        missing = [key for key in required if key not in row]
        if missing:
            raise DataError(f"{where}: expected an object with keys {list(required)}; missing {missing}")
        rows.append(row)
    return rows


def external_samples(path: str | Path, study_ids: set[str]) -> list[dict]:
    """Answers authored by an external model, as instruction records."""
    records = []
    for row in read_jsonl(path, ("id", "task", "answer")):
        if row["task"] not in EXTERNAL_TASKS:
            raise DataError(f"{path}: study {row['id']!r}: task {row['task']!r} is not one of {sorted(EXTERNAL_TASKS)}")
        if row["id"] not in study_ids:
            raise DataError(f"{path}: study {row['id']!r} is not in the annotation split")
        records.append({"id": row["id"], "task": row["task"], "instruction": EXTERNAL_INSTRUCTIONS[row["task"]], "answer": row["answer"]})
    return records


def read_instructions(path: str | Path) -> dict[str, list[dict]]:
    """Instruction records grouped by study id."""
    grouped: dict[str, list[dict]] = {}
    for row in read_jsonl(path, FIELDS):
        grouped.setdefault(row["id"], []).append(row)
    return grouped


def studies_from_files(annotation: str | Path, labels: str | Path, split: str, cleaning: str) -> list[LabelledStudy]:
    from xrg.data.annotation import read_annotation, read_labels
    from xrg.data.cleaning import get_cleaner

    clean = get_cleaner(cleaning)
    label_rows = read_labels(labels)
    studies = []
    for study in read_annotation(annotation)[split]:
        if study.id not in label_rows:
            raise DataError(f"{labels}: no labels for study {study.id!r} of {annotation}")
        studies.append(LabelledStudy(study.id, clean(study.report), list(label_rows[study.id])))
    return studies


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="xrg data instruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotation", required=True, help="R2Gen annotation.json")
    parser.add_argument("--labels", required=True, help="labels JSON (study id -> 14 CheXpert codes)")
    parser.add_argument("--out", required=True, help="instruction JSONL to write")
    parser.add_argument("--split", default="train")
    parser.add_argument("--cleaning", default="iu_xray", choices=["iu_xray", "mimic_cxr", "none"])
    parser.add_argument("--tasks", nargs="+", default=list(DERIVED_TASKS), choices=DERIVED_TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--external-prompts", help="write prompts for an external LLM (summary, plain_language) here")
    parser.add_argument("--external-answers", help="JSONL of that LLM's answers to add as samples")
    args = parser.parse_args(argv)

    studies = studies_from_files(args.annotation, args.labels, args.split, args.cleaning)
    records = derive_samples(studies, args.tasks, args.seed)
    if args.external_answers:
        records += external_samples(args.external_answers, {s.id for s in studies})
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in records))
    counts = {t: sum(r["task"] == t for r in records) for t in dict.fromkeys(r["task"] for r in records)}
    print(f"wrote {len(records)} samples to {args.out}: {counts}")
    if args.external_prompts:
        prompts = external_prompts(studies, EXTERNAL_TASKS)
        Path(args.external_prompts).write_text("".join(json.dumps(p) + "\n" for p in prompts))
        print(f"wrote {len(prompts)} prompts for an external model to {args.external_prompts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
