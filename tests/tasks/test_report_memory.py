"""What the decoder reads: guide tokens join the visual memory after it, and the memory's mask
(padded views of a study with fewer views) comes with them, the guide tokens always attended."""

from __future__ import annotations

import torch

from xrg.blocks.encoders import Features
from xrg.tasks.report_generation import append_tokens


def test_guide_tokens_join_the_memory_and_padded_views_stay_masked():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    memory = Features(torch.randn(2, 3, 4), torch.randn(2, 4), mask)
    tokens = torch.randn(2, 2, 4)
    joined = append_tokens(memory, tokens)
    assert torch.equal(joined.tokens, torch.cat([memory.tokens, tokens], 1))
    assert torch.equal(joined.pooled, memory.pooled)
    assert joined.mask.tolist() == [[True, True, False, True, True], [True, False, False, True, True]]
    assert append_tokens(Features(memory.tokens, memory.pooled, None), tokens).mask is None
