"""TRRG recipes end to end: stage 1 -> checkpoint -> stage 2 (K = 3 and K = 14), and the ablation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xrg.checkpoints import read_state_dict
from conftest import last_checkpoint, recipe_variant, tiny_chain_args
from xrg.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "trrg"
TINY_TEXT = "{hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("trrg")
    root, run = tmp / "benchmark", tmp / "stage1"
    main(["fit", "--config", str(RECIPES / "stage1_synthetic.yaml"), *tiny_chain_args(root, run),
          f"--model.init_args.text_encoder.init_args.config={TINY_TEXT}"])
    return root, last_checkpoint(run)


PERCEPTION = "model.init_args.guides.0.init_args.perception.init_args"


def _stage2(root: Path, run: Path, checkpoint: Path, *extra: str, changes: dict | None = None) -> dict[str, torch.Tensor]:
    """Stage 2 with the tiny text tower in the perception (and `changes` to the recipe)."""
    changes = {f"{PERCEPTION}.text_encoder.init_args.config": TINY, **(changes or {})}
    recipe = recipe_variant(RECIPES / "stage2_synthetic.yaml", run / "recipe.yaml", changes)
    main(["fit", "--config", str(recipe), *tiny_chain_args(root, run),
          "--model.init_args.decoder.init_args.max_length=12", "--model.init_args.decoder.init_args.num_beams=1",
          f"--model.init_args.init_from.checkpoint={checkpoint}", *extra])
    return read_state_dict(last_checkpoint(run))


THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]


@pytest.fixture(scope="module")
def stage2_three(stage1, tmp_path_factory) -> Path:
    root, checkpoint = stage1
    run = tmp_path_factory.mktemp("trrg") / "stage2"
    _stage2(root, run, checkpoint, changes={f"{PERCEPTION}.label_names": THREE})
    return last_checkpoint(run)


def _assert_started_from_stage1(state: dict[str, torch.Tensor], stage1_checkpoint: Path, k: int) -> None:
    joint = {k: v for k, v in read_state_dict(stage1_checkpoint).items() if k.startswith("joint.")}
    assert joint
    for key, value in joint.items():  # the frozen perception is exactly stage 1's joint space
        torch.testing.assert_close(state[f"guides.clues.perception.{key}"], value)
    assert state["guides.clues.perception.pos_weight"].numel() == k


def test_stage2_starts_from_stage1_with_three_diseases(stage1, stage2_three):
    _assert_started_from_stage1(read_state_dict(stage2_three), stage1[1], 3)


def test_stage2_runs_with_all_fourteen_from_the_recipe(stage1, tmp_path):
    root, checkpoint = stage1
    _assert_started_from_stage1(_stage2(root, tmp_path / "stage2", checkpoint), checkpoint, 14)


def test_predict_writes_what_was_perceived(stage2_three, tmp_path):
    out = tmp_path / "predictions.jsonl"
    main(["predict", "--ckpt_path", str(stage2_three), f"--predictions={out}", "--trainer.limit_predict_batches=1",
          f"--trainer.default_root_dir={tmp_path}"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(set(row["perceived"]) == set(THREE) for row in rows)
    assert all(0.0 <= p <= 1.0 for row in rows for p in row["perceived"].values())


def test_without_clue_modules_is_plain_report_generation(stage1, tmp_path):
    root, checkpoint = stage1
    state = _stage2(root, tmp_path / "ablation", checkpoint, "--model.init_args.guides=[]", "--model.init_args.frozen=[]",
                    "--model.init_args.init_from.blocks={image_encoder: image_encoder}", changes={})
    assert not any(k.startswith("guides.") for k in state)
    assert any(k.startswith("image_encoder.") for k in state)
