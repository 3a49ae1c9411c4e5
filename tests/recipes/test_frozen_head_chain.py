"""The writer over a pre-trained findings head (recipes/stages/frozen_findings_head.yaml): the
classifier stage with the pretraining overlay, then the findings-first writer started from it. The
encoder and head pass into the writer unchanged through its training steps, the writer prepares
images as the head was trained (the detail channel both overlays set), and a stage that prepares
them otherwise is told so."""

import logging
from pathlib import Path

import pytest
import torch
from conftest import last_checkpoint, tiny_chain_args

from xrg.checkpoints import read_checkpoint, read_state_dict
from xrg.cli import main
from xrg.data.studies import ImagePreparation

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
NO_EXTRA_STUDIES = "--data.init_args.synthetic.extra_train_studies=0"  # the overlays' thousands: not in a test
WRITER = [str(RECIPES / "mix" / "findings_transformer_synthetic.yaml"), str(RECIPES / "data" / "more_studies_6_epochs.yaml"),
          str(RECIPES / "stages" / "frozen_findings_head.yaml")]


def fit_writer(root: Path, run: Path, head: Path, *extra: str) -> Path:
    configs = [arg for recipe in WRITER for arg in ("--config", recipe)]
    main(["fit", *configs, *tiny_chain_args(root, run), NO_EXTRA_STUDIES, f"--model.init_args.init_from.checkpoint={head}", *extra])
    return last_checkpoint(run)


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("frozen_head")
    main(["fit", "--config", str(RECIPES / "mix" / "findings_classifier_synthetic.yaml"),
          "--config", str(RECIPES / "data" / "pretraining_studies_4_epochs.yaml"),
          *tiny_chain_args(tmp / "benchmark", tmp / "head"), NO_EXTRA_STUDIES])
    return tmp / "benchmark", last_checkpoint(tmp / "head")


def test_the_frozen_pretrained_head_reaches_the_writer_unchanged(head, tmp_path, caplog):
    root, head = head
    with caplog.at_level(logging.WARNING, logger="xrg.tasks.base"):
        writer = fit_writer(root, tmp_path / "writer", head)
    assert "prepared otherwise" not in caplog.text
    before, after = read_state_dict(head), read_state_dict(writer)
    carried = [key for key in before if key.startswith(("image_encoder.", "findings."))]
    assert any(key.endswith("running_mean") for key in carried) and "findings.pos_weight" in carried
    for key in carried:  # weights and batch-norm statistics alike: two AdamW steps at lr 3e-3 move any trained one
        torch.testing.assert_close(after[key.replace("findings.", "guides.findings.head.", 1)], before[key], rtol=0, atol=0)
    preparations = [ImagePreparation.from_checkpoint(read_checkpoint(path)) for path in (head, writer)]
    assert preparations[0] == preparations[1] and preparations[0].detail_channel == 9


def test_a_writer_that_prepares_images_otherwise_is_told(head, tmp_path, caplog):
    root, head = head
    with caplog.at_level(logging.WARNING, logger="xrg.tasks.base"):
        fit_writer(root, tmp_path / "writer", head, "--data.init_args.detail_channel=null")
    (line,) = [r.getMessage() for r in caplog.records if "prepared otherwise" in r.getMessage()]
    assert str(head) in line and "detail_channel 9 -> None" in line
