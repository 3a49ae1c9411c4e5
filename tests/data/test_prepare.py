"""`xrg data mimic-cxr` and `xrg data iu-xray` on small fabricated files in the official layouts."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xrg.cli import main
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.prepare.sections import report_section, split_sections

REPO = Path(__file__).resolve().parents[2]

MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // eval for pneumonia

 COMPARISON:  {comparison}

 FINDINGS:

 {findings}

 IMPRESSION:

 {impression}
"""
FINDINGS = {"heart": "The heart is enlarged.  There is a small left\n pleural effusion.",
            "clear": "The lungs are clear.  No pleural effusion or pneumothorax.",
            "edema": "Mild pulmonary edema.  Heart size is normal."}


def test_sections_fold_headers_and_collapse_whitespace():
    text = MIMIC_REPORT.format(comparison="None.", findings=FINDINGS["heart"], impression="Cardiomegaly.")
    sections = split_sections(text)
    assert sections["preamble"] == "FINAL REPORT"
    assert sections["technique"] == "CHEST (PA AND LAT)"  # EXAMINATION folds onto technique
    assert sections["indication"] == "___F with cough // eval for pneumonia"
    assert sections["findings"] == "The heart is enlarged. There is a small left pleural effusion."
    assert report_section(sections, "findings+impression") == sections["findings"] + " Cardiomegaly."
    assert split_sections("FINDINGS AND IMPRESSION: No acute process.") == {"impression": "No acute process."}
    with pytest.raises(ValueError, match="findings, impression"):
        report_section(sections, "history")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48), value, dtype=np.uint8)).save(path)


