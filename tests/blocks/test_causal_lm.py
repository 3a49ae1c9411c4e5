"""CausalLMDecoder on a tiny random Llama: slots, response-only loss, generation, LoRA life cycle."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.decoders import CausalLMDecoder, LoRASettings
from xrg.blocks.encoders.base import Features
from xrg.data.tokenizers import BPETokenizer

REPORTS = ["the heart is enlarged . no effusion .", "heart size is normal . small left pleural effusion ."]
TINY = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
PROMPTS = ["Image <image>. Findings:", "<image:2> then <image> write it"]


def fitted_tokenizer() -> BPETokenizer:
    tok = BPETokenizer(vocab_size=300)
    tok.fit(REPORTS * 10)
    return tok


def make_decoder(seed: int = 0, **kwargs) -> CausalLMDecoder:
    torch.manual_seed(seed)
    return CausalLMDecoder(config=TINY, tokenizer=fitted_tokenizer(), memory_dim=8, max_new_tokens=24, **kwargs)


def memory(seed: int = 1) -> Features:
    generator = torch.Generator().manual_seed(seed)
    return Features(torch.randn(2, 3, 8, generator=generator), torch.randn(2, 8, generator=generator))


def train(decoder: CausalLMDecoder, mem: Features, steps: int, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.Adam([p for p in decoder.parameters() if p.requires_grad], lr)
    losses = []
    for _ in range(steps):
        loss = decoder.loss(mem, REPORTS, PROMPTS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_placeholders_become_slots_filled_in_memory_order():
    decoder = make_decoder()
    ids, slots = decoder._prompt_ids("a <image:2> b <image>", memory_tokens=3)
    a, b = decoder.tokenizer.encode("a "), decoder.tokenizer.encode(" b ")
    assert ids[0] == decoder.tokenizer.bos_id
    assert slots == [(1 + len(a), 0), (2 + len(a), 1), (3 + len(a) + len(b), 2)]
    # No placeholder: all memory first; too many slots: a clear error.
    assert [m for _, m in decoder._prompt_ids("text", 3)[1]] == [0, 1, 2]
    with pytest.raises(ValueError, match="image slots"):
        decoder._prompt_ids("<image:4>", memory_tokens=3)


def test_loss_is_on_response_tokens_only_and_memory_fills_the_slots():
    decoder = make_decoder()
    mem = memory()
    seq = decoder._sequences(mem, PROMPTS, REPORTS)
    for b, report in enumerate(REPORTS):
        supervised = seq.labels[b][seq.labels[b] != -100].tolist()
        assert supervised == decoder.tokenizer.encode(report) + [decoder.tokenizer.eos_id]
    embeds = decoder._embeddings(mem, seq)
    projected = decoder.memory_proj(mem.tokens)
    assert torch.equal(embeds[seq.slot_batch, seq.slot_position], projected[seq.slot_batch, seq.slot_memory])
    # Changing the memory changes the loss: the image actually reaches the LLM.
    assert decoder.loss(mem, REPORTS, PROMPTS) != decoder.loss(memory(seed=5), REPORTS, PROMPTS)


def test_trained_full_model_writes_each_report_greedy_beam_and_batched():
    decoder = make_decoder(freeze_llm=False)
    mem = memory()
    losses = train(decoder, mem, steps=50)
    assert losses[-1] < 0.2 * losses[0]
    decoder.eval()
    assert decoder.generate(mem, PROMPTS) == REPORTS
    assert decoder.generate(mem, PROMPTS, num_beams=3) == REPORTS
    # Left padding in a batch gives the same text as generating each study alone.
    alone = Features(mem.tokens[1:], mem.pooled[1:])
    assert decoder.generate(alone, PROMPTS[1:]) == REPORTS[1:]


def test_frozen_llm_trains_only_lora_and_memory_projection():
    decoder = make_decoder(lora=LoRASettings(r=4, alpha=8, dropout=0.0))
    decoder.loss(memory(), REPORTS, PROMPTS).backward()
    with_grad = {n for n, p in decoder.named_parameters() if p.grad is not None}
    trainable = {n for n, p in decoder.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    assert all("lora_" in n or n.startswith("memory_proj.") for n in with_grad)
    assert any(n.startswith("memory_proj.") for n in with_grad)
    assert {n.split(".")[-2] for n in with_grad if "lora_" in n} == {"default"}
    assert any("q_proj.lora_A" in n for n in with_grad) and any("v_proj.lora_B" in n for n in with_grad)
    assert not any("k_proj" in n or "embed_tokens" in n for n in with_grad)


def test_lora_save_merge_reload_gives_identical_logits(tmp_path):
    decoder = make_decoder(lora=LoRASettings(r=4, alpha=8, dropout=0.0))
    mem = memory()
    train(decoder, mem, steps=5, lr=1e-2)  # LoRA B starts at zero: train so the adapter matters
    decoder.eval()
    trained = decoder.logits(mem, REPORTS, PROMPTS)
    decoder.save_adapter(tmp_path / "adapter")

    reloaded = make_decoder(lora=None)  # same seed: the same random base weights
    reloaded.memory_proj.load_state_dict(decoder.memory_proj.state_dict())
    reloaded.load_adapter(tmp_path / "adapter")
    reloaded.eval()
    torch.testing.assert_close(reloaded.logits(mem, REPORTS, PROMPTS), trained, rtol=0, atol=1e-6)
    assert not torch.allclose(make_decoder().eval().logits(mem, REPORTS, PROMPTS), trained, atol=1e-3)

    decoder.export(tmp_path / "merged")  # HF folder, loaded back by path like a hub model
    decoder.merge_lora()
    torch.testing.assert_close(decoder.logits(mem, REPORTS, PROMPTS), trained, rtol=1e-5, atol=1e-5)
    from_path = CausalLMDecoder(model=str(tmp_path / "merged"), tokenizer=decoder.tokenizer, memory_dim=8)
    from_path.memory_proj.load_state_dict(decoder.memory_proj.state_dict())
    torch.testing.assert_close(from_path.eval().logits(mem, REPORTS, PROMPTS), trained, rtol=1e-5, atol=1e-5)


def test_state_dict_carries_tokenizer_and_rebuilds_the_llm():
    decoder = make_decoder(lora=LoRASettings(r=4, alpha=8))
    decoder.eval()
    mem = memory()
    fresh = CausalLMDecoder(config=TINY, tokenizer=BPETokenizer(vocab_size=300), memory_dim=8, lora=LoRASettings(r=4, alpha=8))
    assert not fresh.is_built
    fresh.load_state_dict(decoder.state_dict())
    fresh.eval()
    assert fresh.tokenizer == decoder.tokenizer
    torch.testing.assert_close(fresh.logits(mem, REPORTS, PROMPTS), decoder.logits(mem, REPORTS, PROMPTS), rtol=0, atol=0)


def test_masked_memory_slots_are_not_attended():
    decoder = make_decoder().eval()
    mem = memory()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    seq = decoder._sequences(Features(mem.tokens, mem.pooled, mask), PROMPTS, REPORTS)
    hidden = seq.slot_position[(seq.slot_batch == 0) & (seq.slot_memory == 2)]
    assert seq.attention_mask[0, hidden].tolist() == [0]
    # What sits in a masked slot cannot change the output at any attended position.
    noisy = mem.tokens.clone()
    noisy[0, 2] += 100
    a = decoder.logits(Features(mem.tokens, mem.pooled, mask), REPORTS, PROMPTS)
    b = decoder.logits(Features(noisy, mem.pooled, mask), REPORTS, PROMPTS)
    attended = seq.attention_mask.bool()
    torch.testing.assert_close(a[attended], b[attended])
    assert not torch.allclose(a[0, hidden], b[0, hidden])


def test_construction_errors_are_clear():
    with pytest.raises(ValueError, match="exactly one"):
        CausalLMDecoder()
    with pytest.raises(ValueError, match="tokenizer"):
        CausalLMDecoder(config=TINY)
    with pytest.raises(ValueError, match="memory width"):
        CausalLMDecoder(config=TINY, tokenizer=fitted_tokenizer(), memory_projection="none", memory_dim=8)
    with pytest.raises(ValueError, match="memory width"):  # wider than the LLM, too
        CausalLMDecoder(config=TINY, tokenizer=fitted_tokenizer(), memory_projection="none", memory_dim=64)


def test_lora_decoder_starts_from_a_plain_decoders_weights():
    plain = make_decoder(freeze_llm=False)
    train(plain, memory(), steps=3)
    lora = CausalLMDecoder(config=TINY, tokenizer=BPETokenizer(vocab_size=300), memory_dim=8, lora=LoRASettings(r=4, alpha=8))
    lora.load_state_dict(plain.state_dict())  # LoRA B is zero at start: same function as the plain model
    mem = memory()
    torch.testing.assert_close(lora.eval().logits(mem, REPORTS, PROMPTS), plain.eval().logits(mem, REPORTS, PROMPTS))


# --- checkpoints of a named, frozen-base LLM leave its base weights out and re-read them, verified
SOURCE_LORA = LoRASettings(r=4, alpha=8, dropout=0.0)


@pytest.fixture
def source(tmp_path):
    """A tiny 'hub' model on disk, as `model=` would name one."""
    make_decoder(seed=0).llm.save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def named(source, tokenizer, **kwargs) -> CausalLMDecoder:
    return CausalLMDecoder(model=str(source), tokenizer=tokenizer, memory_dim=8, max_new_tokens=24, **kwargs)


def test_lora_checkpoint_leaves_the_base_out_and_reloads_identical(source):
    decoder = named(source, make_decoder().tokenizer, lora=SOURCE_LORA)
    mem = memory()
    train(decoder, mem, steps=4, lr=1e-2)
    state = decoder.state_dict()
    full = {k for k in named(source, decoder.tokenizer, lora=SOURCE_LORA, save_frozen_base=True).state_dict()}
    left_out = full - set(state)
    # 2 layers x (q k v o gate up down + 2 norms) + the final norm; embeddings, LoRA, projection kept
    assert len(left_out) == 19 and all(k.startswith("llm.base_model.model.model.") for k in left_out)
    kept = {k for k in state if k.startswith("llm.")}
    assert all("lora_" in k or "embed_tokens" in k or "lm_head" in k for k in kept)
    assert state["_extra_state"]["omitted_base"]["source"] == str(source)

    torch.save(state, source.parent / "decoder.pt")  # checkpoints load with weights_only: the listing must pass
    state = torch.load(source.parent / "decoder.pt", weights_only=True)
    reloaded = named(source, decoder.tokenizer, lora=SOURCE_LORA)
    reloaded.load_state_dict(state)  # strict: every left-out weight is filled back in
    torch.testing.assert_close(reloaded.eval().logits(mem, REPORTS, PROMPTS), decoder.eval().logits(mem, REPORTS, PROMPTS),
                               rtol=0, atol=0)


def test_other_source_weights_are_refused_naming_the_weight(source, tmp_path):
    decoder = named(source, make_decoder().tokenizer, lora=SOURCE_LORA)
    state = decoder.state_dict()
    make_decoder(seed=1).llm.save_pretrained(tmp_path / "other")  # same architecture, other weights
    with pytest.raises(ValueError, match="leaves out the frozen base weight 'model.layers"):
        named(tmp_path / "other", decoder.tokenizer, lora=SOURCE_LORA).load_state_dict(state)


def test_a_base_that_moved_is_written_whole(source):
    decoder = named(source, make_decoder().tokenizer, lora=SOURCE_LORA)
    decoder.merge_lora()  # folds (here zero) adapters in; then change a base weight as training would
    with torch.no_grad():
        decoder.llm.model.layers[0].mlp.up_proj.weight.add_(0.01)
    state = decoder.state_dict()
    assert "llm.model.layers.0.mlp.up_proj.weight" in state and "omitted_base" not in state["_extra_state"]


def test_attention_implementation_is_chosen_for_speed_and_sdpa_matches_eager():
    """`auto` gives SDPA on this CPU machine (flash-attention needs a GPU); eager agrees with it."""
    mem = memory()
    auto, eager = make_decoder(), make_decoder(attn_implementation="eager")
    eager.load_state_dict(auto.state_dict())
    assert auto.llm.config._attn_implementation == "sdpa"
    assert eager.llm.config._attn_implementation == "eager"
    reports = ["the heart is normal .", "small left effusion ."]
    torch.testing.assert_close(auto.logits(mem, reports), eager.logits(mem, reports), atol=1e-4, rtol=1e-4)
