"""FindingsHead base: pos_weight = log(N/count) or negatives/positives, masked BCE, prompt text."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from xrg.blocks.encoders.base import Features
from xrg.blocks.findings import FindingsHead
from xrg.blocks.findings.base import pos_weight_rule

NAN = float("nan")


class LinearHead(FindingsHead):
    def __init__(self, names, blank="negative", focal_gamma=0.0):
        super().__init__(names, blank=blank, focal_gamma=focal_gamma)
        self.linear = torch.nn.Linear(4, len(names))

    def forward(self, features: Features) -> torch.Tensor:
        return self.linear(features.pooled)


def _expected_bce(logits, labels, weight, counted):
    return torch.stack([
        F.binary_cross_entropy_with_logits(logits[i, j], (labels[i, j] == 1).float(), pos_weight=weight[j]) for i, j in counted
    ]).mean()


def test_pos_weight_and_masked_bce_match_hand_computation():
    labels = torch.tensor([[1, 0, 0], [0, NAN, 1], [0, 1, -1], [1, 0, NAN]])
    logits = torch.randn(4, 3)
    # Default: blank is negative, uncertain never counts.
    head = LinearHead(["A", "B", "No Finding"])
    weight = head.fit_pos_weight(labels)
    # A: 2 positives of 4; B: 1 of 4 (the blank counts); No Finding: 1 of 3 (the -1 does not).
    torch.testing.assert_close(weight, torch.tensor([math.log(4 / 2), math.log(4 / 1), math.log(3 / 1)]))
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    torch.testing.assert_close(head.loss(logits, labels), _expected_bce(logits, labels, weight, counted))
    # blank: ignore skips blanks too.
    head = LinearHead(["A", "B", "No Finding"], blank="ignore")
    weight = head.fit_pos_weight(labels)
    torch.testing.assert_close(weight, torch.tensor([math.log(4 / 2), math.log(3 / 1), math.log(2 / 1)]))
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 0), (3, 1)]
    torch.testing.assert_close(head.loss(logits, labels), _expected_bce(logits, labels, weight, counted))


def test_focal_loss_scales_each_counted_entry_by_its_error_to_the_gamma():
    labels = torch.tensor([[1, 0, 0], [0, NAN, 1], [0, 1, -1], [1, 0, NAN]])
    logits = torch.randn(4, 3) * 3
    counted = [(i, j) for i in range(4) for j in range(3) if labels[i, j] != -1]  # blank: negative
    plain, focal = LinearHead(["A", "B", "C"]), LinearHead(["A", "B", "C"], focal_gamma=2.0)
    weight = plain.fit_pos_weight(labels)
    focal.fit_pos_weight(labels)
    expected = torch.stack([
        F.binary_cross_entropy_with_logits(logits[i, j], (labels[i, j] == 1).float(), pos_weight=weight[j])
        * (1 - (logits[i, j].sigmoid() if labels[i, j] == 1 else 1 - logits[i, j].sigmoid())) ** 2
        for i, j in counted]).mean()
    torch.testing.assert_close(focal.loss(logits, labels), expected)
    assert focal.loss(logits, labels) < plain.loss(logits, labels)  # every factor is below 1
    torch.testing.assert_close(LinearHead(["A", "B", "C"], focal_gamma=0).loss(logits, labels), _expected_bce(
        logits, labels, torch.ones(3), counted))


@pytest.mark.parametrize("gamma", [-1.0, True, "2"])
def test_focal_gamma_is_a_number_at_least_zero(gamma):
    with pytest.raises(ValueError, match="focal_gamma"):
        LinearHead(["A"], focal_gamma=gamma)


def test_ratio_pos_weight_is_negatives_over_positives_capped():
    labels = torch.tensor([[1, 0, 0], [0, NAN, 1], [0, 1, -1], [1, 0, NAN]])
    head = LinearHead(["A", "B", "No Finding"])
    # A: 2 of 4 positive; B: 1 of 4 (the blank a negative); No Finding: 1 of 3 counted (the -1 is not).
    torch.testing.assert_close(head.fit_pos_weight(labels, "ratio"), torch.tensor([2 / 2, 3 / 1, 2 / 1]))
    # One positive in 1,000 studies would weigh 999: capped at 100; a label never positive keeps 1.
    rare = torch.zeros(1000, 2)
    rare[0, 0] = 1
    torch.testing.assert_close(LinearHead(["A", "B"]).fit_pos_weight(rare, "ratio"), torch.tensor([100.0, 1.0]))
    with pytest.raises(ValueError, match="positive-weight rule"):
        head.fit_pos_weight(labels, "sqrt")


def test_fit_pos_weight_settings_name_a_rule():
    assert [pos_weight_rule(v) for v in (True, False, "log", "ratio")] == ["log", None, "log", "ratio"]
    with pytest.raises(ValueError, match="fit_pos_weight is true, false or one of"):
        pos_weight_rule("inverse")


def test_a_label_never_stated_negative_still_learns_its_negatives():
    """Support Devices is 1 or blank in real and synthetic reports: with blanks as negatives the
    head separates them; skipping blanks would leave it calling every study positive."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    labels = torch.where(x[:, :1] > 0, 1.0, NAN)
    probs = {}
    for blank in ("negative", "ignore"):
        head = LinearHead(["Support Devices"], blank=blank)
        optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(100):
            loss = head.loss(head(Features(x.unsqueeze(1), x)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        probs[blank] = head(Features(x.unsqueeze(1), x)).sigmoid()[:, 0]
    assert probs["negative"][labels[:, 0] != 1].max() < 0.5 < probs["negative"][labels[:, 0] == 1].min()
    # Never shown a negative, the other head calls most of the studies without devices positive.
    assert (probs["ignore"][labels[:, 0] != 1] > 0.5).float().mean() > 0.5


def test_text_drops_no_finding_when_something_is_found():
    head = LinearHead(["Cardiomegaly", "Edema", "No Finding"])
    probs = torch.tensor([[0.9, 0.6, 0.7], [0.1, 0.2, 0.8], [0.1, 0.2, 0.3]])
    assert head.predicted_names(probs) == [["Cardiomegaly", "Edema"], ["No Finding"], []]
    assert head.to_text(probs) == ["cardiomegaly, edema", "no finding", "none"]
    assert head.to_text(probs, threshold=0.95) == ["none", "none", "none"]
