"""The U-Net rewritten for inference: the same function in fewer operations.

Each decoder level of :class:`~tomoseg.model.UNet3D` up-samples by 2 (nearest neighbour), concatenates the skip
connection and runs a 3x3x3 convolution over the two. Two identities give the same result without building
either of the large tensors:

- **a convolution over a concatenation is the sum of two convolutions**, one over each part, with the matching
  slices of the kernel: no concatenated tensor (on 2 CPU cores OpenVINO spent 10 % of the network's time
  copying them);
- **a 3x3x3 convolution of a nearest-neighbour 2x up-sampling is a transposed 4x4x4 convolution of stride 2**
  (padding 1) of the low-resolution input. Along one axis output ``2i`` sees inputs ``i-1`` and ``i`` and
  output ``2i+1`` sees ``i`` and ``i+1``, each through a sum of the kernel's taps: with taps ``w0, w1, w2``
  (offsets -1, 0, +1) the transposed kernel is ``[w2, w1 + w2, w0 + w1, w0]`` (:data:`TAPS`), and in 3D the
  product of that along each axis. The zero padding at the volume's faces is the same on both sides. The
  convolution then runs on an eighth of the voxels: 8 instead of 27 multiply-adds per output voxel and
  channel pair, and no up-sampled tensor.

Only the rounding of float sums changes: on the shipped model the logits moved by at most 6e-6, and the
0-255 output not at all, on a 128x256x256 phantom. The rewritten network has no parameters of its own to
train; it is built from a trained one by :func:`rewrite_decoder` (through
:func:`tomoseg.model.inference_copy`), for the backends where it measures faster (docs/segment.md). A change
to what it builds must change :data:`tomoseg.architecture.INFERENCE_GRAPH`, which names the converted copies
OpenVINO keeps in its cache.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import TomosegError
from .model import encode

#: Row ``k`` of the transposed kernel along one axis sums the 3x3x3 kernel's taps marked 1 in it.
TAPS = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))


def transposed_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The stride-2 4x4x4 transposed-convolution kernel ``(in, out, 4, 4, 4)`` equal to the 3x3x3 convolution
    ``weight`` ``(out, in, 3, 3, 3)`` applied after a nearest-neighbour 2x up-sampling (summed in float64)."""
    taps = torch.tensor(TAPS, dtype=torch.float64, device=weight.device)
    kernel = torch.einsum("ai,bj,ck,oxijk->xoabc", taps, taps, taps, weight.detach().double())
    return kernel.to(weight.dtype).contiguous()


class UpLevel(nn.Module):
    """One decoder level: ``rest(up(x) + skip_conv(skip))``, equal to ``block(cat(upsample(x), skip))`` of the
    trained network (``rest`` is the block after its first convolution: BatchNorm or its folded Identity, ReLU,
    the second convolution...)."""

    def __init__(self, block: nn.Sequential, low_channels: int):
        super().__init__()
        conv = block[0]
        if not isinstance(conv, nn.Conv3d) or conv.kernel_size != (3, 3, 3) or conv.padding != (1, 1, 1):
            raise TomosegError(f"cannot rewrite a decoder block that starts with {conv!r}")
        out, cin = conv.out_channels, conv.in_channels
        self.up = nn.ConvTranspose3d(low_channels, out, 4, stride=2, padding=1, bias=False)
        self.skip_conv = nn.Conv3d(cin - low_channels, out, 3, padding=1, bias=conv.bias is not None)
        with torch.no_grad():
            self.up.weight.copy_(transposed_kernel(conv.weight[:, :low_channels]))
            self.skip_conv.weight.copy_(conv.weight[:, low_channels:])
            if conv.bias is not None:
                self.skip_conv.bias.copy_(conv.bias)
        self.rest = nn.Sequential(*list(block)[1:])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.rest(self.up(x) + self.skip_conv(skip))


class InferenceUNet(nn.Module):
    """A :class:`~tomoseg.model.UNet3D` with its decoder rewritten (see the module's docstring); same input and
    logits, same ``config``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.config = model.config
        self.down = model.down
        widths = [model.config.base_features * 2 ** i for i in range(model.config.levels)]
        self.up = nn.ModuleList(UpLevel(block, widths[i + 1])
                                for block, i in zip(model.up, reversed(range(model.config.levels - 1))))
        self.head = model.head
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = encode(self, x)
        for level in self.up:
            x = level(x, skips.pop())
        return self.head(x)


def rewrite_decoder(model: nn.Module) -> InferenceUNet:
    """``model`` (a :class:`~tomoseg.model.UNet3D`, BatchNorms folded or not, in evaluation mode) with its decoder
    rewritten; the encoder and head modules are shared with ``model``, not copied.

    Examples
    --------
    >>> import torch, tomoseg
    >>> from tomoseg.inference_graph import rewrite_decoder
    >>> model = tomoseg.UNet3D(levels=3, base_features=4).eval()
    >>> x = torch.randn(1, 1, 8, 16, 8)
    >>> with torch.no_grad():
    ...     bool((rewrite_decoder(model)(x) - model(x)).abs().max() < 1e-4)
    True
    """
    return InferenceUNet(model)
