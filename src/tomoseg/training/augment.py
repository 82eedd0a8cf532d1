"""Augmentations applied to image and label together: flips, 90° rotations, the paper's up-scaling
(random zoom), intensity scale and shift, noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .config import AugmentConfig


def crop_size(patch: int, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[int, float]:
    """Edge of the crop to take so that zooming it gives ``patch``; (patch, 1.0) when not zooming."""
    lo, hi = cfg.zoom
    if hi <= lo or rng.random() >= cfg.zoom_probability:
        return patch, 1.0
    factor = rng.uniform(lo, hi)
    return max(8, int(round(patch / factor))), factor


def zoom_to(image: np.ndarray, labels: np.ndarray, patch: int, ignore_value: int):
    if image.shape == (patch,) * 3:
        return image, labels
    factors = [patch / s for s in image.shape]
    image = ndimage.zoom(image, factors, order=1, mode="nearest", grid_mode=True)
    labels = ndimage.zoom(labels, factors, order=0, mode="nearest", grid_mode=True)
    return image[:patch, :patch, :patch], labels[:patch, :patch, :patch]


def augment(image: np.ndarray, labels: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """Random geometric and intensity changes of one (z, y, x) patch and its labels."""
    if cfg.flips:
        for axis in range(3):
            if rng.random() < 0.5:
                image, labels = np.flip(image, axis), np.flip(labels, axis)
    if cfg.rot90:
        k = int(rng.integers(4))
        image, labels = np.rot90(image, k, axes=(1, 2)), np.rot90(labels, k, axes=(1, 2))
    image = np.ascontiguousarray(image, dtype=np.float32)
    labels = np.ascontiguousarray(labels)
    if cfg.intensity_scale:
        image *= np.float32(1 + rng.uniform(-cfg.intensity_scale, cfg.intensity_scale))
    if cfg.intensity_shift:
        image += np.float32(rng.uniform(-cfg.intensity_shift, cfg.intensity_shift))
    if cfg.noise:
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0, cfg.noise))
    return image, labels
