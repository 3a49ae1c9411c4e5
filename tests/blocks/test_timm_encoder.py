import torch
from safetensors.torch import save_file

from xrg.blocks.encoders import TimmImageEncoder


def test_cnn_views_become_concatenated_tokens_and_masked_pooling():
    encoder = TimmImageEncoder("resnet18").eval()
    images = torch.randn(2, 2, 3, 64, 64)
    out = encoder(images, torch.tensor([[True, True], [True, False]]))
    assert out.tokens.shape == (2, 2 * 4, 512) and out.pooled.shape == (2, 512)
    assert out.mask[1].tolist() == [True] * 4 + [False] * 4
    single = encoder(images[1:, :1])
    torch.testing.assert_close(out.pooled[1], single.pooled[0])  # padded view does not count


def test_vit_tokens():
    encoder = TimmImageEncoder("vit_tiny_patch16_224", model_kwargs={"img_size": 32}).eval()
    out = encoder(torch.randn(1, 1, 3, 32, 32))
    assert out.tokens.shape == (1, 5, encoder.dim)  # 4 patches + CLS


def test_local_checkpoint_loads_through_timms_pretrained_path(tmp_path):
    source = TimmImageEncoder("resnet18").eval()
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(path))
    loaded = TimmImageEncoder("resnet18", checkpoint_path=str(path)).eval()
    images = torch.randn(1, 1, 3, 64, 64)
    assert torch.equal(source(images).tokens, loaded(images).tokens)


def test_frozen_encoder_trains_nothing_and_keeps_its_statistics():
    encoder = TimmImageEncoder("resnet18", frozen=True)
    assert encoder.trainable_parameters() == 0
    wrapper = torch.nn.ModuleDict({"encoder": encoder}).train()  # a task switching to training
    assert not encoder.training and not encoder.model.bn1.training
    before = encoder.model.bn1.running_mean.clone()
    wrapper["encoder"](torch.randn(2, 1, 3, 64, 64))
    assert torch.equal(before, encoder.model.bn1.running_mean)
