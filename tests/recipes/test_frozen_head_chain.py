"""The writer over a pre-trained findings head (recipes/stages/frozen_findings_head.yaml): the
classifier stage with the pretraining overlay, its second round (recipes/stages/continued_findings_head.yaml),
then the findings-first writer started from it. The second round starts from the first's weights; the
encoder and head pass into the writer unchanged through its training steps (their features kept once,
`cache_frozen_features`), the writer prepares images as the head was trained (the detail channel the
overlays set), and a stage that prepares them otherwise is told so."""

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
NO_CROP = "--data.init_args.resize=64"  # as the overlays: resize = image size, so the kept features are exact
CLASSIFIER = ["--config", str(RECIPES / "mix" / "findings_classifier_synthetic.yaml"),
              "--config", str(RECIPES / "data" / "pretraining_studies_4_epochs.yaml")]
WRITER = [str(RECIPES / "mix" / "findings_transformer_synthetic.yaml"), str(RECIPES / "data" / "more_studies_6_epochs.yaml"),
          str(RECIPES / "stages" / "frozen_findings_head.yaml")]


def fit_writer(root: Path, run: Path, head: Path, *extra: str) -> Path:
    configs = [arg for recipe in WRITER for arg in ("--config", recipe)]
    main(["fit", *configs, *tiny_chain_args(root, run), NO_EXTRA_STUDIES, NO_CROP,
          f"--model.init_args.init_from.checkpoint={head}", *extra])
    return last_checkpoint(run)


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("frozen_head")
    main(["fit", *CLASSIFIER, *tiny_chain_args(tmp / "benchmark", tmp / "first"), NO_EXTRA_STUDIES, NO_CROP])
    first = last_checkpoint(tmp / "first")
    main(["fit", *CLASSIFIER, "--config", str(RECIPES / "stages" / "continued_findings_head.yaml"),
          *tiny_chain_args(tmp / "benchmark", tmp / "head"), NO_EXTRA_STUDIES, NO_CROP,
          f"--model.init_args.init_from.checkpoint={first}"])
    return tmp / "benchmark", first, last_checkpoint(tmp / "head")


def test_the_second_round_starts_from_the_first(head):
    _, first, second = head
    before, after = read_state_dict(first), read_state_dict(second)
    weights = [key for key in before if key.startswith(("image_encoder.", "findings.")) and key.endswith("weight")]
    moved = [key for key in weights if not torch.equal(before[key], after[key])]
    assert weights and moved  # it trained ...
    for key in moved:  # ... from the first round's weights: two steps at lr 3e-3 move each a little
        assert (after[key] - before[key]).abs().max() < 0.1, key


def test_the_frozen_pretrained_head_reaches_the_writer_unchanged(head, tmp_path, caplog):
    root, _, head = head
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
    root, _, head = head
    with caplog.at_level(logging.WARNING, logger="xrg.tasks.base"):
        fit_writer(root, tmp_path / "writer", head, "--data.init_args.detail_channel=null")
    (line,) = [r.getMessage() for r in caplog.records if "prepared otherwise" in r.getMessage()]
    assert str(head) in line and "detail_channel 9 -> None" in line
