"""`xrg data iu-xray`: R2Gen-format `annotation.json` + `labels.json` from the Open-i IU X-Ray release.

    xrg data iu-xray --reports ecgen-radiology/ --images NLMCXR_png/ --out data/iu_xray

- Reports: Open-i's XML files (one per study, `<AbstractText Label="FINDINGS">` etc.); `report` is
  the findings section by default (`--section`), `impression` and `indication` are kept beside it.
  The study id is the XML's `<uId id="CXR1"/>`.
- Images: each `<parentImage id="...">` is `<id>.png` in `--images`; views keep the XML's order
  (Open-i does not state the view per image), images missing on disk are left out.
- Splits: IU X-Ray has no official split; studies are shuffled with `--seed` and cut 7:1:2 as
  R2Gen did (`--split-fractions`).
- Labels: IU X-Ray has no CheXpert labels; xrg's rule labeler labels the kept report text, so the
  clinical-efficacy references use the same labeler as the generated reports.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

from xrg.cli import CommandParser
from xrg.data.errors import DataError
from xrg.data.prepare.output import write_dataset
from xrg.data.prepare.sections import canonical_name, report_section
from xrg.metrics.labeler import ChexpertRulesLabeler


def read_study(path: Path) -> tuple[str, dict[str, str], list[str]]:
    """(study id, {canonical section: text}, [image ids]) of one Open-i XML report."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise DataError(f"{path}: not a well-formed Open-i XML report ({error})") from None
    uid = root.find(".//uId")
    if uid is None or not uid.get("id"):
        raise DataError(f"{path}: no <uId id=...> element; is this an Open-i ecgen-radiology report?")
    sections = {}
    for node in root.iter("AbstractText"):
        text = " ".join("".join(node.itertext()).split())
        if text and node.get("Label"):
            sections[canonical_name(node.get("Label"))] = text
    images = [node.get("id") for node in root.iter("parentImage") if node.get("id")]
    return uid.get("id"), sections, images


def assign_splits(ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_train, n_val = round(fractions[0] * len(order)), round(fractions[1] * len(order))
    return {study: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, study in enumerate(order)}


def prepare(reports: Path, images: Path, out: Path, section: str = "findings",
            split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0) -> str:
    files = sorted(reports.glob("*.xml")) if reports.is_dir() else []
    if not files:
        raise DataError(f"{reports}: no Open-i XML reports found (expected the ecgen-radiology folder)")
    if not images.is_dir():
        raise DataError(f"{images}: image folder not found (expected the NLMCXR_png folder)")
    kept, skipped = [], Counter()
    for path in files:
        study_id, sections, image_ids = read_study(path)
        report = report_section(sections, section)
        paths = [f"{image}.png" for image in image_ids if (images / f"{image}.png").is_file()]
        reason = f"no {section} section" if not report else "no image on disk" if not paths else None
        if reason:
            skipped[reason] += 1
            continue
        kept.append({"id": study_id, "report": report, "image_path": paths,
                     "impression": sections.get("impression", ""), "indication": sections.get("indication", "")})
    duplicates = [study for study, count in Counter(item["id"] for item in kept).items() if count > 1]
    if duplicates:
        raise DataError(f"{reports}: study id {duplicates[0]!r} appears in more than one XML file")
    splits = assign_splits([item["id"] for item in kept], split_fractions, seed)
    for item in kept:
        item["split"] = splits[item["id"]]
    labeler = ChexpertRulesLabeler()
    labels = {item["id"]: labeler.label(item["report"]) for item in kept}
    return write_dataset(out, kept, labels, skipped)


def main(argv: list[str]) -> int:
    parser = CommandParser(prog="xrg data iu-xray", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, required=True, help="folder of Open-i XML reports (ecgen-radiology)")
    parser.add_argument("--images", type=Path, required=True, help="folder of Open-i PNG images (NLMCXR_png)")
    parser.add_argument("--out", type=Path, required=True, help="folder for annotation.json and labels.json")
    parser.add_argument("--section", default="findings", help="findings (R2Gen), impression, or findings+impression")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(prepare(args.reports, args.images, args.out, args.section, tuple(args.split_fractions), args.seed))
    return 0
