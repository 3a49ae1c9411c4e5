import pytest
import torch

from xrg.blocks.aligners import GridPool
from xrg.blocks.encoders import TimmImageEncoder
from xrg.data.errors import ConfigError


def test_each_view_is_pooled_on_its_own_grid_and_padded_views_stay_masked():
    encoder = TimmImageEncoder("test_resnet", model_kwargs={"output_stride": 8}).eval()
    images = torch.randn(2, 2, 3, 64, 64)
    visual = encoder(images, torch.tensor([[True, True], [True, False]]))
    assert visual.views == 2 and visual.tokens.shape[1] == 2 * 8 * 8
    pool = GridPool(grid=2)
    pool.bind_input(encoder.dim)
    pooled = pool(visual)
    assert pool.out_dim == encoder.dim and pooled.tokens.shape == (2, 2 * 2 * 2, encoder.dim)
    # the second view's top-left cell is the mean of that view's top-left 4 x 4 block of the map
    second = visual.tokens[0, 64:].reshape(8, 8, -1)
    torch.testing.assert_close(pooled.tokens[0, 4], second[:4, :4].mean((0, 1)))
    assert pooled.mask[1].tolist() == [True] * 4 + [False] * 4
    assert torch.equal(pooled.pooled, visual.pooled)


def test_tokens_that_are_not_square_maps_are_refused_with_a_reason():
    vit = TimmImageEncoder("vit_tiny_patch16_224", model_kwargs={"img_size": 32}).eval()
    pool = GridPool(grid=1)
    pool.bind_input(vit.dim)
    with pytest.raises(ConfigError, match="square feature maps"):
        pool(vit(torch.randn(1, 1, 3, 32, 32)))  # 4 patches + a class token
    with pytest.raises(ValueError, match="grid"):
        GridPool(grid=0)
