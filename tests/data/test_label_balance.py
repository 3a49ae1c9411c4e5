"""Label-balanced training epochs (`ReportDataModule(label_balance=...)`): rare findings are drawn as
often as common ones at power 1, the stream is still a function of (seed, epoch) and resumes mid-epoch,
and a dataset without labels is refused in one line."""

from __future__ import annotations

import pytest
import torch

from xrg.data import ReportDataModule
from xrg.data.errors import DataError
from xrg.data.loader import LabelBalancedShuffle, balancing_weights


def one_hot_studies(counts: list[int]) -> torch.Tensor:
    """Studies with one positive observation each: `counts[k]` studies positive for observation k."""
    labels = torch.zeros(sum(counts), len(counts))
    labels[torch.arange(sum(counts)), torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))] = 1
    return labels


def shares(sampler: LabelBalancedShuffle, labels: torch.Tensor, epochs: int) -> torch.Tensor:
    drawn = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        drawn += [index for index, _ in sampler]
    return labels[drawn].mean(0)


def test_power_one_draws_every_finding_equally_power_zero_as_the_data_has_them():
    labels = one_hot_studies([160, 30, 10])
    uniform = shares(LabelBalancedShuffle(range(200), labels, power=0.0, seed=0), labels, epochs=20)
    torch.testing.assert_close(uniform, torch.tensor([0.80, 0.15, 0.05]), atol=0.02, rtol=0)
    balanced = shares(LabelBalancedShuffle(range(200), labels, power=1.0, seed=0), labels, epochs=20)
    torch.testing.assert_close(balanced, torch.full((3,), 1 / 3), atol=0.03, rtol=0)


def test_a_study_weighs_as_its_rarest_finding_and_uncertain_or_blank_do_not_count():
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [float("nan"), 0.0]])
    # observation 0 positive in 3 studies, observation 1 in 1, nothing positive in 1 (the last study)
    weights = balancing_weights(labels, power=1.0)
    torch.testing.assert_close(weights, torch.tensor([4 / 3, 4.0, 4 / 3, 4.0], dtype=torch.float64))


def _loader(root, balance=1.0):
    dm = ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                          image_size=24, resize=32, batch_size=3, label_balance=balance)
    dm.setup("fit")
    return dm.train_dataloader()


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [batch["ids"] for batch in loader]


def test_balanced_epochs_depend_on_seed_and_epoch_and_resume_mid_epoch(tiny_dataset):
    loader = _loader(tiny_dataset)
    assert isinstance(loader.sampler, LabelBalancedShuffle)
    whole = _epoch(loader, 3)
    torch.manual_seed(5)  # the global RNG does not reach the draws
    assert _epoch(_loader(tiny_dataset), 3) == whole
    assert _epoch(loader, 4) != whole
    interrupted = _loader(tiny_dataset)
    interrupted.sampler.set_epoch(3)
    next(iter(interrupted))
    resumed = _loader(tiny_dataset)
    resumed.load_state_dict(interrupted.state_dict())
    assert _epoch(resumed, 3) == whole[1:]


def test_balancing_without_labels_is_one_line_naming_the_annotation(tiny_dataset):
    dm = ReportDataModule(annotation_path=str(tiny_dataset / "annotation.json"), image_size=24, resize=32,
                          batch_size=3, label_balance=0.5)
    dm.setup("fit")
    with pytest.raises(DataError, match="annotation.json: no labels file"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="label_balance"):
        ReportDataModule(annotation_path=str(tiny_dataset / "annotation.json"), label_balance=-1.0)
