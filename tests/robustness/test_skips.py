"""Under `on_bad_study: skip`, unreadable studies are counted and named at the end of fit, test and
predict, predict writes an `error` row for each, and a batch whose every study fails is passed
over instead of reaching the task (it used to die with `KeyError: 'images'`)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_tiny_dataset

from xrg.cli import main
from xrg.metrics.evaluate import main as evaluate

TINY_MODEL = [
    "--model=ReportGeneration",
    "--model.image_encoder=TimmImageEncoder",
    "--model.image_encoder.model_name=test_resnet",
    "--model.decoder=TransformerDecoder",
    "--model.decoder.dim=16",
    "--model.decoder.heads=2",
    "--model.decoder.ffn_dim=32",
    "--model.decoder.encoder_layers=1",
    "--model.decoder.decoder_layers=1",
    "--model.decoder.max_length=8",
    "--model.decoder.num_beams=1",
    "--model.decoder.tokenizer=WordTokenizer",
    "--model.decoder.tokenizer.threshold=1",
    "--model.nlg_metrics=false",
    "--model.clinical_efficacy=false",
]


def _break(data: Path) -> None:
    """train: one study unreadable; test: the first batch of two unreadable, one image missing."""
    for study in ("study_003", "study_012", "study_013"):
        (data / "images" / study / "1.png").write_bytes(b"not a png")
    (data / "images" / "study_015" / "0.png").unlink()  # found when the dataset is built


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_skipped_studies_are_counted_named_and_get_an_error_row(tmp_path, capsys, one_thread):
    data = write_tiny_dataset(tmp_path / "data", size=32)
    _break(data)
    common = ["--data=ReportDataModule", f"--data.annotation_path={data / 'annotation.json'}",
              "--data.image_size=32", "--data.resize=32", "--data.batch_size=4", "--data.eval_batch_size=2",
              "--data.on_bad_study=skip", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
              "--trainer.enable_model_summary=false"]
    run = tmp_path / "run"
    main(["fit", *TINY_MODEL, *common, "--trainer.max_epochs=1", "--trainer.num_sanity_val_steps=0",
          f"--trainer.default_root_dir={run}"])
    out = capsys.readouterr().out
    assert "xrg fit: 1 studies skipped as unreadable (train: 1)" in out
    (fit_log,) = run.rglob("skipped_studies.jsonl")
    assert [(r["split"], r["id"]) for r in _rows(fit_log)] == [("train", "study_003")]
    assert "cannot read image" in _rows(fit_log)[0]["why"]

    checkpoint = next(run.rglob("*.ckpt"))
    main(["test", *common, f"--ckpt_path={checkpoint}", f"--trainer.default_root_dir={tmp_path / 'test'}"])
    assert "xrg test: 3 studies skipped as unreadable (test: 3)" in capsys.readouterr().out
    (test_log,) = (tmp_path / "test").rglob("skipped_studies.jsonl")
    assert sorted(r["id"] for r in _rows(test_log)) == ["study_012", "study_013", "study_015"]

    predictions = tmp_path / "predictions.jsonl"
    main(["predict", *common, f"--ckpt_path={checkpoint}", f"--predictions={predictions}",
          f"--trainer.default_root_dir={tmp_path / 'predict'}"])
    rows = {row["id"]: row for row in _rows(predictions)}
    assert sorted(rows) == ["study_012", "study_013", "study_014", "study_015"]  # no study missing
    assert set(rows["study_014"]) == {"id", "generated", "reference"}
    assert "cannot read image" in rows["study_012"]["error"] and "does not exist" in rows["study_015"]["error"]
    meta = json.loads((tmp_path / "predictions.jsonl.meta.json").read_text())
    assert meta == {"rows": 4, "errors": 3, "expected": 4}

    capsys.readouterr()
    assert evaluate(["--predictions", str(predictions), "--no-meteor", "--no-ce", "--expect", "4"]) == 0
    captured = capsys.readouterr()
    assert "3 of 4 studies have no prediction" in captured.err and "scoring the other 1" in captured.err
    assert "1 studies, 0 empty generated, 3 unreadable (not scored)" in captured.out
