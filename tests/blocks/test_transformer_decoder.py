import math

import pytest
import torch

from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import Features
from xrg.data.tokenizers import WordTokenizer

REPORTS = ["the heart is normal .", "there is a small left effusion .", "no pneumothorax ."]
# Every behaviour below holds for the plain decoder and for R2Gen's relational memory + MCLN.
VARIANTS = pytest.mark.parametrize("rm", [0, 3], ids=["plain", "rm"])


def _decoder(**kw) -> TransformerDecoder:
    torch.manual_seed(0)
    decoder = TransformerDecoder(
        WordTokenizer(threshold=1), dim=32, heads=4, ffn_dim=64, encoder_layers=1, decoder_layers=2,
        dropout=0.0, max_length=12, memory_dim=8, **kw,
    )
    decoder.prepare(REPORTS)
    return decoder.eval()


def _memory(batch=3, tokens=5):
    torch.manual_seed(1)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, -2:] = False
    return Features(torch.randn(batch, tokens, 8), torch.randn(batch, 8), mask)


@VARIANTS
def test_changing_later_tokens_never_changes_earlier_logits(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    ids = decoder.tokenizer.batch_encode(REPORTS, 14)
    altered = ids.clone()
    altered[:, 4:] = 5
    a, b = decoder.logits(memory, ids), decoder.logits(memory, altered)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


@VARIANTS
def test_cached_steps_give_the_teacher_forced_logits(rm):
    """Feeding the words one at a time through the generation cache (keys/values and, with RM, the
    memory state) gives the logits of one teacher-forced pass over the whole sequence."""
    decoder, memory = _decoder(rm_slots=rm), _memory()
    ids = decoder.tokenizer.batch_encode(REPORTS, 14)
    encoded, mask = decoder.encode_memory(memory)
    memory_kv = [layer.memory_kv(encoded) for layer in decoder.layers]
    cache, steps = None, []
    for t in range(ids.shape[1]):
        logits, cache = decoder._decode(ids[:, t : t + 1], memory_kv, mask, cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), decoder.logits(memory, ids), rtol=1e-4, atol=1e-5)


