"""Reading weights safely: safetensors, or torch checkpoints with `weights_only=True`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a Lightning checkpoint, a plain torch state dict or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint.get("state_dict", checkpoint)


def load_block_weights(block: nn.Module, path: str | Path, prefix: str) -> None:
    """Load the entries under `prefix.` of a checkpoint into `block`; every key must match."""
    state = read_state_dict(path)
    prefix = prefix.rstrip(".") + "."
    selected = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not selected:
        prefixes = sorted({key.split(".")[0] for key in state})
        raise KeyError(f"{path}: no weights under {prefix!r}; top-level prefixes are {prefixes}")
    block.load_state_dict(selected, strict=True)
