"""Reports for your own images: `xrg predict --images`, folders, DICOM, 16-bit PNGs, `model.report(...)`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import xrg
from xrg.cli import main
from xrg.data.errors import DataError
from xrg.data.images import read_image
from xrg.data.studies import find_studies

TINY_FINDINGS_REPORT_MODEL = [
    "--model=ReportGeneration",
    "--model.image_encoder=TimmImageEncoder",
    "--model.image_encoder.model_name=test_resnet",
    "--model.decoder=TransformerDecoder",
    "--model.decoder.dim=32",
    "--model.decoder.heads=2",
    "--model.decoder.ffn_dim=64",
    "--model.decoder.encoder_layers=1",
    "--model.decoder.decoder_layers=1",
    "--model.decoder.max_length=12",
    "--model.decoder.num_beams=1",
    "--model.decoder.tokenizer=WordTokenizer",
    "--model.decoder.tokenizer.threshold=1",
    "--model.nlg_metrics=false",
    "--model.clinical_efficacy=false",
    '--model.guides=[{"class_path": "PredictedFindings", "init_args": {"head": {"class_path": "FindingsClassifier"}}}]',
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("own_images")
    data = write_tiny_dataset(root / "data", studies_per_split=(4, 2, 2), size=32)
    main(["fit", *TINY_FINDINGS_REPORT_MODEL, "--data=ReportDataModule", f"--data.annotation_path={data / 'annotation.json'}",
          f"--data.labels_path={data / 'labels.json'}", "--data.image_size=32", "--data.resize=36", "--data.batch_size=4",
          # a mean/std of its own, so the test sees that predict uses the checkpoint's preprocessing
          "--data.mean=[0.5, 0.5, 0.5]", "--data.std=[0.25, 0.25, 0.25]",
          f"--trainer.default_root_dir={root / 'run'}", "--trainer.max_steps=1", "--trainer.limit_val_batches=0",
          "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.logger=false"])
    return next((root / "run").rglob("*.ckpt"))


def _png16(path: Path, low: int = 1000, high: int = 60000, size: int = 32) -> Path:
    """A 16-bit grey ramp (what an exported radiograph often is)."""
    ramp = np.linspace(low, high, size * size).reshape(size, size).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # stored with 16 bits
    return path


def _dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", slope: float = 1.0,
           intercept: float = 0.0, syntax: str | None = None) -> Path:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if syntax is None:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    else:
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a real codestream"])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_16bit_png_reaches_the_model_with_its_full_grey_range(checkpoint, tmp_path):
    model = xrg.load(checkpoint)
    seen = []
    model.image_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    model.report([_png16(tmp_path / "ramp.png")])
    pixels = seen[0][0, 0, 0] * 0.25 + 0.5  # undo the checkpoint's own normalisation (mean 0.5, std 0.25)
    assert pixels.min().item() == pytest.approx(0.0, abs=1e-5)
    assert pixels.max().item() == pytest.approx(1.0, abs=1e-5)
    assert len(torch.unique((pixels * 255).round())) > 200  # PIL's own conversion leaves 2 grey levels


def test_dicom_modality_lut_and_monochrome1(tmp_path):
    stored = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    plain = np.asarray(read_image(_dicom(tmp_path / "plain.dcm", stored)))
    inverted = np.asarray(read_image(_dicom(tmp_path / "inv", stored, photometric="MONOCHROME1")))  # no suffix
    rescaled = np.asarray(read_image(_dicom(tmp_path / "lut.dcm", stored, slope=-1.0, intercept=4000)))
    assert plain.tolist() == [[0, 64], [128, 255]]
    assert inverted.tolist() == [[255, 191], [128, 0]]  # MONOCHROME1: dense tissue stored dark, shown bright
    assert rescaled.tolist() == [[255, 191], [128, 0]]  # the modality LUT's negative slope flips it too


def test_compressed_dicom_is_refused_with_one_line(tmp_path):
    path = _dicom(tmp_path / "j2k.dcm", np.zeros((4, 4)), syntax="1.2.840.10008.1.2.4.90")
    with pytest.raises(DataError) as error:
        read_image(path)
    message = str(error.value)
    assert "\n" not in message and "j2k.dcm" in message and "JPEG 2000" in message


def test_folders_become_studies(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "single.png")
    for name in ("frontal.png", "lateral.png"):
        (tmp_path / "patient1").mkdir(exist_ok=True)
        Image.new("L", (8, 8)).save(tmp_path / "patient1" / name)
    (tmp_path / "notes.txt").write_text("not an image")
    studies = find_studies([tmp_path])
    assert [(sid, [p.name for p in paths]) for sid, paths in studies] == [
        ("patient1", ["frontal.png", "lateral.png"]), ("single", ["single.png"])]
    assert find_studies([tmp_path / "patient1" / "lateral.png", tmp_path / "patient1" / "frontal.png"])[0][0] == "patient1"
    with pytest.raises(DataError, match="notes.txt"):
        find_studies([tmp_path / "notes.txt"])


def test_predict_images_and_a_folder_of_dicom(checkpoint, tmp_path):
    views = [_png16(tmp_path / "frontal.png"), _png16(tmp_path / "lateral.png", 5000, 20000)]
    out = tmp_path / "one.jsonl"
    main(["predict", f"--ckpt_path={checkpoint}", "--images", *map(str, views), f"--predictions={out}",
          "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}", f"--explain={tmp_path / 'heat'}"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and "reference" not in rows[0] and rows[0]["images"] == [str(v) for v in views]
    assert isinstance(rows[0]["generated"], str) and len(rows[0]["findings_probs"]) == 14
    for finding, files in rows[0]["heatmaps"].items():  # one overlay per view, at the image's resolution
        assert len(files) == 2 and Image.open(files[0]).size == (32, 32)

    folder = tmp_path / "dicoms"
    folder.mkdir()
    for i in range(3):
        _dicom(folder / f"patient{i}.dcm", np.arange(64).reshape(8, 8) * (i + 1), photometric="MONOCHROME1")
    out = tmp_path / "folder.jsonl"
    main(["predict", f"--ckpt_path={checkpoint}", "--images", str(folder), f"--predictions={out}",
          "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["patient0", "patient1", "patient2"]


def test_report_api_matches_predict(checkpoint, tmp_path):
    model = xrg.load(checkpoint)
    views = [_png16(tmp_path / "a.png"), _png16(tmp_path / "b.png", 100, 900)]
    report = model.report(views, explain="all")
    assert report.id == tmp_path.name and report.images == [str(v) for v in views]
    assert isinstance(report.report, str) and set(report.findings) == set(report.details["findings_probs"])
    assert report.present == report.details["findings"]
    assert set(report.heatmaps) == set(report.findings)
    for maps in report.heatmaps.values():  # each view scaled to its own peak (all 0: no positive evidence)
        peaks = maps.reshape(2, -1).max(1)
        assert maps.shape == (2, 32, 32) and maps.min() >= 0 and all(p == 0 or abs(p - 1) < 1e-5 for p in peaks)
    assert report.overlay("Cardiomegaly", view=1).size == (32, 32)
    assert json.dumps(report.to_dict())  # JSON-ready for a web page
