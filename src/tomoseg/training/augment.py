"""Augmentations of a batch of patches and their labels, as tensor operations on the training device.

Flips, 90° rotations in the (y, x) plane, the paper's up-scaling (a smaller crop zoomed to the patch
size: trilinear for images, nearest for labels), intensity scale and shift, and Gaussian noise. Labels
follow images exactly: flips and rotations are permutations of voxels, and zoomed labels take the
nearest voxel's value, so 0, 1 and the ignore value stay what they were.

Random choices: the scalar decisions come from a NumPy ``Generator`` (cheap, and its state is saved
for resume), the noise fields from a ``torch.Generator`` on the device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .config import AugmentConfig


def crop_size(patch: int, cfg: AugmentConfig, rng: np.random.Generator) -> int:
    """Edge of the crop to take so that zooming it gives ``patch`` (``patch`` itself when not zooming)."""
    lo, hi = cfg.zoom
    if lo == hi == 1 or rng.random() >= cfg.zoom_probability:
        return patch
    return max(8, int(round(patch / (lo if lo == hi else rng.uniform(lo, hi)))))


def zoom_to(image: torch.Tensor, labels: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom one (z, y, x) crop and its labels to ``patch``³."""
    if tuple(image.shape) == (patch,) * 3:
        return image, labels
    size = (patch,) * 3
    image = F.interpolate(image[None, None].float(), size=size, mode="trilinear", align_corners=False)[0, 0]
    labels = F.interpolate(labels[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return image, labels.to(torch.uint8)


def _geometric(t: torch.Tensor, dims: list[int], k: int) -> torch.Tensor:
    if dims:
        t = t.flip(dims)
    if k:
        t = torch.rot90(t, k, dims=(2, 3))
    return t


def augment_batch(image: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random geometric and intensity changes of a (n, 1, z, y, x) batch; ``image`` is changed in place.

    Each patch gets one flip (over the axes drawn) and one rotation, image and labels alike: a copy or two
    per patch, whatever the device; the intensity changes and the noise are one batched expression.
    """
    n, dev = image.shape[0], image.device
    flips = rng.random((n, 3)) < 0.5 if cfg.flips else np.zeros((n, 3), bool)
    square = image.shape[-1] == image.shape[-2]
    ks = rng.integers(0, 4, n) if cfg.rot90 and square else np.zeros(n, int)
    for i in range(n):
        dims = [d + 1 for d in range(3) if flips[i, d]]  # image[i] is (1, z, y, x)
        if dims or ks[i]:
            image[i] = _geometric(image[i], dims, int(ks[i]))
            labels[i] = _geometric(labels[i], dims, int(ks[i]))
    shape = (n, 1, 1, 1, 1)
    if cfg.intensity_scale:
        scale = 1 + rng.uniform(-cfg.intensity_scale, cfg.intensity_scale, n)
        image.mul_(torch.as_tensor(scale, dtype=image.dtype, device=dev).view(shape))
    if cfg.intensity_shift:
        shift = rng.uniform(-cfg.intensity_shift, cfg.intensity_shift, n)
        image.add_(torch.as_tensor(shift, dtype=image.dtype, device=dev).view(shape))
    if cfg.noise:
        sd = torch.as_tensor(rng.uniform(0, cfg.noise, n), dtype=image.dtype, device=dev).view(shape)
        image.add_(torch.randn(image.shape, generator=gen, device=dev, dtype=image.dtype).mul_(sd))
    return image, labels
