"""Reading weights safely: safetensors, or torch checkpoints with `weights_only=True`.

Every checkpoint xrg reads goes through `read_checkpoint`, so a missing, truncated or foreign file
is one `CheckpointError` naming the file and what was expected, wherever it was given. Wherever a
checkpoint is given, a fit's run folder stands for its newest `last.ckpt` (`resolve_checkpoint`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xrg.data.errors import CheckpointError

EXPECTED = "expected a .ckpt written by `xrg fit` (or a torch state dict / .safetensors file)"
log = logging.getLogger(__name__)


def resolve_checkpoint(path: str | Path) -> Path:
    """`path` itself, or for a folder (a fit's `default_root_dir`, one of its `version_N`, its
    `checkpoints/`) the newest `last*.ckpt` under it, the fit's latest state (written after every
    validation and at the end of training), else its newest `.ckpt` (Lightning's default callback
    keeps only the latest epoch's): the weights a chain's next stage starts from."""
    path = Path(path)
    if not path.is_dir():
        return path
    written = list(path.rglob("last*.ckpt")) or list(path.rglob("*.ckpt"))
    if not written:
        raise CheckpointError(f"checkpoint folder {path} holds no .ckpt under it; give a checkpoint file "
                              "or the folder of a fit that has saved one")
    newest = max(written, key=lambda p: p.stat().st_mtime)
    log.info("checkpoint folder %s: reading %s", path, newest)
    return newest


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at `path` (a .safetensors file reads as {"state_dict": tensors}; a fit's
    folder reads its newest `last.ckpt`)."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return {"state_dict": load_file(str(path), device=str(map_location))}
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001  torch raises a different type for each kind of bad file
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({_why(error)}); {EXPECTED}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict; {EXPECTED}")
    return checkpoint


def _why(error: Exception) -> str:
    text = str(error)
    if "Weights only load failed" in text:  # a pickle of arbitrary Python objects, refused for safety
        return "it holds Python objects that weights-only loading refuses to unpickle"
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "truncated or corrupt"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first}"[:200]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a Lightning checkpoint, a plain torch state dict or a .safetensors file."""
    return state_dict_of(read_checkpoint(path), path)


def state_dict_of(checkpoint: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint dict `read_checkpoint(path)` returned."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state).__name__}, not a mapping of weights; {EXPECTED}")
    return state


def describe_mismatch(model: nn.Module, state: dict[str, Any]) -> str:
    """Why `state` does not load into `model`, in a few words: counts and a first example of
    missing keys, unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [key for key in own if key in state and hasattr(own[key], "shape") and hasattr(state[key], "shape")
                and own[key].shape != state[key].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
    if reshaped:
        key = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape (e.g. {key!r}: checkpoint {list(state[key].shape)}, "
                     f"model {list(own[key].shape)})")
    return "; ".join(parts) or "the weights do not load"


def load_block_weights(block: nn.Module, path: str | Path, prefix: str, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load the entries under `prefix.` of a checkpoint into `block`; every key must match. `state`:
    the checkpoint's weights, when the caller has read them already."""
    state = read_state_dict(path) if state is None else state
    prefix = prefix.rstrip(".") + "."
    selected = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not selected:
        prefixes = sorted({key.split(".")[0] for key in state})
        raise CheckpointError(f"{path}: no weights under {prefix!r}; top-level prefixes are {prefixes}")
    try:
        block.load_state_dict(selected, strict=True)
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path} [{prefix}] does not fit {type(block).__name__}: "
                              f"{describe_mismatch(block, selected) if isinstance(error, RuntimeError) else error}") from None
