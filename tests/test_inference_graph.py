"""The decoder rewritten for inference computes what the trained network computes."""

import pytest
import torch
from torch.nn import functional as F

from tomoseg.inference_graph import TAPS, rewrite_decoder, transposed_kernel
from tomoseg.model import UNet3D, inference_copy


def _trained_like(levels, base, seed=0):
    torch.manual_seed(seed)
    model = UNet3D(levels=levels, base_features=base)
    for module in model.modules():  # BatchNorms and biases far from their initial values, as trained ones are
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.3, 2)
            module.bias.data.uniform_(-0.5, 0.5)
        if isinstance(module, torch.nn.Conv3d):
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def test_taps_sum_to_the_kernel_twice():
    # each of the three taps feeds two of the four transposed taps: output 2i and 2i+1 each see all three once
    assert [sum(col) for col in zip(*TAPS)] == [2, 2, 2]
    assert [TAPS[1][k] + TAPS[3][k] for k in range(3)] == [1, 1, 1]  # the even outputs
    assert [TAPS[0][k] + TAPS[2][k] for k in range(3)] == [1, 1, 1]  # the odd outputs


@pytest.mark.parametrize("low_shape", [(1, 1, 1), (3, 5, 4), (2, 7, 6)])
def test_transposed_kernel_equals_convolution_of_the_upsampling(low_shape):
    torch.manual_seed(1)
    x = torch.randn(2, 3, *low_shape, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, 3, dtype=torch.float64)
    expected = F.conv3d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, padding=1)
    got = F.conv_transpose3d(x, transposed_kernel(weight), stride=2, padding=1)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-12)  # the faces included: both pad with zeros


def test_a_wrong_tap_order_would_be_seen():
    torch.manual_seed(2)
    x = torch.randn(1, 1, 3, 3, 3, dtype=torch.float64)
    weight = torch.randn(1, 1, 3, 3, 3, dtype=torch.float64)
    expected = F.conv3d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, padding=1)
    flipped = transposed_kernel(weight).flip(2)
    assert not torch.allclose(F.conv_transpose3d(x, flipped, stride=2, padding=1), expected, atol=1e-3)


@pytest.mark.parametrize("levels, base, shape", [(2, 4, (8, 6, 10)), (3, 4, (16, 8, 24)), (4, 8, (16, 24, 8))])
def test_rewritten_network_keeps_the_logits(levels, base, shape):
    model = _trained_like(levels, base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, *shape)
    with torch.inference_mode():
        expected = model(x)
        unfolded = rewrite_decoder(model)(x)  # BatchNorms still there: they follow the sum
        folded = inference_copy(model, channels_last=False, rewrite=True)
        got = folded(x)
        got_cl = inference_copy(model, channels_last=True, rewrite=True)(x.to(memory_format=torch.channels_last_3d))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    for out in (unfolded, got, got_cl):
        assert out.shape == expected.shape
        assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4), (out - expected).abs().max()
    kinds = {type(m).__name__ for m in folded.modules()}
    assert "ConvTranspose3d" in kinds and "BatchNorm3d" not in kinds
    assert folded.config == model.config


def test_rewrite_refuses_a_block_it_does_not_know():
    from tomoseg.errors import TomosegError

    model = _trained_like(2, 4)
    model.up[0][0] = torch.nn.Conv3d(12, 4, 5, padding=2)
    with pytest.raises(TomosegError, match="cannot rewrite"):
        rewrite_decoder(model)
