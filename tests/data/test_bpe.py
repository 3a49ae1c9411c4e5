"""BPETokenizer: fitted on reports, round-trips text, state rebuilds it exactly."""

from __future__ import annotations

import json

import pytest

from xrg.data.tokenizers import BPETokenizer, tokenizer_from_state

REPORTS = ["the heart is enlarged . no effusion .", "heart size is normal . small left pleural effusion ."] * 5


def test_fit_roundtrip_specials_and_state():
    tok = BPETokenizer(vocab_size=400, extra_special_tokens=["<|im_start|>"])
    with pytest.raises(RuntimeError, match="fit"):
        tok.encode("x")
    tok.fit(REPORTS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (tok.token_to_id("<pad>"), tok.token_to_id("<s>"), tok.token_to_id("</s>"))
    # Frequent report words merge into few tokens; unseen text still encodes byte by byte.
    assert len(tok.encode("pleural effusion")) < len("pleural effusion") // 3
    for text in ("heart size is normal .", "Unseen Wörds: 42!"):
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("<|im_start|>") == [tok.token_to_id("<|im_start|>")]
    assert tok.decode(tok.encode("heart") + [tok.eos_id] + tok.encode("effusion")) == "heart"
    restored = tokenizer_from_state(json.loads(json.dumps(tok.state_dict())))
    assert restored == tok and restored.encode(REPORTS[1]) == tok.encode(REPORTS[1])
    batch = tok.batch_encode(REPORTS[:2], max_length=64)
    assert batch[0, 0] == tok.bos_id and tok.eos_id in batch[0].tolist()