@pytest.fixture
def mimic(tmp_path):
    """Three subjects in the official layout; subject 10000032 has two studies (a prior and a follow-up)."""
    # study -> (subject, split, findings key or None, [(dicom, view, date, time)])
    studies = {
        "50000001": ("10000032", "train", "clear", [("d1a", "LATERAL", "21800506", "213014"), ("d1b", "PA", "21800506", "213014")]),
        "50000002": ("10000032", "train", "heart", [("d2a", "AP", "21800620", "91500"), ("d2b", "AP AXIAL", "21800620", "91500")]),
        "50000003": ("10000033", "validate", "edema", [("d3a", "PA", "21900101", "120000")]),
        "50000004": ("10000034", "test", "heart", [("d4a", "LL", "21700101", "120000"), ("d4b", "PA", "21700101", "120000")]),
        "50000005": ("10000035", "test", None, [("d5a", "PA", "21700101", "120000")]),  # impression only
        "50000006": ("10000036", "train", "clear", [("d6a", "PA", "21700101", "120000")]),  # no report file
    }
    with zipfile.ZipFile(tmp_path / "mimic-cxr-reports.zip", "w") as archive:
        for study, (subject, _, key, _) in studies.items():
            if study == "50000006":
                continue
            text = MIMIC_REPORT.format(comparison="None.", findings=FINDINGS[key] if key else "", impression="See above.")
            if key is None:
                text = text.replace(" FINDINGS:\n", "")
            archive.writestr(f"files/p{subject[:2]}/p{subject}/s{study}.txt", text)
    split_rows, meta_rows, label_rows = [], [], []
    for study, (subject, split, key, images) in studies.items():
        for dicom, view, date, time in images:
            split_rows.append([dicom, study, subject, split])
            meta_rows.append([dicom, subject, study, "CHEST", view, 3000, 2500, date, time])
            _image(tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", 40 + 50 * (key == "heart"))
        codes = {name: "" for name in CHEXPERT_LABELS}
        codes.update({"Cardiomegaly": "1.0", "Pleural Effusion": "-1.0"} if key == "heart" else {"No Finding": "1.0"})
        label_rows.append([subject, study, *codes.values()])
    _write_csv(tmp_path / "split.csv", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    _write_csv(tmp_path / "metadata.csv", ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                                           "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime"], meta_rows)
    _write_csv(tmp_path / "chexpert.csv", ["subject_id", "study_id", *CHEXPERT_LABELS], label_rows)
    return tmp_path


def _mimic_args(root: Path, **changes) -> list[str]:
    files = {"reports": "mimic-cxr-reports.zip", "split": "split.csv", "metadata": "metadata.csv",
             "labels": "chexpert.csv", "out": "prepared"} | changes
    return ["data", "mimic-cxr", *[item for key, name in files.items() for item in (f"--{key}", str(root / name))]]


def test_mimic_cxr_from_official_files(mimic, capsys):
    assert main(_mimic_args(mimic)) == 0
    assert "4 studies (train 2, val 1, test 1); skipped: 1 no findings section, 1 no report file" in capsys.readouterr().out
    annotation = json.loads((mimic / "prepared" / "annotation.json").read_text())
    by_id = {item["id"]: item for split in annotation.values() for item in split}
    follow_up = by_id["50000002"]
    assert follow_up["report"] == "The heart is enlarged. There is a small left pleural effusion."
    assert follow_up["indication"] == "___F with cough // eval for pneumonia"
    assert follow_up["image_path"] == ["p10/p10000032/s50000002/d2a.jpg"]  # AP AXIAL is left out
    assert by_id["50000001"]["image_path"] == ["p10/p10000032/s50000001/d1b.jpg", "p10/p10000032/s50000001/d1a.jpg"]
    assert follow_up["prior"] == {"id": "50000001", "report": FINDINGS["clear"].replace("  ", " ") + " See above.",
                                  "image_path": by_id["50000001"]["image_path"]}
    assert "prior" not in by_id["50000001"] and by_id["50000003"]["split"] == "val"
    labels = json.loads((mimic / "prepared" / "labels.json").read_text())
    assert set(labels) == set(by_id)
    assert labels["50000004"]["Cardiomegaly"] == 1 and labels["50000004"]["Pleural Effusion"] == -1
    assert labels["50000004"]["Edema"] is None and labels["50000003"]["No Finding"] == 1


def test_mimic_cxr_refuses_a_wrong_file_in_one_line(mimic, capsys):
    assert main(_mimic_args(mimic, metadata="split.csv")) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "split.csv: missing column(s) ['ViewPosition', 'StudyDate', 'StudyTime']" in out


def test_a_recipe_fits_on_prepared_mimic_cxr(mimic, tmp_path):
    assert main(_mimic_args(mimic)) == 0
    prepared = mimic / "prepared"
    main(["fit", "--config", str(REPO / "recipes" / "r2gen" / "synthetic.yaml"), "--trainer.fast_dev_run=true",
          f"--trainer.default_root_dir={tmp_path / 'run'}", "--data.init_args.synthetic=null",
          f"--data.init_args.annotation_path={prepared / 'annotation.json'}", f"--data.init_args.image_dir={mimic / 'files'}",
          f"--data.init_args.labels_path={prepared / 'labels.json'}", "--data.init_args.cleaning=mimic_cxr",
          "--data.init_args.batch_size=2", "--model.init_args.decoder.init_args.tokenizer.init_args.threshold=1"])


OPEN_I = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><meta type="rr"/><uId id="{uid}"/>
<MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Chest pain</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">Normal chest.</AbstractText>
</Abstract></Article></MedlineCitation>
{images}
</eCitation>"""


def test_iu_xray_from_open_i_files(tmp_path, capsys):
    reports, images = tmp_path / "ecgen-radiology", tmp_path / "NLMCXR_png"
    reports.mkdir()
    for number in range(1, 11):
        uid = f"CXR{number}"
        names = [f"{uid}_IM-{number:04d}-1001", f"{uid}_IM-{number:04d}-2001"]
        findings = "The heart is enlarged." if number % 2 else ("" if number == 10 else "The lungs are clear.")
        xml_images = "".join(f'<parentImage id="{name}"><caption>Xray Chest</caption></parentImage>' for name in names)
        (reports / f"{number}.xml").write_text(OPEN_I.format(uid=uid, findings=findings, images=xml_images))
        for name in names[: 1 if number == 3 else 2]:  # study 3 lost its lateral image
            _image(images / f"{name}.png", 100)
    assert main(["data", "iu-xray", "--reports", str(reports), "--images", str(images), "--out", str(tmp_path / "iu")]) == 0
    assert "9 studies (train 6, val 1, test 2); skipped: 1 no findings section" in capsys.readouterr().out
    annotation = json.loads((tmp_path / "iu" / "annotation.json").read_text())
    by_id = {item["id"]: item for split in annotation.values() for item in split}
    assert by_id["CXR3"]["image_path"] == ["CXR3_IM-0003-1001.png"]
    assert by_id["CXR1"] | {"split": None} == {"id": "CXR1", "report": "The heart is enlarged.", "split": None,
                                                 "image_path": ["CXR1_IM-0001-1001.png", "CXR1_IM-0001-2001.png"],
                                                 "impression": "Normal chest.", "indication": "Chest pain"}
    labels = json.loads((tmp_path / "iu" / "labels.json").read_text())
    assert labels["CXR1"]["Cardiomegaly"] == 1 and labels["CXR2"]["No Finding"] == 1