@VARIANTS
def test_cached_greedy_equals_full_recomputation(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    cached = decoder.generate_ids(memory, num_beams=1, max_length=6)
    ids = torch.full((3, 1), decoder.tokenizer.bos_id)
    for _ in range(6):
        ids = torch.cat([ids, decoder.logits(memory, ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    # after EOS the cached search pads; compare up to each row's first EOS
    for row_cached, row_full in zip(cached.tolist(), ids[:, 1:].tolist()):
        eos = decoder.tokenizer.eos_id
        end = row_full.index(eos) + 1 if eos in row_full else len(row_full)
        assert row_cached[:end] == row_full[:end]


def _sequence_logprob(decoder, memory, ids):
    full = torch.cat([torch.full((ids.shape[0], 1), decoder.tokenizer.bos_id), ids], dim=1)
    logp = decoder.logits(memory, full[:, :-1]).log_softmax(-1).gather(-1, full[:, 1:, None]).squeeze(-1)
    eos = decoder.tokenizer.eos_id
    keep = torch.ones_like(ids, dtype=torch.bool)
    for r, row in enumerate(ids.tolist()):
        if eos in row:
            keep[r, row.index(eos) + 1 :] = False
    return (logp * keep).sum(-1)


def _uncached_beam_search(decoder, memory, k, max_length):
    """The same beam search as `generate_ids` (no length penalty), re-running every beam's whole
    prefix through teacher-forced `logits` at each step: nothing is carried between steps."""
    tok, batch = decoder.tokenizer, memory.tokens.shape[0]
    rows = torch.arange(batch).repeat_interleave(k)
    memory = Features(memory.tokens[rows], memory.pooled[rows], memory.mask[rows])
    tokens = torch.full((batch * k, 1), tok.bos_id)
    scores = torch.zeros(batch, k)
    scores[:, 1:] = -math.inf
    finished = torch.zeros(batch * k, dtype=torch.bool)
    offsets = torch.arange(batch).unsqueeze(1) * k
    for _ in range(max_length):
        log_probs = decoder.logits(memory, tokens)[:, -1].log_softmax(-1)
        log_probs[finished] = -math.inf
        log_probs[finished, tok.pad_id] = 0.0
        vocab = log_probs.shape[-1]
        scores, index = (scores.view(-1, 1) + log_probs).view(batch, -1).topk(k, dim=-1)
        source = (offsets + index // vocab).view(-1)
        tokens = torch.cat([tokens[source], (index % vocab).view(-1, 1)], dim=1)
        finished = finished[source] | (tokens[:, -1] == tok.eos_id)
        if finished.all():
            break
    return tokens[offsets.squeeze(1) + scores.argmax(-1), 1:]


@VARIANTS
def test_cached_beam_search_equals_uncached(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    for k in (1, 3):
        cached = decoder.generate_ids(memory, num_beams=k, max_length=10)
        assert torch.equal(cached, _uncached_beam_search(decoder, memory, k, max_length=10))


@VARIANTS
def test_beam_search_finds_at_least_the_greedy_score(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    greedy = decoder.generate_ids(memory, num_beams=1, max_length=8)
    beam = decoder.generate_ids(memory, num_beams=4, max_length=8)
    assert (_sequence_logprob(decoder, memory, beam) >= _sequence_logprob(decoder, memory, greedy) - 1e-5).all()


@VARIANTS
def test_loss_falls_when_overfitting(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    decoder.train()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = decoder.loss(memory, REPORTS)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first * 0.2
    assert decoder.eval().generate(memory, num_beams=2) == REPORTS


@VARIANTS
def test_state_dict_carries_the_vocabulary(rm):
    decoder, memory = _decoder(rm_slots=rm), _memory()
    fresh = TransformerDecoder(dim=32, heads=4, ffn_dim=64, encoder_layers=1, decoder_layers=2, max_length=12,
                               memory_dim=8, rm_slots=rm)
    assert not fresh.is_built
    fresh.load_state_dict(decoder.state_dict())
    fresh.eval()
    assert fresh.tokenizer == decoder.tokenizer
    ids = decoder.tokenizer.batch_encode(REPORTS, 14)
    assert torch.equal(fresh.logits(memory, ids), decoder.logits(memory, ids))
    assert torch.equal(fresh.generate_ids(memory, 3, 8), decoder.generate_ids(memory, 3, 8))


def test_the_relational_memory_conditions_every_position():
    decoder, memory = _decoder(rm_slots=3), _memory()
    ids = decoder.tokenizer.batch_encode(REPORTS, 14)
    before = decoder.logits(memory, ids)
    with torch.no_grad():  # what the memory writes, and so the norms' scale and shift, changes
        decoder.relational_memory.gate_from_token.bias.add_(1.0)
    after = decoder.logits(memory, ids)
    assert (before - after).abs().amax(-1).gt(1e-3).all()


def test_without_relational_memory_the_decoder_is_unchanged():
    plain = _decoder().state_dict()
    assert "layers.0.norms.0.weight" in plain and not any("relational_memory" in key for key in plain)


def test_the_visual_encoder_is_pre_norm_as_r2gens():
    """R2Gen's sublayers are x + sublayer(norm(x)): normalisation never touches the residual stream,
    so with every sublayer's output zeroed an encoder layer is the identity (a post-norm layer, which
    normalises x + sublayer(x), is not)."""
    encoder = _decoder().visual_encoder
    with torch.no_grad():
        for layer in encoder.layers:
            for linear in (layer.self_attn.out_proj, layer.linear2):
                linear.weight.zero_()
                linear.bias.zero_()
    tokens = 3 * torch.randn(2, 5, 32) + 1  # far from unit scale, so a LayerNorm would show
    assert torch.equal(encoder(tokens), tokens)


def test_ngram_bans_equal_transformers_no_repeat_ngram_processor():
    from transformers import NoRepeatNGramLogitsProcessor

    from xrg.blocks.decoders.transformer import ban_repeated_ngrams

    generator = torch.Generator().manual_seed(0)
    for n in (2, 3, 4):
        for length in (1, n - 1, n, 9, 20):
            tokens = torch.randint(0, 4, (16, length), generator=generator)  # 4 ids: repeats are common
            scores = torch.randn(16, 7, generator=generator)
            expected = NoRepeatNGramLogitsProcessor(n)(tokens, scores.clone())
            ours = scores.clone()
            ban_repeated_ngrams(ours, tokens, n)
            assert torch.equal(ours, expected), (n, length)


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_never_repeats_a_blocked_ngram(beams):
    decoder = _decoder()
    with torch.no_grad():  # a decoder that loves one word, as an undertrained one loves "the lungs are clear"
        decoder.head.bias[decoder.tokenizer.encode("heart")[0]] += 8.0
    plain = decoder.generate_ids(_memory(), num_beams=beams, max_length=12)

    def repeats(row: list[int], n: int) -> bool:
        grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1) if decoder.tokenizer.pad_id not in row[i:i + n]]
        return len(grams) != len(set(grams))

    assert any(repeats(row, 2) for row in plain.tolist())  # the case has something to block
    blocked = decoder.generate_ids(_memory(), num_beams=beams, max_length=12, no_repeat_ngram_size=2)
    assert not any(repeats(row, 2) for row in blocked.tolist())
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        _decoder(no_repeat_ngram_size=1)
