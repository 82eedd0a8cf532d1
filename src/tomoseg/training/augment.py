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
    if hi <= lo or rng.random() >= cfg.zoom_probability:
        return patch
    return max(8, int(round(patch / rng.uniform(lo, hi))))


def zoom_to(image: torch.Tensor, labels: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom one (z, y, x) crop and its labels to ``patch``³."""
    if tuple(image.shape) == (patch,) * 3:
        return image, labels
    size = (patch,) * 3
    image = F.interpolate(image[None, None].float(), size=size, mode="trilinear", align_corners=False)[0, 0]
    labels = F.interpolate(labels[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return image, labels.to(torch.uint8)


def _index(mask: np.ndarray, device) -> torch.Tensor | None:
    idx = np.flatnonzero(mask)
    return torch.as_tensor(idx, device=device) if len(idx) else None


def augment_batch(image: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random geometric and intensity changes of a (n, 1, z, y, x) batch; ``image`` is changed in place."""
    n, dev = image.shape[0], image.device
    if cfg.flips:
        flips = rng.random((n, 3)) < 0.5
        for axis in range(3):
            t = _index(flips[:, axis], dev)
            if t is not None:
                image[t] = image[t].flip(axis + 2)
                labels[t] = labels[t].flip(axis + 2)
    if cfg.rot90 and image.shape[-1] == image.shape[-2]:
        ks = rng.integers(0, 4, n)
        for k in (1, 2, 3):
            t = _index(ks == k, dev)
            if t is not None:
                image[t] = torch.rot90(image[t], k, dims=(3, 4))
                labels[t] = torch.rot90(labels[t], k, dims=(3, 4))
    shape = (n, 1, 1, 1, 1)
    if cfg.intensity_scale:
        scale = 1 + rng.uniform(-cfg.intensity_scale, cfg.intensity_scale, n)
        image *= torch.as_tensor(scale, dtype=image.dtype, device=dev).view(shape)
    if cfg.intensity_shift:
        shift = rng.uniform(-cfg.intensity_shift, cfg.intensity_shift, n)
        image += torch.as_tensor(shift, dtype=image.dtype, device=dev).view(shape)
    if cfg.noise:
        sd = torch.as_tensor(rng.uniform(0, cfg.noise, n), dtype=image.dtype, device=dev).view(shape)
        image += torch.randn(image.shape, generator=gen, device=dev, dtype=image.dtype) * sd
    return image, labels
