"""A retriever's index over the training split: built once with the weights in use, saved next to
the checkpoint, and reloaded while its fingerprint (which weights computed the keys) still matches.

Used by every owner of a retriever (the `RetrievedReports` guide, `ConceptAlignment`'s
retrieval-only baseline): the owner says how a batch becomes a query embedding and which modules'
weights that depends on.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from xrg.blocks.retrieval.base import Retriever
from xrg.data.dataset import collate_studies
from xrg.progress import track

log = logging.getLogger(__name__)
INDEX_FOLDER = "retrieval_index"
QueryFn = Callable[[dict[str, Any]], torch.Tensor]


def fingerprint(*modules: torch.nn.Module) -> str:
    """Which weights computed an index's keys: a hash of their state dicts."""
    digest = hashlib.sha1()
    for module in modules:
        for key, value in module.state_dict().items():
            if isinstance(value, torch.Tensor):
                digest.update(key.encode())
                digest.update(value.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def index_location(trainer, index_dir: str | None) -> Path | None:
    """`index_dir`, else next to the checkpoint being used or written, else the log dir."""
    if index_dir:
        return Path(index_dir)
    if trainer is None:
        return None
    if trainer.ckpt_path:
        return Path(trainer.ckpt_path).parent / INDEX_FOLDER
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath) / INDEX_FOLDER
    return Path(trainer.log_dir) / INDEX_FOLDER if trainer.log_dir else None


def ensure_index(retriever: Retriever, trainer, owner: torch.nn.Module, query_fn: QueryFn,
                 weights: list[torch.nn.Module], index_dir: str | None = None) -> None:
    """Load the saved index if it was built with these weights, else build it and save it.

    `owner` is the LightningModule (device, train/eval mode); `query_fn(batch)` the query embedding
    of a batch; `weights` the modules whose weights compute image-space keys."""
    metadata = {"weights": fingerprint(*weights)} if retriever.keys_from_images else {}
    if retriever.index is not None and all(retriever.index.metadata.get(k) == v for k, v in metadata.items()):
        return
    location = index_location(trainer, index_dir)
    # Under DDP rank 0 builds and saves the index while the other ranks wait, then they load it;
    # a rank that cannot see rank 0's file (no shared filesystem) builds its own.
    shared = location is not None and trainer is not None and trainer.world_size > 1
    if shared and not trainer.is_global_zero:
        trainer.strategy.barrier("xrg-retrieval-index")
    if not _load_saved(retriever, location, metadata):
        build_index(retriever, trainer.datamodule, owner, query_fn, metadata)
        if location is not None and trainer.is_global_zero:
            retriever.save_index(location)
            log.info("saved report index of %d reports to %s", len(retriever.index), location)
    if shared and trainer.is_global_zero:
        trainer.strategy.barrier("xrg-retrieval-index")


def _load_saved(retriever: Retriever, location: Path | None, metadata: dict[str, Any]) -> bool:
    if location is None or not (location / "index.json").is_file():
        return False
    try:
        retriever.load_index(location, metadata)
    except ValueError as mismatch:
        log.info("rebuilding the report index: %s", mismatch)
        return False
    log.info("loaded report index from %s", location)
    return True


@torch.no_grad()
def build_index(retriever: Retriever, datamodule, owner: torch.nn.Module, query_fn: QueryFn,
                metadata: dict[str, Any]) -> None:
    datamodule.setup("fit")
    train = datamodule.datasets["train"]
    keys, ids = None, [study.id for study in train.studies]
    if retriever.keys_from_images:
        # Keys from deterministic (evaluation) transforms: a random crop would blur the index.
        train = copy.copy(train)
        train.transform = datamodule.datasets["test"].transform
        loader = DataLoader(train, batch_size=datamodule.hparams.eval_batch_size or datamodule.hparams.batch_size,
                            collate_fn=collate_studies)
        was_training = owner.training
        owner.eval()
        chunks, ids = [], []
        for batch in track(loader, "embedding training studies for the retrieval index", trainer=getattr(owner, "_trainer", None)):
            if not batch["ids"]:  # every study of the batch failed to decode (on_bad_study: skip)
                continue
            batch = {k: v.to(owner.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            chunks.append(query_fn(batch).float().cpu())
            ids += batch["ids"]  # a study that failed to decode has no key: it stays out of the index
        owner.train(was_training)
        keys = torch.cat(chunks)
    report_of = dict(zip((study.id for study in train.studies), train.reports))
    retriever.build(ids, [report_of[study_id] for study_id in ids], keys, metadata)
