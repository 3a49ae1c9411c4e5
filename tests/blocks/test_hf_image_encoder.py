import pytest
import torch

from xrg.blocks.encoders import HFImageEncoder

TINY_VIT = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "image_size": 32, "patch_size": 8}


def test_tiny_vit_tokens_and_views():
    encoder = HFImageEncoder(config=TINY_VIT).eval()
    out = encoder(torch.randn(2, 2, 3, 32, 32))
    assert out.tokens.shape == (2, 2 * 17, 32) and out.pooled.shape == (2, 32)


def test_saved_model_reloads_from_a_directory_with_identical_outputs(tmp_path):
    source = HFImageEncoder(config=TINY_VIT).eval()
    source.model.save_pretrained(tmp_path / "vit")
    loaded = HFImageEncoder(str(tmp_path / "vit"), frozen=True)
    images = torch.randn(1, 1, 3, 32, 32)
    assert torch.equal(source(images).tokens, loaded(images).tokens)
    assert loaded.trainable_parameters() == 0


def test_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        HFImageEncoder()


def test_rad_dino_architecture_reloads_from_a_directory(tmp_path):
    """RAD-DINO is a DINOv2 ViT: a tiny random one of the same model type saves and reloads exactly."""
    from xrg.blocks.encoders.hf_image import NAMED_MODELS

    tiny_dinov2 = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "mlp_ratio": 2, "image_size": 32, "patch_size": 8}
    source = HFImageEncoder(config=tiny_dinov2).eval()
    source.model.save_pretrained(tmp_path / "rad-dino")
    loaded = HFImageEncoder(str(tmp_path / "rad-dino")).eval()
    images = torch.randn(2, 1, 3, 32, 32)
    with torch.no_grad():
        expected, got = source(images), loaded(images)
    assert got.tokens.shape == (2, 1 + 16, 32)  # CLS + 4 x 4 patches
    assert torch.equal(expected.tokens, got.tokens) and torch.equal(expected.pooled, got.pooled)
    torch.testing.assert_close(got.pooled, got.tokens[:, 0])  # pooler_output: the normed CLS
    assert NAMED_MODELS["rad-dino"] == "microsoft/rad-dino"
