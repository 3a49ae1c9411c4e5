"""`xrg.load(checkpoint)`: a trained task back from one checkpoint file, for notebooks:
`xrg.load("last.ckpt").report(["frontal.png", "lateral.png"], explain=True)` (see `xrg.inference`).

The checkpoint holds the task's config (class paths + init args, as the CLI saved them), the
weights and, inside the weights, the tokenizer; nothing else is read. Loading never unpickles
code: `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import instantiate_module

from xrg.checkpoints import EXPECTED, read_checkpoint
from xrg.data.errors import CheckpointError
from xrg.data.studies import ImagePreparation


def task_config(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The task's hyperparameters with `_class_path`, as `xrg fit` stored them in the checkpoint."""
    hparams = checkpoint.get("hyper_parameters")
    hparams = dict(hparams) if isinstance(hparams, dict) else {}
    hparams.pop("_instantiator", None)
    if not isinstance(hparams.get("_class_path"), str):
        raise CheckpointError(f"{path}: no xrg model config inside (hyper_parameters['_class_path']); {EXPECTED}, "
                              "or build the task yourself and call load_state_dict")
    return hparams


def load(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> L.LightningModule:
    checkpoint = read_checkpoint(checkpoint_path, map_location)
    model = instantiate_module(L.LightningModule, task_config(checkpoint, checkpoint_path))
    try:
        model.load_state_dict(checkpoint.get("state_dict", {}))
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint_path}: {error}") from None
    # The data module's evaluation transform and pixel window, so `model.report(images)` prepares images as in training.
    model.preparation = ImagePreparation.from_checkpoint(checkpoint, str(checkpoint_path))
    return model.eval()
