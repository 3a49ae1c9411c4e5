"""Chained recipes learn stage by stage, and a trained stage reloads to the same outputs.

Each stage is built from its recipe by the CLI's own parser (tiny data and backbones by overrides),
started from the previous stage's checkpoint, validated, fitted a few steps and validated again:
its own objective must improve, not only its weights be carried. The checkpoint it writes,
loaded back with `xrg.load`, gives the very same validation loss and weights, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import xrg
from conftest import recipe_variant, tiny_chain_args
from xrg.lightning_cli import XrgCLI

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
STEPS = 20


def build(recipe: Path, root: Path, run: Path, previous: Path | None, *extra: str) -> XrgCLI:
    args = ["--config", str(recipe), *tiny_chain_args(root, run), f"--trainer.max_steps={STEPS}",
            "--trainer.limit_val_batches=2",
            "--trainer.logger=false", *extra]
    if previous is not None:
        args.append(f"--model.init_args.init_from.checkpoint={previous}")
    return XrgCLI(model_class=xrg.tasks.XrgTask, datamodule_class=xrg.data.ReportDataModule, subclass_mode_model=True,
                  subclass_mode_data=True, args=args, run=False, auto_configure_optimizers=False,
                  save_config_kwargs={"overwrite": True})


def val_loss(trainer, model, datamodule) -> float:
    return trainer.validate(model, datamodule=datamodule, verbose=False)[0]["val/loss"]


def run_stage(recipe: Path, root: Path, run: Path, previous: Path | None, *extra: str) -> Path:
    """Fit one stage; check its objective fell and its checkpoint reloads exactly; return the checkpoint."""
    torch.manual_seed(0)
    cli = build(recipe, root, run, previous, *extra)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    if model.init_from and model.init_from.checkpoint:
        model.load_stage_init(model.init_from)  # what `fit` starts from, so the first loss is the stage's start
    before = val_loss(trainer, model, datamodule)
    trainer.fit(model, datamodule=datamodule)
    after = val_loss(trainer, model, datamodule)
    assert after < before, f"{recipe.name}: its own objective did not improve: val/loss {before:.4f} -> {after:.4f}"

    checkpoint = run / "stage.ckpt"
    trainer.save_checkpoint(checkpoint)
    loaded = xrg.load(checkpoint)
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, theirs[key]), f"{recipe.name}: {key} differs after xrg.load"
    assert val_loss(trainer, loaded, datamodule) == after, f"{recipe.name}: xrg.load gives another validation loss"
    return checkpoint


def test_radialog_stages_each_improve_their_own_objective(tmp_path):
    root, previous = tmp_path / "benchmark", None
    for stage in ("classifier", "qformer", "llm"):
        extra = ["--model.init_args.decoder.init_args.max_new_tokens=4"] if stage == "llm" else []
        previous = run_stage(RECIPES / "radialog" / f"{stage}_synthetic.yaml", root, tmp_path / stage, previous, *extra)


def test_trrg_stages_each_improve_their_own_objective(tmp_path):
    root = tmp_path / "benchmark"
    text = "{hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"
    stage1 = run_stage(RECIPES / "trrg" / "stage1_synthetic.yaml", root, tmp_path / "stage1", None,
                       f"--model.init_args.text_encoder.init_args.config={text}", f"--trainer.max_steps={STEPS // 2}")
    perception = "model.init_args.guides.0.init_args.perception.init_args"
    recipe = recipe_variant(RECIPES / "trrg" / "stage2_synthetic.yaml", tmp_path / "stage2.yaml",
                            {f"{perception}.text_encoder.init_args.config": TINY_TEXT})
    run_stage(recipe, root, tmp_path / "stage2", stage1, "--model.init_args.decoder.init_args.max_length=12",
              "--model.init_args.decoder.init_args.num_beams=1")
