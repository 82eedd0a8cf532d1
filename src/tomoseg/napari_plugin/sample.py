"""napari sample data: a synthetic micropillar phantom with its exact labels."""

from __future__ import annotations

VOXEL_SIZE = (29.33, 29.33, 29.33)


def phantom(shape=(64, 192, 192), seed: int = 2027, preset: str = "default") -> list[tuple]:
    """The image and its exact truth, at the paper's voxel size (29.33 nm)."""
    from ..synthetic import make_phantom

    from .layers import placement

    ph = make_phantom(shape, rng=seed, preset_name=preset)
    return [(ph.image, {"name": "phantom", **placement(VOXEL_SIZE)}, "image"),
            (ph.labels, {"name": "truth", **placement(VOXEL_SIZE), "opacity": 0.5, "visible": False}, "labels")]
