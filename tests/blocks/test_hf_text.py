"""HFTextEncoder: the offline MiniLM matches sentence-transformers; tiny models round-trip."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.encoders.hf_text import HFTextEncoder, minilm_path

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SENTENCES = ["The heart is enlarged.", "Cardiomegaly is present.", "There is a right pneumothorax."]


@pytest.fixture(scope="module")
def minilm() -> HFTextEncoder:
    return HFTextEncoder("all-MiniLM-L6-v2", frozen=True)


def test_minilm_mean_pooling_equals_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(minilm_path()), device="cpu")
    expected = torch.as_tensor(reference.encode(SENTENCES, convert_to_numpy=True))
    with torch.no_grad():
        pooled = minilm(SENTENCES).pooled
    ours = torch.nn.functional.normalize(pooled, dim=-1)  # the packaged pipeline ends in Normalize
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_minilm_places_synonyms_closer_than_other_findings(minilm):
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(minilm(SENTENCES).pooled, dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]


def test_frozen_encoder_trains_nothing_and_stays_deterministic(minilm):
    assert minilm.trainable_parameters() == 0
    minilm.train()
    assert not minilm.model.training
    first, second = minilm(SENTENCES[:1]).pooled, minilm(SENTENCES[:1]).pooled
    torch.testing.assert_close(first, second)


def test_tiny_random_model_reloads_identically(tmp_path):
    torch.manual_seed(0)
    tiny = HFTextEncoder("all-MiniLM-L6-v2", config=TINY, pooling="cls", max_length=16)
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.hf.save_pretrained(tmp_path)
    reloaded = HFTextEncoder(str(tmp_path), pooling="cls", max_length=16).eval()
    tiny.eval()
    out, back = tiny(SENTENCES), reloaded(SENTENCES)
    assert tiny.dim == 32 and out.tokens.shape[-1] == 32 and out.tokens.shape[1] <= 16
    torch.testing.assert_close(out.pooled, back.pooled)
    assert out.mask.dtype == torch.bool and out.mask[:, 0].all()


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    tiny = HFTextEncoder("minilm", config=TINY).eval()
    alone = tiny(["No pleural effusion."]).pooled
    padded = tiny(["No pleural effusion.", "The cardiac silhouette is mildly enlarged today."]).pooled[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)


def test_bad_pooling_is_rejected():
    with pytest.raises(ValueError, match="pooling"):
        HFTextEncoder("minilm", pooling="max", config=TINY)
