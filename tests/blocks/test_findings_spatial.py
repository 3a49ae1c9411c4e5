"""`FindingsClassifier(spatial=λ)`: CSRA's class-specific residual attention over the image tokens."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import roc_auc_score

from xrg.blocks.encoders.base import Features
from xrg.blocks.findings import FindingsClassifier


def features(batch: int = 4, tokens: int = 6, dim: int = 8, seed: int = 0) -> Features:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, dim, generator=generator)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, 3:] = False  # a study whose second view is missing
    pooled = torch.stack([x[i][mask[i]].mean(0) for i in range(batch)])
    return Features(x, pooled, mask)


@pytest.mark.parametrize("temperature", [None, 0.5, 3.0])
def test_logits_equal_csra_written_out(temperature):
    f = features()
    head = FindingsClassifier(["a", "b", "c"], spatial=0.3, temperature=temperature, input_dim=8).eval()
    linear = head.net[-1]
    expected = []
    for i in range(4):
        scores = f.tokens[i][f.mask[i]] @ linear.weight.T + linear.bias  # real tokens only
        attended = scores.amax(0) if temperature is None else ((scores * temperature).softmax(0) * scores).sum(0)
        expected.append(f.pooled[i] @ linear.weight.T + linear.bias + 0.3 * attended)
    assert torch.allclose(head(f), torch.stack(expected), atol=1e-6)
    plain = FindingsClassifier(["a", "b", "c"], input_dim=8).eval()
    plain.load_state_dict(head.state_dict())
    assert not torch.allclose(plain(f), head(f))  # spatial=0: the pooled logit alone
    with pytest.raises(ValueError, match="spatial"):
        FindingsClassifier(spatial=-1.0)


def test_a_finding_in_one_token_of_many_is_learnt_with_spatial_attention_not_without():
    # 18 tokens (two views of a 3x3 grid); a positive study has one token shifted along a fixed
    # direction: averaged over 18 tokens it fades into the noise, its own best token keeps it.
    generator = torch.Generator().manual_seed(0)

    def studies(n: int) -> tuple[Features, torch.Tensor]:
        x = torch.randn(n, 18, 16, generator=generator)
        labels = (torch.rand(n, generator=generator) < 0.3).float()
        where = torch.randint(0, 18, (n,), generator=generator)
        x[torch.arange(n), where, 0] += 4.0 * labels
        return Features(x, x.mean(1), None), labels[:, None]

    train, test = studies(512), studies(512)
    aucs = {}
    for spatial in (0.0, 1.0):
        torch.manual_seed(0)
        head = FindingsClassifier(["lesion"], spatial=spatial, input_dim=16)
        optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(150):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(train[0]), train[1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            aucs[spatial] = roc_auc_score(test[1].numpy(), head(test[0]).numpy())
    assert aucs[1.0] > 0.95 and aucs[1.0] > aucs[0.0] + 0.1, aucs
