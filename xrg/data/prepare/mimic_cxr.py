"""`xrg data mimic-cxr`: R2Gen-format `annotation.json` + `labels.json` from MIMIC-CXR's official files.

    xrg data mimic-cxr --reports mimic-cxr-reports.zip --split mimic-cxr-2.0.0-split.csv \\
        --metadata mimic-cxr-2.0.0-metadata.csv --labels mimic-cxr-2.0.0-chexpert.csv --out data/mimic

- Reports: the official reports archive (`mimic-cxr-reports.zip`) or its extracted folder; each
  study's `s<study_id>.txt` is split into sections (`sections.py`); `report` is the findings
  section by default (`--section`), and `impression` and `indication` are kept beside it.
- Images: paths relative to MIMIC-CXR-JPG's `files/` folder (`p10/p10000032/s5.../<dicom_id>.jpg`),
  the layout R2Gen's `image_dir` points at. Views from `ViewPosition`: frontal (PA, then AP) first,
  lateral (LATERAL, then LL) after; other positions are left out.
- Splits from the split file (`validate` becomes `val`); labels from the CheXpert or NegBio file.
- Each study's prior: the same subject's latest earlier study (`StudyDate`, `StudyTime`), stored as
  `prior: {id, report, image_path}` so a data module can read it without a second lookup.
Studies without the chosen section, without a report file or without a frontal or lateral image
are skipped and counted in the summary line.
"""

from __future__ import annotations

import csv
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

from xrg.cli import CommandParser
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.prepare.output import write_dataset
from xrg.data.prepare.sections import report_section, split_sections

VIEW_ORDER = ("PA", "AP", "LATERAL", "LL")  # frontal first, as R2Gen's single-view MIMIC set uses
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; is this the right MIMIC-CXR file?")
            return list(reader)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 CSV file") from None


def read_reports(source: Path) -> dict[str, str]:
    """{study id (digits): report text} from the reports zip or a folder holding `s<id>.txt` files."""
    if not source.exists():
        raise DataError(f"{source}: reports archive or folder not found")
    if source.is_dir():
        return {p.stem[1:]: p.read_text(encoding="utf-8") for p in source.rglob("s*.txt")}
    try:
        with zipfile.ZipFile(source) as archive:
            return {Path(name).stem[1:]: archive.read(name).decode("utf-8")
                    for name in archive.namelist() if Path(name).name.startswith("s") and name.endswith(".txt")}
    except zipfile.BadZipFile:
        raise DataError(f"{source}: not a zip archive (expected mimic-cxr-reports.zip or its folder)") from None


def parse_labels(rows: list[dict[str, str]], path: Path) -> dict[str, dict]:
    codes = {"1.0": 1, "1": 1, "0.0": 0, "0": 0, "-1.0": -1, "-1": -1, "": None}
    labels = {}
    for number, row in enumerate(rows, start=2):
        entry = {}
        for name in CHEXPERT_LABELS:
            value = row[name].strip()
            if value not in codes:
                raise DataError(f"{path} line {number} (study {row['study_id']}): {name} must be 1.0, 0.0, -1.0 or blank, got {value!r}")
            entry[name] = codes[value]
        labels[row["study_id"]] = entry
    return labels


def image_path(subject: str, study: str, dicom: str, extension: str) -> str:
    return f"p{subject[:2]}/p{subject}/s{study}/{dicom}.{extension}"


def prepare(reports: Path, split_csv: Path, metadata_csv: Path, labels_csv: Path, out: Path,
            section: str = "findings", extension: str = "jpg") -> str:
    splits = read_csv(split_csv, ("dicom_id", "study_id", "subject_id", "split"))
    metadata = {row["dicom_id"]: row for row in read_csv(metadata_csv, ("dicom_id", "ViewPosition", "StudyDate", "StudyTime"))}
    labels = parse_labels(read_csv(labels_csv, ("study_id", *CHEXPERT_LABELS)), labels_csv)
    texts = read_reports(reports)

    studies: dict[str, dict] = {}  # study id -> subject, split, views [(order, dicom)], time
    for number, row in enumerate(splits, start=2):
        if row["split"] not in SPLIT_NAMES:
            raise DataError(f"{split_csv} line {number}: split must be train, validate or test, got {row['split']!r}")
        study = studies.setdefault(row["study_id"], {"subject": row["subject_id"], "split": SPLIT_NAMES[row["split"]],
                                                     "views": [], "time": None})
        meta = metadata.get(row["dicom_id"])
        if meta is None:
            continue
        time = (meta["StudyDate"], meta["StudyTime"].zfill(6) if meta["StudyTime"] else "")
        study["time"] = min(study["time"], time) if study["time"] else time
        if meta["ViewPosition"] in VIEW_ORDER:
            study["views"].append((VIEW_ORDER.index(meta["ViewPosition"]), row["dicom_id"]))

    def entry(study_id: str) -> tuple[dict[str, str], list[str]]:
        study = studies[study_id]
        paths = [image_path(study["subject"], study_id, dicom, extension) for _, dicom in sorted(study["views"])]
        return split_sections(texts.get(study_id, "")), paths

    priors = previous_studies(studies)
    items, skipped = [], Counter()
    for study_id in sorted(studies, key=int):
        sections, paths = entry(study_id)
        report = report_section(sections, section)
        reason = ("no report file" if study_id not in texts else f"no {section} section" if not report
                  else "no frontal or lateral view" if not paths else None)
        if reason:
            skipped[reason] += 1
            continue
        item = {"id": study_id, "subject_id": studies[study_id]["subject"], "report": report, "image_path": paths,
                "split": studies[study_id]["split"], "impression": sections.get("impression", ""),
                "indication": sections.get("indication", "")}
        if study_id in priors:
            prior_sections, prior_paths = entry(priors[study_id])
            item["prior"] = {"id": priors[study_id], "report": report_section(prior_sections, "findings+impression"),
                             "image_path": prior_paths}
        items.append(item)
    return write_dataset(out, items, labels, skipped)


def previous_studies(studies: dict[str, dict]) -> dict[str, str]:
    """{study id: the same subject's latest earlier study id}, by the studies' earliest image time."""
    by_subject = defaultdict(list)
    for study_id, study in studies.items():
        if study["time"] is not None:
            by_subject[study["subject"]].append((study["time"], study_id))
    priors = {}
    for timeline in by_subject.values():
        timeline.sort()
        for (_, earlier), (_, later) in zip(timeline, timeline[1:]):
            priors[later] = earlier
    return priors


def main(argv: list[str]) -> int:
    parser = CommandParser(prog="xrg data mimic-cxr", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, required=True, help="mimic-cxr-reports.zip or its extracted folder")
    parser.add_argument("--split", type=Path, required=True, help="mimic-cxr-2.0.0-split.csv")
    parser.add_argument("--metadata", type=Path, required=True, help="mimic-cxr-2.0.0-metadata.csv")
    parser.add_argument("--labels", type=Path, required=True, help="mimic-cxr-2.0.0-chexpert.csv or -negbio.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for annotation.json and labels.json")
    parser.add_argument("--section", default="findings", help="findings (R2Gen), impression, or findings+impression")
    parser.add_argument("--image-extension", default="jpg", help="jpg for MIMIC-CXR-JPG, dcm for the DICOM release")
    args = parser.parse_args(argv)
    print(prepare(args.reports, args.split, args.metadata, args.labels, args.out, args.section, args.image_extension))
    return 0
