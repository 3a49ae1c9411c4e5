"""A findings head over any subset of the observations, in any order, trains on its own columns."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.encoders.base import ImageEncoder
from xrg.blocks.findings import FindingsClassifier
from xrg.data.labels import CHEXPERT_LABELS, select_labels
from xrg.tasks.findings import FindingsClassification

NAN = float("nan")


class MeanPixelEncoder(ImageEncoder):
    """Pooled features = per-channel image means: enough for a head to read a planted signal."""

    dim = 3

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = images.mean((-1, -2))
        return pooled.unsqueeze(1), pooled


def _labels(rows: int) -> torch.Tensor:
    labels = torch.full((rows, len(CHEXPERT_LABELS)), NAN)
    labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] = torch.arange(rows) % 2
    labels[:, CHEXPERT_LABELS.index("Pleural Effusion")] = 1 - torch.arange(rows) % 2
    return labels


def test_select_labels_takes_columns_by_name_and_names_what_is_unknown():
    labels = _labels(4)
    picked = select_labels(labels, ["Pleural Effusion", "Cardiomegaly"])
    torch.testing.assert_close(picked[:, 0], 1 - torch.arange(4.0) % 2)
    torch.testing.assert_close(picked[:, 1], torch.arange(4.0) % 2)
    assert select_labels(labels, list(CHEXPERT_LABELS)) is labels
    with pytest.raises(ValueError, match="'Nodule'.*not CheXpert observations"):
        select_labels(labels, ["Nodule"])
    with pytest.raises(ValueError, match="5 columns"):
        select_labels(labels[:, :5], ["Cardiomegaly"])


def test_head_in_its_own_order_learns_its_own_labels():
    torch.manual_seed(0)
    head = FindingsClassifier(label_names=["Pleural Effusion", "Cardiomegaly"])
    task = FindingsClassification(MeanPixelEncoder(), head, fit_pos_weight=False)
    labels = _labels(32)
    # Channel 0 is bright exactly when Cardiomegaly is present, channel 1 when the effusion is.
    images = torch.randn(32, 1, 3, 8, 8) * 0.1
    images[:, 0, 0] += labels[:, CHEXPERT_LABELS.index("Cardiomegaly"), None, None]
    images[:, 0, 1] += labels[:, CHEXPERT_LABELS.index("Pleural Effusion"), None, None]
    batch = {"images": images, "view_mask": torch.ones(32, 1, dtype=torch.bool), "ids": [str(i) for i in range(32)],
             "labels": labels}
    optimizer = torch.optim.Adam(task.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        task.training_step(batch, 0).backward()
        optimizer.step()
    probs = task(images, batch["view_mask"])
    cardiomegaly = labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] == 1
    # Column 1 is the head's Cardiomegaly; by position it would have been trained on Enlarged Cardiomediastinum.
    assert (probs[cardiomegaly, 1] > 0.9).all() and (probs[~cardiomegaly, 1] < 0.1).all()
    assert (probs[~cardiomegaly, 0] > 0.9).all() and (probs[cardiomegaly, 0] < 0.1).all()
