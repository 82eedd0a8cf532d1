"""The paper's 3D U-Net (Gaudez et al. 2022, Section 3.1).

Per level: two 3×3×3 convolutions ("same" padding), each followed by
BatchNorm and ReLU. Down: 2×2×2 max-pooling, then the next level doubles the
channels (the paper doubles *after* pooling, unlike Çiçek et al.). Up:
nearest-neighbour 2× up-sampling, concatenation with the skip connection, two
convolution blocks. Head: a 1×1×1 convolution. ``forward`` returns logits; apply
``torch.sigmoid`` for probabilities.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F

from .architecture import ModelConfig  # noqa: F401  (the architecture, torch-free)
from .errors import TomosegError




PRIOR_LOGIT = -4.6  # log(0.01 / 0.99)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
    )


class UNet3D(nn.Module):
    """The paper's 3D U-Net; ``UNet3D()`` is its 4-level, base-8 model (366,593 parameters).

    Parameters
    ----------
    levels : int
        Resolution levels (the paper's "layers"); ``levels - 1`` poolings.
    base_features : int
        Channels at the first level; doubled at each level below.

    Examples
    --------
    >>> import torch, tomoseg
    >>> model = tomoseg.UNet3D(levels=4, base_features=8)
    >>> tomoseg.count_parameters(model)
    (366593, 365889)
    >>> model(torch.zeros(1, 1, 16, 16, 16)).shape
    torch.Size([1, 1, 16, 16, 16])
    """

    def __init__(self, levels: int = 4, base_features: int = 8, in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        self.config = ModelConfig(levels, base_features, in_channels, out_channels)
        widths = [base_features * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(_block(cin, w))
            cin = w
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels - 1)))
        self.head = nn.Conv3d(widths[0], out_channels, 1)
        # start at the prior of rare objects (~1 %) rather than at p = 0.5: with Adam's steps of about the
        # learning rate, moving the output bias from 0 to -4.6 alone would take thousands of steps
        nn.init.constant_(self.head.bias, PRIOR_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = encode(self, x)
        for block in self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


def encode(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder of ``model`` (its ``down`` blocks, max-pooling between them) on ``x``, checked to have the sizes
    the network needs: the deepest features and the skip connections, shallowest first. Shared by
    :class:`UNet3D` and its rewritten inference form (:mod:`tomoseg.inference_graph`)."""
    d = model.config.divisor
    if x.ndim != 5 or any(s % d for s in x.shape[2:]):
        raise TomosegError(f"the model needs input (batch, channel, z, y, x) with sizes that are multiples of "
                           f"{d}, got {tuple(x.shape)}; pad the volume (the segment engine does this)")
    skips = []
    for i, block in enumerate(model.down):
        x = block(x)
        if i < len(model.down) - 1:
            skips.append(x)
            x = F.max_pool3d(x, 2)
    return x, skips


def build_model(config: ModelConfig | dict | None = None) -> UNet3D:
    """A fresh :class:`UNet3D` from a :class:`ModelConfig` or a dict of its fields."""
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        allowed = set(ModelConfig.__dataclass_fields__)
        unknown = set(config) - allowed
        if unknown:
            raise TomosegError(f"unknown model key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        config = ModelConfig(**config)
    return UNet3D(**config.to_dict())


def inference_copy(model: UNet3D, device="cpu", *, channels_last: bool | None = None,
                   precision: str = "f32", rewrite: bool = False) -> nn.Module:
    """A copy of ``model`` for inference only: evaluation mode, each BatchNorm folded into the convolution
    before it, on ``device``, in channels-last memory (``torch.channels_last_3d``) or not; by default as
    :func:`tomoseg.memory_order.channels_last_pays` decides for the device and ``precision``.

    Folding (PyTorch's ``fuse_conv_bn_eval``) turns ``BN(conv(x))`` into one convolution with rescaled
    weights and bias, so a pass over the activations per layer goes. The logits move by float rounding
    only (about 1e-5), below the 0-255 output's step. Channels-last memory lets oneDNN (CPU) pick faster
    3D convolution kernels: the two together run the 4-level network 2.2x as fast with PyTorch on 2 CPU
    cores (docs/segment.md). ``model`` itself is left as it was; the copy has no BatchNorm layers, so it
    is not for training or saving.

    ``rewrite`` also rewrites the decoder (:mod:`tomoseg.inference_graph`): no up-sampled or concatenated
    tensors, and a quarter fewer multiply-adds for the paper's model (12,060 instead of 16,316 per voxel); the
    logits again move by float rounding only.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if channels_last is None:
        from .memory_order import channels_last_pays

        channels_last = channels_last_pays(torch.device(device), precision)
    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:  # listed first: layers get replaced
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv3d) and isinstance(seq[i + 1], nn.BatchNorm3d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    if rewrite:
        from .inference_graph import rewrite_decoder

        folded = rewrite_decoder(folded)
    # the order asked for, also when the model was trained in the other one (its weights keep their order)
    order = torch.channels_last_3d if channels_last else torch.contiguous_format
    return folded.to(device, memory_format=order).requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameters, counted as Keras does.

    ``total`` adds the BatchNorm running means and variances (Keras's
    non-trainable weights) to the trainable ones; PyTorch's
    ``num_batches_tracked`` counters are not parameters and are left out.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return trainable + frozen + stats, trainable


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (hex) of what a module computes with: its architecture and every tensor of its state dict
    (name, dtype, shape and bytes, whatever its device or memory order). A model's identity where it differs
    from the file it was loaded from (:func:`tomoseg.inference.model_file.model_identity`), and the OpenVINO
    cache's key of a model made in memory (:func:`tomoseg.inference.backends.model_key`)."""
    import hashlib

    h = hashlib.sha256(f"{getattr(model, 'config', None)!r}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
