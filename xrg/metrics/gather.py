"""Evaluation rows from every rank, each study once.

Under DDP, Lightning's `DistributedSampler` pads an uneven split with repeats of its first
studies, so a plain `all_gather` counts those studies twice: AUC, tuned thresholds and retrieval
recall would then differ from a one-process run (the text metrics drop repeats by study id, see
`xrg.metrics.nlg.metric`). Rows travel here with a key per study id and only each study's first
row is kept. The key is a hash that every process computes alike (Python's `hash` is salted per
process), 63 bits so that two of a split's studies sharing one is not a practical concern.
"""

from __future__ import annotations

import hashlib

import lightning as L
import torch


def study_keys(ids: list[str], device: torch.device | str | None = None) -> torch.Tensor:
    """`[N]` int64 keys of these study ids, equal in every process."""
    digests = (hashlib.blake2b(str(study_id).encode("utf-8"), digest_size=8).digest() for study_id in ids)
    return torch.tensor([int.from_bytes(d, "little") >> 1 for d in digests], dtype=torch.long, device=device)


def first_rows(keys: torch.Tensor) -> torch.Tensor:
    """Indices of each key's first row, in row order."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    rows = torch.arange(len(keys), device=keys.device)
    first = torch.full((len(unique),), len(keys), dtype=torch.long, device=keys.device)
    return first.scatter_reduce(0, inverse, rows, reduce="amin").sort().values


def gather_studies(task: L.LightningModule, keys: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's rows of `tensors` (each `[N, ...]`, row i the study of `keys[i]`), each study
    once, in rank order. Alike on every rank; a no-op gather in one process."""
    gathered_keys = task.all_gather(keys).reshape(-1)
    gathered = [task.all_gather(t).reshape(-1, *t.shape[1:]) for t in tensors]
    keep = first_rows(gathered_keys)
    return tuple(t[keep.to(t.device)] for t in gathered)
