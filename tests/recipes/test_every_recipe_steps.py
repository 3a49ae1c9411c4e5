"""Every recipe, paper size included, takes one real training step on the CPU.

Hub-only parts (7B LLMs, BERTs, pretrained timm / open_clip / BioViL-T weights) are replaced by tiny
random stand-ins saved where their blocks' local loading paths read them (`xrg.standins`); the data
is a tiny written dataset. Only the hardware changes on the command line (CPU, fp32, no workers,
one step), so the recipe's own blocks, freezing and optimiser run. The step must be real: the loss
finite, every trainable parameter reached by the loss and moved by the optimiser where its gradient
is non-zero, no frozen parameter and no BatchNorm statistic of a frozen block moved.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

import xrg
from conftest import write_tiny_dataset
from tests.test_recipes import PAPER_SIZE, RECIPES, _id
from xrg.lightning_cli import XrgCLI
from xrg.standins import offline_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

# Recipes whose `fit` has nothing to learn, by design: the step must leave every weight as it was.
NOTHING_TO_LEARN = {
    # RadAlign's frozen 7B LLM reads text only (`visual_tokens: false`): the recipe runs with `xrg test`;
    # the decoder's memory projection exists but nothing it projects reaches the prompt.
    "radalign/generate_mimic_cxr.yaml",
}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    """One stand-in folder for the module: recipes naming the same backbone share its stand-in."""
    return tmp_path_factory.mktemp("standins")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Twelve training studies (a word tokenizer's threshold of 10 keeps a vocabulary), with noise on
    the flat fixture images: a batch of flat images has no variance, and BatchNorm then passes no gradient."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("data"), studies_per_split=(12, 2, 2), views=2, size=32)
    rng = np.random.default_rng(0)
    for path in sorted((root / "images").rglob("*.png")):
        pixels = np.asarray(Image.open(path), dtype=np.int16) + rng.integers(-40, 40, size=(32, 32))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="L").save(path)
    return root


class StepWatch(L.Callback):
    """Parameters and BatchNorm statistics before the step; which gradients it made; its loss."""

    def on_train_start(self, trainer, task) -> None:
        self.before = {name: p.detach().clone() for name, p in task.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in task.named_buffers()}

    def on_before_optimizer_step(self, trainer, task, optimizer) -> None:
        grads = {name: p.grad for name, p in task.named_parameters() if p.grad is not None}
        self.reached = set(grads)
        self.nonzero = {name for name, grad in grads.items() if bool(grad.ne(0).any())}

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
        self.loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)


HARDWARE = [
    "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.precision=32-true", "--trainer.max_steps=1",
    "--trainer.accumulate_grad_batches=1", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
    "--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    "--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--data.init_args.pin_memory=false",
    "--data.init_args.persistent_workers=false",
]


@pytest.mark.parametrize("recipe", RECIPES, ids=_id)
def test_recipe_takes_one_real_step_with_stand_ins(recipe, tmp_path, stand_ins, tiny_data):
    offline = offline_recipe(recipe, stand_ins, size="tiny", data=tiny_data, name=f"{recipe.parent.name}_{recipe.name}")
    if recipe in PAPER_SIZE:
        assert offline.stand_ins, f"{_id(recipe)}: a paper-size recipe with nothing to stand in for"
    torch.manual_seed(0)
    cli = XrgCLI(model_class=xrg.tasks.XrgTask, datamodule_class=xrg.data.ReportDataModule, subclass_mode_model=True,
                 subclass_mode_data=True, args=[*offline.args, *HARDWARE, f"--trainer.default_root_dir={tmp_path}"],
                 run=False, auto_configure_optimizers=False, save_config_kwargs={"overwrite": True})
    watch = StepWatch()
    cli.trainer.callbacks.append(watch)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    task = cli.model

    assert cli.trainer.global_step == 1 and math.isfinite(watch.loss), watch.__dict__.get("loss")
    parameters = dict(task.named_parameters())
    trainable = {name for name, p in parameters.items() if p.requires_grad}
    moved = {name for name, p in parameters.items() if not torch.equal(p.detach(), watch.before[name])}
    assert trainable, "nothing trains"
    assert not moved - trainable, f"frozen parameters moved: {sorted(moved - trainable)[:5]}"
    assert not trainable - watch.reached, f"trainable parameters the loss never reaches: {sorted(trainable - watch.reached)[:5]}"
    assert not watch.nonzero - moved, f"parameters with a gradient the optimiser left: {sorted(watch.nonzero - moved)[:5]}"
    if _id(recipe) in NOTHING_TO_LEARN:
        assert not watch.nonzero, f"{_id(recipe)} learns now: take it out of NOTHING_TO_LEARN"
    else:
        assert watch.nonzero, "every gradient is zero"
    frozen_blocks = [name for name, m in task.named_modules() if getattr(m, "_frozen", False) or getattr(m, "frozen", None) is True]
    for name, module in task.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and any(name.startswith(f"{b}.") for b in frozen_blocks):
            assert torch.equal(module.running_mean, watch.buffers[f"{name}.running_mean"]), f"frozen {name} updated its statistics"
