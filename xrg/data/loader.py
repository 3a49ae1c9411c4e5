"""The DataLoader every split uses: it counts the studies that could not be decoded, never hands a
task a batch without studies, and resumes a training epoch exactly where a checkpoint left it.

Exact resume needs the data stream to be a function of (seed, epoch) alone. `EpochShuffle` draws
each epoch's permutation, and one augmentation seed per item, from a generator seeded by
(seed, epoch): no draw from the global RNG that the model's dropout also consumes, and the same
crops whatever the number of workers. `StudyLoader` is stateful in Lightning's sense: Lightning
saves its `state_dict()` (epoch, batches handed out) with every checkpoint and calls
`load_state_dict()` before iterating again when it resumes mid-epoch; the sampler then starts at
the first batch not yet trained on, without loading the images of the batches it skips.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler

log = logging.getLogger(__name__)


def _mix(*numbers: int) -> int:
    """One seed from several integers (seed + epoch alone would collide across seeds)."""
    return int(np.random.SeedSequence([n % 2**63 for n in numbers]).generate_state(1, np.uint64)[0])


def default_seed() -> int:
    """The run's seed as `seed_everything` recorded it (Lightning's own DistributedSampler convention)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class EpochShuffle(RandomSampler):
    """A fresh permutation each epoch, drawn from (seed, epoch) only; yields `(index, item_seed)`.

    A RandomSampler by type, so under DDP Lightning swaps in its DistributedSampler (which yields
    plain indices: items then draw augmentations from the worker's RNG, and resume is not exact).
    """

    def __init__(self, data_source, seed: int | None = None) -> None:
        super().__init__(data_source)
        self.seed = default_seed() if seed is None else seed
        self.epoch = 0
        self.start = 0  # position in this epoch's permutation to begin at (set by a resume)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        n = len(self.data_source)
        order = self.order(n, generator)
        item_seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        start, self.start = self.start, 0
        return iter(list(zip(order, item_seeds))[start:])

    def order(self, n: int, generator: torch.Generator) -> list[int]:
        """This epoch's n study indices, drawn from `generator` only."""
        return torch.randperm(n, generator=generator).tolist()

    def __len__(self) -> int:
        return len(self.data_source)


class LongestFirst(Sampler[int]):
    """Dataset indices by decreasing `lengths` (any sortable keys; ties keep the dataset's order),
    so each batch holds studies of similar prompt length and pads little. The longest batch comes
    first: a batch that does not fit in memory fails at once, and a static KV cache is sized by it.

    Under DDP Lightning wraps this sampler and deals its order out to the ranks in turn (rank r gets
    positions r, r + W, ...): every rank's share is still sorted, and the ranks get equal mixes.
    """

    def __init__(self, lengths: list) -> None:
        self.lengths = list(lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(range(len(self.lengths)), key=self.lengths.__getitem__, reverse=True))

    def __len__(self) -> int:
        return len(self.lengths)


class LabelBalancedShuffle(EpochShuffle):
    """Each epoch draws as many studies as the split has, with replacement, a study's chance
    proportional to `(N / n_k) ** power` for its rarest positive observation k (n_k: training studies
    positive for k; a study with no positive counts as one more observation). `power` 1 gives every
    observation about the same share of draws; 0.5 (square-root balancing) meets halfway; 0 is
    uniform. A rare finding is then seen every epoch, not once in ten (RaDialog balances its
    training data by finding). Draws come from (seed, epoch) alone, as EpochShuffle's do, so a
    resumed epoch is the same epoch.
    """

    def __init__(self, data_source, labels: torch.Tensor, power: float = 0.5, seed: int | None = None) -> None:
        super().__init__(data_source, seed)
        if len(labels) != len(data_source):
            raise ValueError(f"label-balanced sampling needs one label row per study: {len(labels)} rows, "
                             f"{len(data_source)} studies")
        self.weights = balancing_weights(labels, power)

    def order(self, n: int, generator: torch.Generator) -> list[int]:
        return torch.multinomial(self.weights, n, replacement=True, generator=generator).tolist()


def balancing_weights(labels: torch.Tensor, power: float) -> torch.Tensor:
    """`[N]` sampling weights of `LabelBalancedShuffle` from `[N, K]` CheXpert codes (1 positive)."""
    positive = labels == 1
    positive = torch.cat([positive, ~positive.any(1, keepdim=True)], 1)  # "nothing positive" as its own column
    counts = positive.sum(0).clamp_min(1).double()
    rarity = (len(labels) / counts) ** power  # [K + 1]
    return torch.where(positive, rarity, torch.zeros_like(rarity)).amax(1)


class StudyLoader(DataLoader):
    """A DataLoader of `collate_studies` batches (see the module docstring).

    `failures` maps each study that could not be decoded (on_bad_study: skip) to why.
    """

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # A generator: nothing below runs until the first batch is asked for, which is after
        # Lightning's `set_epoch` (it calls `iter()` earlier than that when a fit starts).
        return self._batches()

    def _batches(self) -> Iterator[dict[str, Any]]:
        self._ensure_state()
        resume, self._resume = self._resume, None
        sampler, skip = self.sampler, 0
        if resume is not None and resume[0] == getattr(sampler, "epoch", None):  # the epoch a checkpoint left mid-way
            if isinstance(sampler, EpochShuffle) and self.batch_size:
                skip = resume[1]
                sampler.start = skip * self.batch_size
            elif resume[1]:
                log.warning("resuming mid-epoch with %s: the epoch's data order restarts from its beginning",
                            type(sampler).__name__)
        self._epoch, self._handed_out = getattr(sampler, "epoch", 0), skip
        for batch in super().__iter__():
            self._handed_out += 1
            for failed in batch.pop("failed", []):
                self.failures[failed["id"]] = failed["error"]
            if batch.get("ids"):  # a batch whose every study failed is left out, not handed on
                yield batch

    def _ensure_state(self) -> None:
        # Attributes set lazily: Lightning re-creates loaders (predict, DDP) through __init__'s
        # arguments only, so an __init__ of our own would have to mirror DataLoader's.
        if not hasattr(self, "failures"):
            self.failures: dict[str, str] = {}
            self._resume: tuple[int, int] | None = None
            self._epoch, self._handed_out = 0, 0

    # Lightning's `_Stateful` protocol: saved with the fit loop, restored on a mid-epoch resume.
    def state_dict(self) -> dict[str, int]:
        self._ensure_state()
        return {"epoch": self._epoch, "batches": self._handed_out, "seed": getattr(self.sampler, "seed", -1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._ensure_state()
        if isinstance(self.sampler, EpochShuffle) and state.get("seed", -1) >= 0:
            self.sampler.seed = state["seed"]
        self._resume = (state["epoch"], state["batches"])


def skipped_at_setup(loader: object) -> dict[str, str]:
    """Studies of `loader`'s split left out when the dataset was built (missing file, empty report)."""
    skipped = getattr(getattr(loader, "dataset", None), "skipped", None)
    return dict(skipped) if isinstance(skipped, dict) else {}


def left_out(loader: object) -> dict[str, str]:
    """Every study of `loader`'s split that reached no model, with why: left out at setup, or
    failed to decode (counted by `StudyLoader`)."""
    return skipped_at_setup(loader) | getattr(loader, "failures", {})
