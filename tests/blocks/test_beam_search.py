"""Beam search against exhaustive search over a tiny vocabulary, for both decoder kinds.

With 6 tokens and 3 steps there are 6^3 continuations: scoring every one with teacher-forced
logits gives the true best report. A beam as wide as every two-token prefix (36) cannot prune
it, so beam search must return it; greedy search misses it for some studies (checked here too,
so the case is one where beam search has something to find).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from xrg.blocks.decoders import CausalLMDecoder, TransformerDecoder
from xrg.blocks.encoders import Features
from xrg.data.tokenizers import WordTokenizer

STEPS, STUDIES = 3, 8
TINY_LLAMA = dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=2)


def tokenizer() -> WordTokenizer:
    return WordTokenizer(threshold=1, words=["heart", "normal"])  # 4 specials + 2 words


def memory() -> Features:
    generator = torch.Generator().manual_seed(1)
    return Features(torch.randn(STUDIES, 2, 8, generator=generator) * 3, torch.randn(STUDIES, 8, generator=generator))


def every_continuation(vocab: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(vocab), repeat=STEPS)))  # [V^STEPS, STEPS]


def total_logprob(log_probs: torch.Tensor, continuations: torch.Tensor, eos: int) -> torch.Tensor:
    """Sum of the token log-probabilities up to and including the first EOS: `log_probs` [N, STEPS, V]."""
    picked = log_probs.gather(-1, continuations.unsqueeze(-1)).squeeze(-1)
    after_eos = (continuations == eos).long().cumsum(1) - (continuations == eos).long()
    return (picked * (after_eos == 0)).sum(1)


def until_eos(ids: list[int], eos: int) -> tuple[int, ...]:
    return tuple(ids[: ids.index(eos) + 1] if eos in ids else ids)


def recorded_ids(decoder, generate) -> list[tuple[int, ...]]:
    """The ids a decoder's `generate` decodes (the strings alone can hide which tokens won)."""
    seen: list[list[int]] = []
    decode = decoder.tokenizer.batch_decode

    def spy(ids):
        seen.extend(torch.as_tensor(ids).tolist())
        return decode(ids)

    decoder.tokenizer.batch_decode = spy
    try:
        generate()
    finally:
        del decoder.tokenizer.batch_decode
    return [until_eos(row, decoder.tokenizer.eos_id) for row in seen]


def check_beam_is_exhaustive_and_greedy_is_not(best: list[tuple[int, ...]], beam: list[tuple[int, ...]],
                                               greedy: list[tuple[int, ...]]) -> None:
    assert beam == best, "beam search missed the best continuation that exhaustive search finds"
    assert any(g != b for g, b in zip(greedy, best)), "no study where greedy search misses the best: the case tests nothing"


# --- R2Gen's transformer decoder ---------------------------------------------------------------
def transformer(num_beams: int) -> TransformerDecoder:
    torch.manual_seed(0)
    decoder = TransformerDecoder(tokenizer(), dim=16, heads=2, ffn_dim=32, encoder_layers=1, decoder_layers=1,
                                 dropout=0.0, max_length=STEPS, num_beams=num_beams, memory_dim=8)
    return decoder.eval()


def transformer_best(decoder: TransformerDecoder, mem: Features) -> list[tuple[int, ...]]:
    tok = decoder.tokenizer
    continuations = every_continuation(tok.vocab_size)
    best = []
    for study in range(STUDIES):
        rows = torch.zeros(len(continuations), dtype=torch.long) + study
        study_memory = Features(mem.tokens[rows], mem.pooled[rows])
        inputs = torch.cat([torch.full((len(continuations), 1), tok.bos_id), continuations[:, :-1]], 1)
        with torch.no_grad():
            log_probs = decoder.logits(study_memory, inputs).log_softmax(-1)
        scores = total_logprob(log_probs, continuations, tok.eos_id)
        best.append(until_eos(continuations[scores.argmax()].tolist(), tok.eos_id))
    return best


def test_transformer_beam_search_finds_the_exhaustive_best_where_greedy_does_not():
    mem = memory()
    wide, narrow = transformer(num_beams=36), transformer(num_beams=1)
    beam = recorded_ids(wide, lambda: wide.generate(mem))
    greedy = recorded_ids(narrow, lambda: narrow.generate(mem))
    check_beam_is_exhaustive_and_greedy_is_not(transformer_best(wide, mem), beam, greedy)


# --- the causal-LM decoder (HF generate underneath) --------------------------------------------
def llm(num_beams: int) -> CausalLMDecoder:
    torch.manual_seed(0)
    decoder = CausalLMDecoder(config=TINY_LLAMA, tokenizer=tokenizer(), freeze_llm=False, memory_dim=8,
                              max_new_tokens=STEPS, num_beams=num_beams)
    return decoder.eval()


def llm_best(decoder: CausalLMDecoder, mem: Features) -> list[tuple[int, ...]]:
    """Every continuation after the same prompt (no padding, so positions are plain)."""
    tok = decoder.tokenizer
    continuations = every_continuation(tok.vocab_size)
    seq = decoder._sequences(mem, None, None)
    prompt = decoder._embeddings(mem, seq)  # [B, P, H]
    words = decoder.llm.get_input_embeddings()(continuations[:, :-1])
    best = []
    for study in range(STUDIES):
        embeds = torch.cat([prompt[study].expand(len(continuations), -1, -1), words], 1)
        with torch.no_grad():
            logits = decoder.llm(inputs_embeds=embeds, use_cache=False).logits[:, -STEPS:]
        scores = total_logprob(logits.float().log_softmax(-1), continuations, tok.eos_id)
        best.append(until_eos(continuations[scores.argmax()].tolist(), tok.eos_id))
    return best


def test_llm_beam_search_finds_the_exhaustive_best_where_greedy_does_not():
    mem = memory()
    wide, narrow = llm(num_beams=36), llm(num_beams=1)
    # No length penalty: HF divides by length by default, exhaustive search sums.
    beam = recorded_ids(wide, lambda: wide.generate(mem, length_penalty=0.0))
    greedy = recorded_ids(narrow, lambda: narrow.generate(mem))
    check_beam_is_exhaustive_and_greedy_is_not(llm_best(wide, mem), beam, greedy)


@pytest.mark.parametrize("build", [transformer, llm], ids=["transformer", "llm"])
def test_a_per_call_beam_width_overrides_the_configured_one(build):
    mem = memory()
    configured_greedy, configured_wide = build(num_beams=1), build(num_beams=36)
    kwargs = {"length_penalty": 0.0} if build is llm else {}
    assert configured_greedy.generate(mem, num_beams=36, **kwargs) == configured_wide.generate(mem, **kwargs)
