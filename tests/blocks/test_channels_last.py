"""`channels_last` on every CNN image encoder: the first convolution gets NHWC images, outputs and
gradients are those of NCHW up to rounding, and the weights (checkpoints) stay contiguous."""

import pytest
import torch

from xrg.blocks.adapters import UniCrossAdapter, UniCrossEncoder
from xrg.blocks.encoders import OpenClipImageEncoder, OpenClipTextEncoder, TimmImageEncoder

CLIP = {"embed_dim": 24, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 3}}


def timm(channels_last: bool):
    encoder = TimmImageEncoder("resnet18", channels_last=channels_last)
    return encoder, encoder.model.conv1


def open_clip(channels_last: bool):
    encoder = OpenClipImageEncoder("RN50", model_config=CLIP, channels_last=channels_last)
    return encoder, encoder.tower.conv1


def unicross(channels_last: bool):
    encoder = UniCrossEncoder(OpenClipImageEncoder("RN50", model_config=CLIP), OpenClipTextEncoder("RN50", model_config=CLIP),
                              UniCrossAdapter(bottleneck=16, heads=2, ffn_dim=32, image_points=(2, 3, 4), text_points=(1, 2, 3)),
                              dim=32, channels_last=channels_last)
    return encoder, encoder.image_encoder.tower.conv1


def biovil(channels_last: bool):
    pytest.importorskip("health_multimodal", reason="hi-ml-multimodal is not installed")
    from xrg.blocks.encoders import BioVilImageEncoder

    encoder = BioVilImageEncoder("biovil", pretrained=False, channels_last=channels_last)
    return encoder, encoder.model.encoder.encoder.conv1


@pytest.mark.parametrize("build", [timm, open_clip, unicross, biovil])
def test_channels_last_reaches_the_model_and_changes_neither_outputs_nor_gradients(build):
    torch.manual_seed(0)
    plain, _ = build(False)
    nhwc, first_conv = build(True)
    nhwc.load_state_dict(plain.state_dict())
    layouts = []
    first_conv.register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    images = torch.randn(2, 2, 3, 64, 64)
    plain.eval(), nhwc.eval()  # batch norm on batch statistics would differ by rounding only, but dropout not
    outputs = [encoder(images) for encoder in (plain, nhwc)]
    assert layouts == [True]  # the flag is not a no-op: the convolutions get NHWC images
    scale = outputs[0].tokens.abs().max().item()
    torch.testing.assert_close(outputs[0].tokens, outputs[1].tokens, rtol=1e-3, atol=1e-4 * scale)
    for encoder, out in zip((plain, nhwc), outputs):
        out.pooled.square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), nhwc.parameters()):
        if a.grad is not None and a.grad.norm() > 0:  # rounding only: a relative error far below a layout bug's
            assert (a.grad - b.grad).norm() <= 1e-3 * a.grad.norm(), name
    assert all(p.is_contiguous() for p in nhwc.state_dict().values())  # checkpoints as without the flag
