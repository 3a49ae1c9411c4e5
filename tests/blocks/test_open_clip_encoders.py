import open_clip
import pytest
import torch

from xrg.blocks.encoders import ClipTokenizer, OpenClipImageEncoder, OpenClipTextEncoder
from xrg.data.tokenizers import tokenizer_from_state

TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
TINY = {
    "resnet": {"embed_dim": 24, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8}, "text_cfg": TEXT},
    "vit": {"embed_dim": 24, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                            "head_width": 16}, "text_cfg": TEXT},
}


@pytest.fixture(params=sorted(TINY))
def saved_clip(request, tmp_path):
    """A tiny random open_clip model saved as a local checkpoint file, as a pretrained one would be."""
    torch.manual_seed(0)
    config = TINY[request.param]
    model = open_clip.create_model("RN50", **config).eval()
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    return request.param, config, model, str(path)


def test_local_checkpoint_loads_and_staged_forward_equals_open_clip(saved_clip):
    family, config, model, path = saved_clip
    image_encoder = OpenClipImageEncoder("RN50", pretrained=path, model_config=config).eval()
    text_encoder = OpenClipTextEncoder("RN50", pretrained=path, model_config=config).eval()
    assert image_encoder.family == family
    size = config["vision_cfg"]["image_size"]
    images = torch.randn(2, 3, size, size)
    ids = open_clip.tokenize(["no acute disease", "small left effusion"], context_length=TEXT["context_length"])
    with torch.no_grad():
        assert torch.equal(image_encoder.encode_images(images)[1], model.encode_image(images))
        assert torch.equal(text_encoder.encode_ids(ids).pooled, model.encode_text(ids))
    # Stage shapes are what the stages really produce (the adapter sizes itself by them).
    state = image_encoder.embed(images)
    for index, shape in enumerate(image_encoder.stage_shapes()):
        state = image_encoder.run_stage(index, state)
        assert tuple(image_encoder.feature_map(state).shape[1:]) == shape


def test_clip_tokenizer_frames_like_open_clip_and_survives_its_state():
    tokenizer = ClipTokenizer(context_length=16)
    texts = ["the heart is enlarged.", "no pneumothorax"]
    ids = tokenizer.batch_encode(texts, 16)
    reference = open_clip.tokenize(texts, context_length=16)
    assert torch.equal(ids, reference[:, : ids.shape[1]])
    restored = tokenizer_from_state(tokenizer.state_dict())
    assert isinstance(restored, ClipTokenizer) and restored.encode(texts[0]) == tokenizer.encode(texts[0])
    assert restored.decode(ids[0]) == "the heart is enlarged ."


@pytest.mark.parametrize("family", sorted(TINY))
def test_tokens_lie_in_the_pooled_embeddings_space(family):
    # A last-stage state whose every location holds the same vector pools to exactly that location's
    # token: tokens go through the projection that makes CLIP's pooled embedding (MaskCLIP's dense
    # features), so a head that scores the pooled vector can score every token alike.
    torch.manual_seed(0)
    encoder = OpenClipImageEncoder("RN50", model_config=TINY[family]).eval()
    channels, h, w = encoder.stage_shapes()[-1]
    with torch.no_grad():
        if family == "resnet":  # identical locations, identical positions: the attention pool averages equals
            pool = encoder.tower.attnpool
            pool.positional_embedding.copy_(pool.positional_embedding[:1].expand_as(pool.positional_embedding))
            state = torch.randn(2, channels, 1, 1).expand(2, channels, h, w)
        else:  # every patch a copy of the class token, which the tower pools
            state = torch.randn(2, 1, channels).expand(2, 1 + h * w, channels)
        tokens, pooled = encoder.finish(state)
    assert tokens.shape == (2, h * w, encoder.dim) and pooled.shape == (2, encoder.dim) and encoder.dim == 24
    torch.testing.assert_close(tokens, pooled[:, None].expand_as(tokens), atol=1e-5, rtol=1e-5)


def test_frozen_resnet_keeps_batchnorm_statistics_and_trains_only_named_params():
    encoder = OpenClipImageEncoder("RN50", model_config=TINY["resnet"], frozen=True,
                                   train_params=["attnpool.positional_embedding"])
    encoder.train()  # the task puts every module in train mode; a frozen tower must stay in eval
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder(torch.randn(2, 1, 3, 64, 64) * 3 + 1)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable == ["tower.attnpool.positional_embedding"]


def test_text_encoder_truncates_and_masks_padding():
    encoder = OpenClipTextEncoder("RN50", model_config=TINY["resnet"]).eval()
    out = encoder(["word " * 40, "heart"])
    assert out.tokens.shape == (2, 16, 24) and out.pooled.shape == (2, 24)  # both projected into CLIP's space
    assert (encoder.dim, encoder.width) == (24, 32)
    assert out.mask.sum(1).tolist() == [16, 3]  # BOS heart EOS


def test_unknown_tower_kinds_are_refused():
    config = {**TINY["resnet"], "vision_cfg": {"timm_model_name": "resnet18", "image_size": 32}}
    with pytest.raises(ValueError, match="neither an open_clip"):
        OpenClipImageEncoder("RN50", model_config=config)
