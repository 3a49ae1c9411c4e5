"""Checkpoints that do not fit the command: missing, truncated, foreign, of another task (exit 2)."""

from __future__ import annotations

import collections
import json

import pytest
import torch

from bad_inputs.conftest import QUIET, TINY_REPORT_MODEL, data_args


def _truncated(world, path):
    path.write_bytes(world.report.read_bytes()[:4096])


def _text(world, path):
    path.write_text("hello")


def _pickled_object(world, path):
    torch.save({"state_dict": collections.OrderedDict(), "trainer": _Foreign()}, path)


def _tensor(world, path):
    torch.save(torch.zeros(3), path)


def _plain_state_dict(world, path):
    torch.save({"layer.weight": torch.zeros(2, 2)}, path)


def _no_xrg_config(world, path):
    """A Lightning checkpoint of another program: no xrg task config inside."""
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {"layer.weight": torch.zeros(2, 2)}}, path)


class _Foreign:
    """An object of another program: weights-only loading must refuse to unpickle it."""


BAD_FILES = [
    ("truncated", _truncated, ["bad.ckpt", "truncated or corrupt"]),
    ("text-file", _text, ["bad.ckpt", "cannot be read as a checkpoint"]),
    ("foreign-pickle", _pickled_object, ["bad.ckpt", "weights-only loading refuses"]),
    ("not-a-dict", _tensor, ["bad.ckpt", "holds a Tensor, not a checkpoint dict"]),
    ("plain-state-dict", _plain_state_dict, ["bad.ckpt", "not a Lightning checkpoint"]),
    ("no-model-config", _no_xrg_config, ["bad.ckpt", "no xrg model config inside"]),
]


@pytest.mark.parametrize("command", ["test", "predict"])
@pytest.mark.parametrize("make, culprits", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_checkpoint_file(world, tmp_path, refused, command, make, culprits):
    path = tmp_path / "bad.ckpt"
    make(world, path)
    refused([command, f"--ckpt_path={path}", *data_args(world.annotation), *QUIET], *culprits)


def test_missing_checkpoint_is_not_called_a_missing_model(tmp_path, refused):
    line = refused(["test", f"--ckpt_path={tmp_path / 'nope.ckpt'}", *QUIET], "nope.ckpt does not exist")
    assert "no model given" not in line


def test_checkpoint_folder_without_a_last_checkpoint(tmp_path, refused):
    (tmp_path / "run").mkdir()
    refused(["predict", f"--ckpt_path={tmp_path / 'run'}", *QUIET], str(tmp_path / "run"), "holds no .ckpt")


def test_a_run_folder_stands_for_its_latest_checkpoint(world, tmp_path, xrg):
    """`--ckpt_path runs/x` predicts with the fit's latest checkpoint, as if the file were given."""
    run = world.root / "classifier"  # the fit's default_root_dir, Lightning's default checkpoint callback
    (last,) = run.rglob("*.ckpt")
    by_file, by_folder = tmp_path / "file.jsonl", tmp_path / "folder.jsonl"
    assert xrg("predict", f"--ckpt_path={last}", f"--predictions={by_file}", *QUIET)[0] == 0
    assert xrg("predict", f"--ckpt_path={run}", f"--predictions={by_folder}", *QUIET)[0] == 0
    assert by_folder.read_text() == by_file.read_text() != ""


def test_checkpoint_of_another_task_than_the_recipe(world, refused):
    refused(["test", *TINY_REPORT_MODEL, *data_args(world.annotation, world.labels), f"--ckpt_path={world.classifier}",
             *QUIET], str(world.classifier), "FindingsClassification checkpoint", "recipe's model is ReportGeneration")


def test_predict_with_a_task_that_writes_no_predictions(world, tmp_path, refused, monkeypatch):
    """Contrastive and Q-Former pretraining write nothing to predict; stood in for by a classifier
    whose predict_step is Lightning's default (which would die in AttributeError on the batch)."""
    import lightning as L

    from xrg.tasks import FindingsClassification

    monkeypatch.setattr(FindingsClassification, "predict_step", L.LightningModule.predict_step)
    refused(["predict", f"--ckpt_path={world.classifier}", f"--predictions={tmp_path / 'p.jsonl'}", *QUIET],
            str(world.classifier), "FindingsClassification, which writes no predictions")
    assert not (tmp_path / "p.jsonl").exists()


def test_classifier_predictions_are_not_scored_as_reports(world, tmp_path, xrg, refused):
    """Handled: a classifier's predict writes findings rows; `xrg evaluate` on them names the missing key."""
    out = tmp_path / "p.jsonl"
    code, _, _ = xrg("predict", f"--ckpt_path={world.classifier}", f"--predictions={out}", *QUIET)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 2 and all("findings_probs" in row for row in rows)
    refused(["evaluate", "--predictions", out, "--no-meteor"], "p.jsonl:1", "missing 'generated'")


def test_weights_of_another_architecture(world, tmp_path, refused):
    """A checkpoint without xrg's config, given with a recipe: its weights must fit the recipe's model."""
    path = tmp_path / "other.ckpt"
    _no_xrg_config(world, path)
    refused(["test", *TINY_REPORT_MODEL, *data_args(world.annotation), f"--ckpt_path={path}", *QUIET],
            "other.ckpt", "do not fit this ReportGeneration", "weights missing", "unexpected (e.g. 'layer.weight')")
