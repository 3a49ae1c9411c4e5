"""Clue injector and interaction: K-free, mask-respecting, and reloadable."""

from __future__ import annotations

import torch

from xrg.blocks.clues import DiseaseClueInjector, MultiGranularClueInteraction
from xrg.blocks.encoders.base import Features


def _prompts(k: int, e: int = 8) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(k, 2, e), dim=-1)


def test_one_injector_serves_any_number_of_diseases():
    torch.manual_seed(0)
    injector = DiseaseClueInjector(dim=16).eval()
    injector.bind(8)
    for k in (3, 14):
        clues = injector(torch.rand(2, k), _prompts(k))
        assert clues.shape == (2, k, 16)


def test_clue_follows_the_perceived_probability():
    torch.manual_seed(0)
    injector = DiseaseClueInjector(dim=16).eval()
    injector.bind(8)
    prompts = _prompts(3)
    present, absent = injector(torch.ones(1, 3), prompts), injector(torch.zeros(1, 3), prompts)
    assert not torch.allclose(present, absent, atol=1e-3)
    # a disease's clue depends on its own probability only
    mixed = injector(torch.tensor([[1.0, 0.0, 1.0]]), prompts)
    torch.testing.assert_close(mixed[0, 1], absent[0, 1])
    torch.testing.assert_close(mixed[0, 0], present[0, 0])


def _visual(batch=2, n=6, d=12) -> Features:
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[1, n // 2:] = False  # second study: its second view is padding
    return Features(torch.randn(batch, n, d), torch.randn(batch, d), mask)


def test_interaction_output_layout_and_padding_is_ignored():
    torch.manual_seed(0)
    interaction = MultiGranularClueInteraction(dim=16, heads=2, layers=2).eval()
    interaction.bind(12, 10)
    visual, clues = _visual(), torch.randn(2, 5, 10)
    out = interaction(visual, clues)
    assert out.tokens.shape == (2, 6 + 1 + 5, 16) and out.pooled.shape == (2, 16)
    # [patches; global; clues]: the patches keep their places, the rest counts as appended
    assert out.mask[1].tolist() == [True] * 3 + [False] * 3 + [True] + [True] * 5 and out.appended == 1 + 5
    garbage = visual.tokens.clone()
    garbage[1, 3:] = 1e3  # what padded tokens hold must not reach the real ones
    again = interaction(Features(garbage, visual.pooled, visual.mask), clues)
    keep = out.mask[1]
    torch.testing.assert_close(again.tokens[1][keep], out.tokens[1][keep])


def test_interaction_grounds_clues_in_the_image_and_reloads(tmp_path):
    torch.manual_seed(0)
    interaction = MultiGranularClueInteraction(dim=16, heads=2).eval()
    interaction.bind(12, 10)
    visual, clues = _visual(), torch.randn(2, 3, 10)
    clues.requires_grad_(True)
    visual.tokens.requires_grad_(True)
    out = interaction(visual, clues)
    # A weighted sum: a plain sum of LayerNorm outputs is constant (zero-mean rows), so its
    # gradient is zero up to round-off and would test nothing.
    weights = torch.randn_like(out.tokens[:, -3:])
    (out.tokens[:, -3:] * weights).sum().backward()  # clue tokens read the image
    assert visual.tokens.grad[0].abs().sum() > 0
    path = tmp_path / "interaction.pt"
    torch.save(interaction.state_dict(), path)
    fresh = MultiGranularClueInteraction(dim=16, heads=2).eval()
    fresh.bind(12, 10)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    torch.testing.assert_close(fresh(visual, clues).tokens, out.tokens)
