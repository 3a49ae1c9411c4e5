"""A frozen image encoder's features, computed once per fit (`ReportGeneration(cache_frozen_features=true)`).

A frozen encoder (`frozen: [image_encoder]`, eval mode for good) maps a study's views to the same
features every epoch when its training images do not vary between epochs (no random crop, flip or
augmentation). Re-reading the images and re-running the encoder is then wasted, and over a small
decoder it is most of a CPU step (two thirds at 128 px for the findings-first writer, docs/quality.md
section 19). So when the fit starts, the training and validation studies are encoded once, their
features are kept in memory (on the CPU), and those splits' loaders stop reading their images; the
task reads the kept features instead (`ReportGeneration.see_batch`). Memory: studies x views x tokens
x width x 4 bytes (7,200 studies of 2 views of 16 tokens x 96: 88 MB), in every process: under DDP
each encodes its share of the studies and the shares are then exchanged. Test and predict read images.
"""

from __future__ import annotations

import logging

import torch

from xrg.blocks.base import Features
from xrg.blocks.encoders.base import view_token_mask
from xrg.data.dataset import pad_views
from xrg.data.errors import ConfigError
from xrg.progress import track

log = logging.getLogger(__name__)
CACHED_SPLITS = ("train", "val")


class FeatureCache:
    """Study id -> its encoder features: its real views' tokens `[v, n, D]`, its pooled vector `[D]`."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def fill(self, encoder, loader, device: torch.device) -> None:
        for batch in loader:
            view_mask = batch["view_mask"].to(device)
            features = encoder(batch["images"].to(device), view_mask)
            per_view = features.tokens.unflatten(1, (features.views, -1))  # [B, V, n, D]
            for i, study_id in enumerate(batch["ids"]):
                real = int(view_mask[i].sum())  # a study's real views come first
                self.rows[study_id] = (per_view[i, :real].cpu().clone(), features.pooled[i].cpu().clone())

    def features(self, ids: list[str], device: torch.device) -> Features:
        """What the encoder gives for these studies' views batched together (padded views masked),
        laid out as `ImageEncoder.forward` lays them."""
        missing = [i for i in ids if i not in self.rows]
        if missing:
            raise KeyError(f"cache_frozen_features holds no features for study {missing[0]!r}")
        stacks = [self.rows[i][0] for i in ids]
        tokens, view_mask = pad_views(stacks, stacks[0].shape[1:])  # [B, V, n, D], [B, V]
        pooled = torch.stack([self.rows[i][1] for i in ids])
        mask = view_token_mask(view_mask, tokens.shape[2])
        return Features(tokens.flatten(1, 2).to(device), pooled.to(device), mask.to(device), tokens.shape[1])

    def gather(self) -> None:
        """Under DDP each process encoded its share of the studies; afterwards each holds them all
        (the sampler deals any study to any process in a later epoch)."""
        shares: list[dict] = [{} for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather_object(shares, self.rows)
        self.rows = {study: row for share in shares for study, row in share.items()}

    def megabytes(self) -> float:
        return sum(t.numel() * t.element_size() + p.numel() * p.element_size() for t, p in self.rows.values()) / 2**20


def keep_frozen_features(task) -> FeatureCache:
    """Encode the fit's training and validation studies once; their loaders then read no images.
    Refuses, in one line, a fit where a kept feature would differ from the one a step computes."""
    encoder = task.image_encoder
    if not encoder.is_frozen:
        raise ConfigError("cache_frozen_features: the image encoder trains in this fit; freeze it "
                          "(`frozen: [image_encoder]`) or drop the option")
    datamodule = getattr(task.trainer, "datamodule", None)
    if not hasattr(datamodule, "random_training_transforms"):
        raise ConfigError("cache_frozen_features needs xrg's ReportDataModule, whose loaders can leave images unread")
    varying = datamodule.random_training_transforms()
    if varying:
        raise ConfigError(f"cache_frozen_features: the training images vary between epochs ({', '.join(varying)}), "
                          "so a kept feature would be one draw of them; drop those data options or the cache")
    if datamodule.hparams.prior_views:
        raise ConfigError("cache_frozen_features: prior studies' views (prior_views > 0) are encoded every step; "
                          "drop one of the two")
    cache, shard = FeatureCache(), _process_share(task.trainer)
    with torch.random.fork_rng(devices=[]):  # the fit draws the same random numbers with or without the cache
        for split in CACHED_SPLITS:
            batches = track(datamodule.in_order(split, shard), f"keeping the frozen image encoder's features of the {split} studies",
                            trainer=task.trainer)
            cache.fill(encoder, batches, task.device)
    if shard[1] > 1:
        cache.gather()
    held = frozenset(cache.rows)
    for split in CACHED_SPLITS:
        datamodule.datasets[split].features_held = held
    log.info("cache_frozen_features: %d studies' image features kept (%.0f MB); their images are not read again",
             len(held), cache.megabytes())
    return cache


def _process_share(trainer) -> tuple[int, int]:
    """(this process, processes): under DDP each encodes every n-th study, not the whole split again."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        return trainer.global_rank, trainer.world_size
    return 0, 1


def release_frozen_features(task) -> None:
    """The splits read their images again (a later validate or fit of another model needs them)."""
    datamodule = getattr(task.trainer, "datamodule", None)
    for dataset in getattr(datamodule, "datasets", {}).values():
        dataset.features_held = frozenset()
