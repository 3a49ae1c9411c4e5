"""Zero-shot disease perception: logits are the 2-prompt softmax log-odds; caches stay correct."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xrg.blocks.encoders import HFTextEncoder
from xrg.blocks.encoders.base import Features
from xrg.blocks.findings.zero_shot import ZeroShotDiseasePerception

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
NAMES = ["Cardiomegaly", "Pneumothorax", "Pleural Effusion"]


@pytest.fixture
def perception() -> ZeroShotDiseasePerception:
    torch.manual_seed(0)
    head = ZeroShotDiseasePerception(HFTextEncoder("minilm", config=TINY, frozen=True), NAMES, embed_dim=16)
    head.bind_image_dim(8)
    return head.eval()


def test_probability_is_the_softmax_over_positive_and_negative_prompts(perception):
    pooled = torch.randn(4, 8)
    probs = perception(Features(torch.zeros(4, 1, 8), pooled)).sigmoid()
    joint = perception.joint
    image = F.normalize(joint.image_projection(pooled), dim=-1)
    for k, name in enumerate(NAMES):
        positive, negative = perception.prompts[name]
        t_pos = F.normalize(joint.embed_texts(positive).mean(0), dim=-1)
        t_neg = F.normalize(joint.embed_texts(negative).mean(0), dim=-1)
        pair = torch.stack([image @ t_pos, image @ t_neg], dim=1) * joint.scale()
        torch.testing.assert_close(probs[:, k], pair.softmax(dim=1)[:, 0])


def test_any_disease_list_with_prompts(perception):
    head = ZeroShotDiseasePerception(perception.joint.text_encoder, ["Nodule X"], embed_dim=16,
                                     prompts={"Nodule X": (["a nodule"], ["no nodule"])})
    head.bind_image_dim(8)
    assert head(Features(torch.zeros(2, 1, 8), torch.randn(2, 8))).shape == (2, 1)
    with pytest.raises(ValueError, match="no prompts"):
        ZeroShotDiseasePerception(perception.joint.text_encoder, ["Nodule X"], embed_dim=16)


def test_loading_new_weights_refreshes_cached_prompts(perception):
    features = Features(torch.zeros(2, 1, 8), torch.randn(2, 8))
    before = perception(features)
    state = {k: v + 0.1 * torch.randn_like(v) if "text_projection" in k else v for k, v in perception.state_dict().items()}
    perception.load_state_dict(state)
    after = perception(features)
    assert not torch.allclose(before, after)
    fresh = ZeroShotDiseasePerception(HFTextEncoder("minilm", config=TINY, frozen=True), NAMES, embed_dim=16)
    fresh.bind_image_dim(8)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.eval()(features), after)


def test_frozen_text_is_encoded_once_per_distinct_string(perception, monkeypatch):
    calls = []
    encoder = perception.joint.text_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda texts: calls.append(list(texts)) or original(texts))
    perception.joint.embed_texts(["no pneumothorax", "no pneumothorax", "the heart is enlarged"])
    perception.joint.embed_texts(["the heart is enlarged"])
    assert calls == [["no pneumothorax", "the heart is enlarged"]]


def test_prompts_embedded_in_validation_serve_the_next_training_step(perception):
    """Lightning validates under `torch.inference_mode` (the sanity check runs before the first step):
    prompts cached there must not reach autograd, which refuses inference tensors."""
    features = Features(torch.zeros(2, 1, 8), torch.randn(2, 8))
    with torch.inference_mode():
        perception(features)
    pooled = torch.randn(2, 8, requires_grad=True)  # a training image encoder's output
    perception(Features(torch.zeros(2, 1, 8), pooled)).sum().backward()
    assert pooled.grad is not None
