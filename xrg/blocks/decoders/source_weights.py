"""Checkpoints that leave out a frozen LLM's weights and re-read them from where they came from.

A LoRA-tuned or frozen 7B LLM would otherwise write its 13.5 GB of unchanged base weights into
every checkpoint. `CausalLMDecoder` records a checksum of each frozen base weight right after
loading it from `model`; when a state_dict is written, weights whose checksum is unchanged are
left out and listed (name, checksum, source) in the decoder's extra state. Loading fills them in
from the freshly built decoder, after checking every checksum, so a checkpoint can never be
completed with other weights than the ones it was trained on. Weights that changed (a base trained
in an earlier stage) are always written. Embedding matrices are always written: a vocabulary
resize initialises new rows at random, which re-reading could not reproduce.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KEY = "omitted_base"


def canonical(name: str) -> str:
    """A base weight's name with peft's wrapping removed, so plain and LoRA models agree."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


def checksum(tensor: torch.Tensor) -> list[float]:
    """Sum and position-weighted sum in float64: any training step or other file changes them."""
    flat = tensor.detach().reshape(-1).double()
    weights = torch.arange(flat.numel(), device=flat.device, dtype=torch.float64).remainder_(251).add_(1)
    return [flat.sum().item(), (flat * weights).sum().item()]


def _same(a: list[float], b: list[float]) -> bool:
    # Equal weights summed on another device may differ in the last bits; training moves far more.
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b))


def frozen_base_checksums(llm: nn.Module) -> dict[str, list[float]]:
    """Checksums of the frozen, non-embedding parameters, by canonical name."""
    embeddings = {id(m.weight) for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None}
    return {canonical(name): checksum(p) for name, p in llm.named_parameters()
            if not p.requires_grad and id(p) not in embeddings}


def drop_source_weights(decoder: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook of `CausalLMDecoder`: leave out base weights unchanged since loading."""
    recorded = getattr(decoder, "_source_checksums", None)
    if not recorded or decoder.llm is None:
        return
    current = frozen_base_checksums(decoder.llm)
    if any(name not in current or not _same(current[name], value) for name, value in recorded.items()):
        return  # the base moved since it was loaded: write it whole
    llm_prefix = prefix + "llm."
    keys = {}
    for key in [k for k in state_dict if k.startswith(llm_prefix)]:
        name = canonical(key[len(llm_prefix):])
        if name in recorded:
            keys[key[len(llm_prefix):]] = name
            del state_dict[key]
    extra = state_dict.get(prefix + "_extra_state")
    if keys and isinstance(extra, dict):
        extra[KEY] = {"source": decoder.model_name, "keys": keys, "checksums": {n: recorded[n] for n in keys.values()}}


def fill_source_weights(decoder: nn.Module, state_dict: dict, prefix: str, omitted: dict) -> None:
    """Put the left-out weights back into `state_dict` from the decoder's own (re-read) LLM."""
    if decoder.llm is None:
        raise ValueError(f"the checkpoint leaves out the base weights of {omitted['source']!r}, "
                         "but this decoder has no LLM to take them from")
    current = {canonical(name): tensor for name, tensor in decoder.llm.state_dict().items()}
    for key, name in omitted["keys"].items():
        if name not in current or not _same(checksum(current[name]), omitted["checksums"][name]):
            raise ValueError(
                f"the checkpoint leaves out the frozen base weight {name!r} of {omitted['source']!r}, to be re-read "
                f"from it, but this decoder's model={decoder.model_name!r} has other values there: build the decoder "
                "from the same model files (or save checkpoints with save_frozen_base: true)"
            )
        state_dict[prefix + "llm." + key] = current[name]
