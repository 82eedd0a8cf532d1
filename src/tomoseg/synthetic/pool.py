"""One phantom of a training pool, made from its description (seed, preset, shape, physics ranges).

This is the function the pool's worker processes run. It lives here, free of PyTorch, so that a worker starts
with NumPy, SciPy and scikit-image only: a worker importing the training package (and with it PyTorch) took
1.8 s to start two on 2 cores, against 0.6 s without.
"""

from __future__ import annotations

import numpy as np

from .config import PRESETS, PhantomConfig, preset
from .phantom import check_fits, make_phantom

# what physics-mode phantoms draw from their [low, high] ranges, in this order (the order of the draws)
RANGE_KEYS = ("photons", "angles", "gain_error", "object_gray", "radius_mean", "blur_sigma")


def randomized_overrides(preset_name: str, rng: np.random.Generator) -> dict:
    """A preset's look jittered: noise, contrast, rings, sizes and the pillar drawn around the preset's values."""
    base = PhantomConfig.from_dict(PRESETS[preset_name])
    return {
        "noise_sd": base.noise_sd * rng.uniform(0.7, 1.3),
        "object_gray": base.object_gray + rng.uniform(-12, 12),
        "matrix_gray": base.matrix_gray + rng.uniform(-15, 15),
        "ring_strength": base.ring_strength * rng.uniform(0.5, 2.0),
        "edge_ring_gray": base.edge_ring_gray * rng.uniform(0.4, 1.5),
        "blur_sigma": base.blur_sigma * rng.uniform(0.7, 1.4),
        "radius_mean": base.radius_mean * rng.uniform(0.85, 1.15),
        "pillar_radius": float(np.clip(base.pillar_radius * rng.uniform(0.75, 1.1), 0.15, 0.48)),
        "z_drift": base.z_drift * rng.uniform(0, 2),
    }


def physics_overrides(ranges: dict, rng: np.random.Generator) -> dict:
    """Acquisition and object parameters of one physics-mode phantom, each drawn from its ``[low, high]`` range."""
    out = {key: float(rng.uniform(*ranges[key])) for key in RANGE_KEYS}
    out["angles"] = int(round(out["angles"]))
    return out


def _overrides(item: dict, rng: np.random.Generator) -> dict:
    if item["physics"] is not None:
        return physics_overrides(item["physics"], rng)
    return randomized_overrides(item["preset"], rng) if item["randomize"] else {}


def generate_item(item: dict) -> tuple[np.ndarray, np.ndarray]:
    """One phantom of a pool as ``(image uint8, labels uint8)``; ``item`` as from
    :func:`tomoseg.training.data.phantom_specs`. The same item gives the same phantom."""
    rng = np.random.default_rng(item["seed"])
    overrides = _overrides(item, rng)
    ph = make_phantom(tuple(item["shape"]), rng=rng, preset_name=item["preset"], **overrides)
    return ph.image, ph.labels


def check_item(item: dict) -> None:
    """Refuse an item whose shape cannot hold its phantom (the pillar, the largest objects), without generating
    it: the same draws as :func:`generate_item` make its configuration."""
    overrides = _overrides(item, np.random.default_rng(item["seed"]))
    check_fits(tuple(item["shape"]), preset(item["preset"], **overrides))
