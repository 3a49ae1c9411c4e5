"""Progress a person can see, a quiet switch for batch jobs, and third-party noise silenced
without hiding real warnings."""

from __future__ import annotations

import logging
import warnings

import pytest

from xrg.cli import main
from xrg.progress import silence_known_noise, track


def test_track_shows_progress_unless_quiet(capsys, monkeypatch):
    monkeypatch.delenv("XRG_QUIET", raising=False)
    assert list(track(range(5), "counting sheep")) == [0, 1, 2, 3, 4]
    assert "counting sheep" in capsys.readouterr().err
    monkeypatch.setenv("XRG_QUIET", "1")
    assert list(track(range(5), "counting sheep")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_data_synth_shows_progress_and_quiet_silences_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XRG_QUIET", raising=False)
    assert main(["data", "synth", "--out", str(tmp_path / "a"), "--num-studies", "3", "--image-size", "32"]) == 0
    assert "rendering 3 studies" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "b"), "--num-studies", "3", "--image-size", "32", "--quiet"]) == 0
    assert "rendering" not in capsys.readouterr().err


def test_known_noise_is_silenced_and_real_warnings_are_not():
    silence_known_noise()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        silence_known_noise()  # re-applied inside the recording context, as the CLI does at start
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning,
                               "_pytree.py", 21, module="lightning.pytorch.utilities._pytree")
        warnings.warn("a checkpoint from another version", UserWarning)
    assert [str(w.message) for w in caught] == ["a checkpoint from another version"]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    try:
        logger.warning("💡 Tip: For seamless cloud logging, try installing litlogger")
        logger.warning("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["GPU available: False, used: False"]


@pytest.fixture
def tiny_fit_args(tmp_path):
    from conftest import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", studies_per_split=(4, 6, 0), size=32)
    return ["fit", "--model=FindingsClassification", "--model.image_encoder=TimmImageEncoder",
            "--model.image_encoder.model_name=test_resnet", "--model.findings=FindingsClassifier",
            "--data=ReportDataModule", f"--data.annotation_path={data / 'annotation.json'}",
            f"--data.labels_path={data / 'labels.json'}", "--data.image_size=32", "--data.resize=36",
            "--data.batch_size=2", "--trainer.max_epochs=2", "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path / 'run'}"]


def test_fit_shows_a_rich_bar_and_a_line_per_epoch(tiny_fit_args, capsys, monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from xrg.lightning_cli import run_lightning_cli

    monkeypatch.delenv("XRG_QUIET", raising=False)
    cli = run_lightning_cli(tiny_fit_args)
    assert isinstance(cli.trainer.progress_bar_callback, RichProgressBar)
    out = capsys.readouterr()
    epochs = [line for line in out.out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["0", "1"]
    assert all("train/loss" in line and "val/loss" in line and "val/auc_mean" in line for line in epochs), epochs
    assert "Tip:" not in out.out + out.err

    monkeypatch.setenv("XRG_QUIET", "1")
    cli = run_lightning_cli([*tiny_fit_args, "--trainer.max_epochs=1"])
    assert cli.trainer.progress_bar_callback is None
