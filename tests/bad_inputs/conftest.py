"""The world the bad-input suite breaks: a tiny dataset, a tiny report model and a tiny findings
classifier (one training step each), and `xrg`, which runs the command in-process and returns
(exit code, stdout, stderr)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from xrg.cli import main

QUIET = ["--trainer.accelerator=cpu", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false"]
TINY_ENCODER = ["--model.image_encoder=TimmImageEncoder", "--model.image_encoder.model_name=test_resnet"]
TINY_REPORT_MODEL = [
    "--model=ReportGeneration", *TINY_ENCODER,
    "--model.decoder=TransformerDecoder", "--model.decoder.dim=16", "--model.decoder.heads=2",
    "--model.decoder.ffn_dim=16", "--model.decoder.encoder_layers=1", "--model.decoder.decoder_layers=1",
    "--model.decoder.max_length=6", "--model.decoder.num_beams=1",
    "--model.decoder.tokenizer=WordTokenizer", "--model.decoder.tokenizer.threshold=1",
    "--model.nlg_metrics=false", "--model.clinical_efficacy=false",
]
TINY_CLASSIFIER = ["--model=FindingsClassification", *TINY_ENCODER, "--model.findings=FindingsClassifier"]


def data_args(annotation: Path, labels: Path | None = None) -> list[str]:
    args = ["--data=ReportDataModule", f"--data.annotation_path={annotation}", "--data.image_size=32",
            "--data.resize=36", "--data.batch_size=4"]
    return args + ([f"--data.labels_path={labels}"] if labels else [])


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> SimpleNamespace:
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("bad_inputs")
    data = write_tiny_dataset(root / "data", studies_per_split=(4, 2, 2), size=32)
    annotation, labels = data / "annotation.json", data / "labels.json"
    checkpoints = {}
    for name, model in (("report", TINY_REPORT_MODEL), ("classifier", TINY_CLASSIFIER)):
        run = root / name
        assert main(["fit", *model, *data_args(annotation, labels), *QUIET, f"--trainer.default_root_dir={run}",
                     "--trainer.max_steps=1", "--trainer.limit_val_batches=0"]) == 0
        checkpoints[name] = next(run.rglob("*.ckpt"))
    return SimpleNamespace(root=root, data=data, annotation=annotation, labels=labels, **checkpoints)


@pytest.fixture
def xrg(capsys, tmp_path, monkeypatch):
    """Runs `xrg ARGS` in-process from a temporary directory (a command without a log directory,
    as `predict` here, writes its config and skipped-study list where it runs); returns (exit code,
    stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def refused(xrg):
    """`refused(args, *culprits)`: the command exits 2 with exactly one `xrg <command>: error:` line
    on stderr that names every culprit, and prints no traceback. Returns that line."""

    def check(args, *culprits: str) -> str:
        code, out, err = xrg(*args)
        errors = [line for line in err.splitlines() if line.startswith("xrg") and ": error: " in line]
        assert code == 2, (code, out[-2000:], err[-2000:])
        assert len(errors) == 1, err[-2000:]
        assert "Traceback" not in out + err, err[-3000:]
        for culprit in culprits:
            assert str(culprit) in errors[0], (culprit, errors[0])
        return errors[0]

    return check
