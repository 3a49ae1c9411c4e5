"""FindingsHead base: pos_weight = log(N/count), masked BCE, prompt text."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xrg.blocks.encoders.base import Features
from xrg.blocks.findings import FindingsHead

NAN = float("nan")


class LinearHead(FindingsHead):
    def __init__(self, names):
        super().__init__(names)
        self.linear = torch.nn.Linear(4, len(names))

    def forward(self, features: Features) -> torch.Tensor:
        return self.linear(features.pooled)


def test_pos_weight_and_masked_bce_match_hand_computation():
    head = LinearHead(["A", "B", "No Finding"])
    labels = torch.tensor([[1, 0, 0], [0, NAN, 1], [0, 1, -1], [1, 0, 0.0]])
    weight = head.fit_pos_weight(labels)
    # A: 2 positives of 4 known; B: 1 of 3 known; No Finding: 1 of 3 known (-1 is not known).
    torch.testing.assert_close(weight, torch.tensor([math.log(4 / 2), math.log(3 / 1), math.log(3 / 1)]))
    logits = torch.randn(4, 3)
    known = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    expected = torch.stack([
        F.binary_cross_entropy_with_logits(logits[i, j], labels[i, j], pos_weight=weight[j]) for i, j in known
    ]).mean()
    torch.testing.assert_close(head.loss(logits, labels), expected)


def test_text_drops_no_finding_when_something_is_found():
    head = LinearHead(["Cardiomegaly", "Edema", "No Finding"])
    probs = torch.tensor([[0.9, 0.6, 0.7], [0.1, 0.2, 0.8], [0.1, 0.2, 0.3]])
    assert head.predicted_names(probs) == [["Cardiomegaly", "Edema"], ["No Finding"], []]
    assert head.to_text(probs) == ["cardiomegaly, edema", "no finding", "none"]
    assert head.to_text(probs, threshold=0.95) == ["none", "none", "none"]
