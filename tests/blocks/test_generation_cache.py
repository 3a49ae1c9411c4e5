"""CausalLMDecoder's static KV cache (and the compiled decode step) write the same token ids as the
default dynamic cache: greedy and beam search, on a left-padded batch with masked memory slots."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.decoders import CausalLMDecoder
from xrg.blocks.encoders.base import Features
from xrg.data.tokenizers import WordTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
WORDS = "the heart is enlarged normal no pleural effusion small left right pneumothorax".split()
PROMPTS = ["<image> findings:", "<image> indication: cough and fever for three days , rule out pneumonia . findings:",
           "<image> no", "<image> prior: the heart is enlarged . small left effusion . findings:"]


def decoder(**kwargs) -> CausalLMDecoder:
    torch.manual_seed(0)
    return CausalLMDecoder(config=TINY, tokenizer=WordTokenizer(threshold=1, words=WORDS), memory_dim=8,
                           max_new_tokens=12, **kwargs).eval()


def memory() -> Features:
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False  # a study with one view of two: its slots are padded, not attended
    return Features(torch.randn(4, 6, 8, generator=generator) * 3, torch.randn(4, 8, generator=generator), mask)


def generated_ids(model: CausalLMDecoder, **overrides) -> list[list[int]]:
    """The ids `generate` decodes (strings alone could hide which tokens were written)."""
    seen, decode = [], model.tokenizer.batch_decode
    model.tokenizer.batch_decode = lambda ids: seen.extend(torch.as_tensor(ids).tolist()) or decode(ids)
    model.generate(memory(), PROMPTS, **overrides)
    return seen


@pytest.mark.parametrize("num_beams", [1, 3])
def test_static_cache_writes_what_the_dynamic_cache_writes(num_beams):
    dynamic = generated_ids(decoder(), num_beams=num_beams)
    static = decoder(cache_implementation="static")
    assert generated_ids(static, num_beams=num_beams) == dynamic
    assert len({tuple(ids) for ids in dynamic}) == 4  # four different studies, four different reports
    assert static.llm._previous_max_cache_length > 0  # the static cache was the one used


def test_compiled_decode_step_writes_the_same_ids():
    dynamic = generated_ids(decoder())
    # The eager backend runs the same traced graph without generating kernels: seconds, not minutes, on a CPU.
    compiled = decoder(cache_implementation="static", compile={"backend": "eager", "mode": None})
    assert generated_ids(compiled) == dynamic
    assert hasattr(compiled.llm, "_compiled_call")  # transformers compiled the step (on a CPU only when asked to)


def test_bad_cache_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="compile needs cache_implementation: static"):
        decoder(compile=True)
    with pytest.raises(ValueError, match="cache_implementation must be 'dynamic' or 'static', not 'sliding'"):
        decoder(cache_implementation="sliding")
