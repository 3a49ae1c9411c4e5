"""Bad recipes and command lines: one line naming the file / key and what it expects (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_inputs.conftest import QUIET, TINY_REPORT_MODEL, data_args


def _fit(world, *extra):
    return ["fit", *TINY_REPORT_MODEL, *data_args(world.annotation, world.labels), *QUIET,
            f"--trainer.default_root_dir={world.root / 'unused'}", "--trainer.max_steps=1", *extra]


RECIPE_FILES = [
    ("invalid-yaml", "model: [unclosed\n", ["recipe.yaml:2:1", "not valid YAML"]),
    ("not-utf8", b"model: \xff\xfe\n", ["recipe.yaml", "not a UTF-8 text file"]),
    ("typo-top-level-key", "modle: 3\n", ["does not accept option 'modle'"]),
    ("model-without-class-path",
     "model:\n  init_args:\n    decoder:\n      class_path: TransformerDecoder\n      init_args:\n"
     "        tokenizer: {class_path: WordTokenizer}\n",
     ["model: no class_path given", "class_path: ReportGeneration"]),
    ("unknown-class", "model:\n  class_path: ReportGenerator\n", ["model: no class named 'ReportGenerator'"]),
    ("wrong-value-type",
     "model:\n  class_path: ReportGeneration\n  init_args:\n    decoder:\n      class_path: TransformerDecoder\n"
     "      init_args: {dim: big}\n",
     ["model (ReportGeneration).decoder (TransformerDecoder).dim", "Got value: big"]),
]


@pytest.mark.parametrize("content, culprits", [c[1:] for c in RECIPE_FILES], ids=[c[0] for c in RECIPE_FILES])
def test_bad_recipe_file(tmp_path, refused, content, culprits):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content) if isinstance(content, bytes) else recipe.write_text(content)
    refused(["fit", "--config", recipe], *culprits)


def test_missing_recipe_file(tmp_path, refused):
    refused(["fit", f"--config={tmp_path / 'nope.yaml'}"], "nope.yaml", "file not found")


COMMAND_LINES = [
    ("bad-int", ["--data.batch_size=abc"], ["data (ReportDataModule).batch_size", "Got value: abc"]),
    ("data-source-twice", ["--data.synthetic.num_studies=3"], ["needs exactly one of `annotation_path` or `synthetic`"]),
    ("frozen-unknown-block", ["--model.frozen=[visual_extractor]"], ["frozen names 'visual_extractor'", "its blocks"]),
    ("trainer-setting", ["--trainer.max_epochs=-5"], ["max_epochs", "-5"]),
    ("augmentation-typo", ["--data.random_affine={degree: 3}"], ["random_affine", "'degree'", "RandomAffine"]),
    ("finding-dropout-of-one", ["--data.drop_finding_sentences=1.0"],
     ["drop_finding_sentences is a probability below 1", "got 1.0"]),
    ("detail-window-even", ["--data.detail_channel=8"], ["detail_channel is an odd window width in pixels", "got 8"]),
    ("images-outside-predict", ["--images=x.png"], ["--images and --explain belong to `xrg predict`"]),
]


@pytest.mark.parametrize("extra, culprits", [c[1:] for c in COMMAND_LINES], ids=[c[0] for c in COMMAND_LINES])
def test_bad_command_line(world, refused, extra, culprits):
    refused(_fit(world, *extra), *culprits)


def test_bad_synthetic_benchmark_setting_is_refused_when_read(tmp_path, refused):
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "mix" / "findings_transformer_synthetic.yaml"
    refused(["fit", "--config", recipe, f"--data.init_args.synthetic.root={tmp_path}",
             "--data.init_args.synthetic.extra_train_studies=-1"], "extra_train_studies must be >= 0", "-1")
    refused(["fit", "--config", recipe, f"--data.init_args.synthetic.root={tmp_path}",
             "--data.init_args.synthetic.extra_train_studies=10",
             "--data.init_args.synthetic.extra_finding_rates={fracture: 1.5}"],
            "finding rate 'fracture'", "a probability in [0, 1], got 1.5")


def test_no_model_names_the_ways_to_give_one(refused):
    refused(["validate", *QUIET], "no model given", "--config RECIPE.yaml", "--ckpt_path")


def test_debug_shows_the_traceback(world, xrg, monkeypatch):
    from xrg.data.errors import ConfigError

    with pytest.raises(ConfigError, match="frozen names"):
        xrg(*_fit(world, "--model.frozen=[nope]"), "--debug")
    monkeypatch.setenv("XRG_DEBUG", "1")
    with pytest.raises(ConfigError, match="frozen names"):
        xrg(*_fit(world, "--model.frozen=[nope]"))
