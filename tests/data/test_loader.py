"""`StudyLoader` / `EpochShuffle`: the training stream is a function of (seed, epoch), and a loader
given a checkpoint's `state_dict` hands out exactly the batches the interrupted one had not."""

from __future__ import annotations

import torch

from xrg.data import ReportDataModule


def _loader(root, seed=0):
    dm = ReportDataModule(annotation_path=str(root / "annotation.json"), image_size=24, resize=32,
                          horizontal_flip=True, batch_size=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.seed = seed
    return loader


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [(batch["ids"], batch["images"]) for batch in loader]


def _same(a, b):
    return len(a) == len(b) and all(ids == ids2 and torch.equal(x, x2) for (ids, x), (ids2, x2) in zip(a, b))


def test_order_and_crops_depend_on_seed_and_epoch_only(tiny_dataset):
    loader = _loader(tiny_dataset)
    first = _epoch(loader, 1)
    torch.manual_seed(123)  # the global RNG (the model's dropout) does not reach the data
    assert _same(_epoch(_loader(tiny_dataset), 1), first)
    assert not _same(_epoch(loader, 2), first)
    assert not _same(_epoch(_loader(tiny_dataset, seed=1), 1), first)
    assert sorted(i for ids, _ in first for i in ids) == [f"study_{k:03d}" for k in range(8)]


def test_a_loader_resumes_mid_epoch_at_the_next_batch(tiny_dataset):
    whole = _epoch(_loader(tiny_dataset), 1)
    interrupted = _loader(tiny_dataset)
    interrupted.sampler.set_epoch(1)
    stream = iter(interrupted)
    next(stream)  # one batch trained on, then the checkpoint
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batches": 1, "seed": 0}
    resumed = _loader(tiny_dataset, seed=7)
    resumed.load_state_dict(state)  # Lightning does this before iterating, then sets the epoch
    assert _same(_epoch(resumed, 1), whole[1:])
    assert _same(_epoch(resumed, 2), _epoch(_loader(tiny_dataset), 2))  # the next epoch is whole again
