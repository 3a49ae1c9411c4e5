"""What every xrg task shares: optimizer/scheduler callables, stage chaining, parameter report."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities.parsing import _get_init_args

from xrg.checkpoints import load_block_weights

log = logging.getLogger(__name__)


@dataclass
class StageInit:
    """Start blocks from an earlier stage's checkpoint.

    `blocks` maps an attribute of this task to the key prefix of the block in the checkpoint,
    e.g. {"image_encoder": "image_encoder"}. With `checkpoint: null` every block starts from its
    own initialisation, so each stage also runs on its own.
    """

    checkpoint: str | None = None
    blocks: dict[str, str] = field(default_factory=dict)


def _is_plain(value) -> bool:
    """A value that YAML and `torch.load(weights_only=True)` both take as it is."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


class XrgTask(L.LightningModule):
    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: StageInit | None = None,
        block_lr: dict[str, float] | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        self.scheduler_interval = scheduler_interval
        self.block_lr = dict(block_lr or {})
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.init_from = init_from

    def save_task_hyperparameters(self, blocks: list[str] | None = None) -> None:
        """Record the constructor arguments a checkpoint needs to rebuild this task.

        Under the CLI the arguments are the config (class paths + init args), which is exactly
        what should be stored. In a notebook they are live modules, callables and dataclasses:
        only plain values are kept, since pickling the rest would make the checkpoint
        unloadable with `weights_only=True`. (`blocks` is accepted for readability; every
        non-plain argument is left out either way.)
        """
        frame = inspect.currentframe().f_back
        if _given_hyperparameters.get() is not None:
            self.save_hyperparameters(frame=frame)
            return
        _, init_args = _get_init_args(frame)
        ignore = [name for name, value in init_args.items() if not _is_plain(value)]
        self.save_hyperparameters(ignore=ignore, frame=frame)

    def setup(self, stage: str) -> None:
        # Resuming restores every weight from the resumed checkpoint; stage init is for fresh fits.
        if stage == "fit" and self.init_from and self.init_from.checkpoint and not self.trainer.ckpt_path:
            self.load_stage_init(self.init_from)

    def load_stage_init(self, init: StageInit) -> None:
        for attribute, prefix in init.blocks.items():
            try:  # a dotted name reaches a block inside a block, e.g. "perception.joint"
                block = self.get_submodule(attribute)
            except AttributeError:
                raise ValueError(f"init_from names block {attribute!r}, which this task does not have") from None
            load_block_weights(block, init.checkpoint, prefix)
            log.info("initialised %s from %s [%s]", attribute, init.checkpoint, prefix)

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters, with their own learning rate for blocks named in `block_lr`
        (R2Gen trains its visual extractor at 5e-5 and the rest at 1e-4)."""
        groups = {name: {"params": [], "lr": lr} for name, lr in self.block_lr.items()}
        rest: list[torch.nn.Parameter] = []
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                block = name.split(".")[0]
                (groups[block]["params"] if block in groups else rest).append(parameter)
        return [{"params": rest}, *(g for g in groups.values() if g["params"])]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": self.scheduler_interval}}

    def on_fit_start(self) -> None:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        share = 100 * trainable / max(total, 1)
        self.print(f"parameters: {trainable:,} trainable of {total:,} ({share:.2f}%)")
