"""The `xrg` command end to end on a tiny dataset: fit -> checkpoint -> predict / load."""

import json
from pathlib import Path

import pytest
import torch

import xrg
from xrg.cli import main

TINY_MODEL = [
    "--model=xrg.tasks.ReportGeneration",
    "--model.image_encoder=xrg.blocks.encoders.TimmImageEncoder",
    "--model.image_encoder.model_name=resnet18",
    "--model.decoder=xrg.blocks.decoders.TransformerDecoder",
    "--model.decoder.dim=32",
    "--model.decoder.heads=2",
    "--model.decoder.ffn_dim=64",
    "--model.decoder.encoder_layers=1",
    "--model.decoder.decoder_layers=1",
    "--model.decoder.max_length=20",
    "--model.decoder.num_beams=2",
    "--model.decoder.tokenizer=xrg.data.tokenizers.WordTokenizer",
    "--model.decoder.tokenizer.threshold=1",
    "--model.nlg_metrics=false",
    "--model.clinical_efficacy=false",
]


def _data_args(root: Path) -> list[str]:
    return [
        "--data=xrg.data.ReportDataModule",
        f"--data.annotation_path={root / 'annotation.json'}",
        f"--data.labels_path={root / 'labels.json'}",
        "--data.image_size=32",
        "--data.resize=36",
        "--data.batch_size=4",
    ]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "evaluate", "data", "label", "chat"):
        assert f"  {command} " in out


def test_missing_model_is_a_clear_error(capsys):
    assert main(["validate", "--trainer.accelerator=cpu"]) == 2
    assert "xrg validate: error: no model given; pass --config RECIPE.yaml" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("cli")
    data = write_tiny_dataset(root / "data")
    main(
        ["fit", *TINY_MODEL, *_data_args(data), f"--trainer.default_root_dir={root / 'run'}",
         "--trainer.max_epochs=2", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    )
    checkpoint = next((root / "run").rglob("*.ckpt"))
    return root, data, checkpoint


def test_checkpoint_describes_itself(trained):
    _, _, checkpoint = trained
    content = torch.load(checkpoint, weights_only=True)
    assert "ReportGeneration" in content["xrg_config"]
    assert content["hyper_parameters"]["_class_path"] == "xrg.tasks.ReportGeneration"
    assert content["state_dict"]["decoder._extra_state"]["tokenizer"]["words"]  # vocabulary inside


def test_predict_from_checkpoint_alone_writes_jsonl(trained, tmp_path):
    root, data, checkpoint = trained
    # The annotation the vocabulary came from is gone: the checkpoint must be enough.
    moved = tmp_path / "elsewhere"
    data.rename(moved)
    try:
        out = tmp_path / "preds.jsonl"
        main(["predict", f"--ckpt_path={checkpoint}", *_data_args(moved), f"--predictions={out}",
              "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}"])
    finally:
        moved.rename(data)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["study_012", "study_013", "study_014", "study_015"]
    assert all(set(r) == {"id", "generated", "reference"} and r["reference"].endswith(" .") for r in rows)

    model = xrg.load(checkpoint)
    from xrg.data import ReportDataModule

    dm = ReportDataModule(annotation_path=str(data / "annotation.json"), image_size=32, resize=36, batch_size=4)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert model.generate(batch["images"], batch["view_mask"]) == [r["generated"] for r in rows]


def test_predict_with_only_the_checkpoint(trained, tmp_path):
    _, _, checkpoint = trained
    out = tmp_path / "preds.jsonl"
    main(["predict", f"--ckpt_path={checkpoint}", f"--predictions={out}", "--trainer.accelerator=cpu",
          f"--trainer.default_root_dir={tmp_path}"])
    assert len(out.read_text().splitlines()) == 4


def test_training_lowers_the_loss(trained):
    root, _, _ = trained
    metrics = next((root / "run").rglob("metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    column = header.index("val/loss")
    values = [float(line.split(",")[column]) for line in metrics[1:] if line.split(",")[column]]
    assert len(values) == 2 and values[-1] < values[0]


def test_tensorboard_logs_beside_csv(trained):
    root, _, _ = trained
    csv = next((root / "run").rglob("metrics.csv"))
    events = list(csv.parent.glob("events.out.tfevents.*"))  # one version folder holds both
    assert events and events[0].stat().st_size > 0
