"""`xrg.load(checkpoint)`: a trained task back from one checkpoint file, for notebooks:
`xrg.load("last.ckpt").report(["frontal.png", "lateral.png"], explain=True)` (see `xrg.inference`).

The checkpoint holds the task's config (class paths + init args, as the CLI saved them), the
weights and, inside the weights, the tokenizer; nothing else is read. Loading never unpickles
code: `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import instantiate_module

from xrg.data.studies import ImagePreparation


def load(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> L.LightningModule:
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint_path} does not exist")
    checkpoint = torch.load(checkpoint_path, map_location=map_location, weights_only=True)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    if "_class_path" not in hparams:
        raise ValueError(
            f"{checkpoint_path}: no model config inside (was it trained with `xrg fit`?); "
            "build the task yourself and call load_state_dict"
        )
    model = instantiate_module(L.LightningModule, hparams)
    model.load_state_dict(checkpoint["state_dict"])
    # The data module's evaluation transform and pixel window, so `model.report(images)` prepares images as in training.
    model.preparation = ImagePreparation.from_checkpoint(checkpoint, str(checkpoint_path))
    return model.eval()
