"""Training volumes: image/label pairs from files, or phantoms generated from seeds, held in memory.

Images are z-score normalized with their whole-volume statistics (the same as
``segment`` uses), unless the config asks for the paper's per-patch
normalization. Labels are 0 (background), 1 (object) or the ignore value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TomosegError
from ..inference.normalization import normalize, volume_stats
from ..io import read_volume
from .config import DataConfig, PhantomData


@dataclass
class TrainingVolume:
    name: str
    image: np.ndarray        # float32; normalized unless per-patch normalization
    labels: np.ndarray       # uint8: 0, 1, or ignore
    foreground: np.ndarray   # (n, 3) coordinates of object voxels, for object-centred sampling

    @property
    def shape(self):
        return self.image.shape


def _prepare(name, image, labels, data: DataConfig) -> TrainingVolume:
    if image.shape != labels.shape:
        raise TomosegError(f"{name}: image {image.shape} and labels {labels.shape} differ in shape")
    values = np.unique(labels)
    bad = sorted(set(values.tolist()) - {0, 1, int(data.ignore_value)})
    if bad:
        raise TomosegError(f"{name}: labels hold values {bad[:5]}; use 0 (background), 1 (object) and "
                           f"{data.ignore_value} (not annotated)")
    labels = labels.astype(np.uint8, copy=False)
    present = set(values.tolist())
    if 1 not in present:
        ignore = int(data.ignore_value)
        if present <= {0, ignore} and ignore in present:
            raise TomosegError(f"{name}: labels hold only 0 and {ignore}, and {ignore} means 'not annotated' "
                               f"(data.ignore_value), so there is no object voxel to learn from. Write objects as "
                               f"1 (e.g. labels // {ignore} with numpy), or set data.ignore_value to another value "
                               "if every voxel is annotated")
        raise TomosegError(f"{name}: labels hold no object voxel (value 1); the model would learn background only. "
                           "Annotate objects as 1, background as 0 and unannotated voxels as "
                           f"{data.ignore_value}")
    if data.normalization == "volume":
        stats = volume_stats(image)
        image = normalize(image, stats)
    else:
        image = image.astype(np.float32, copy=False)
    foreground = np.argwhere(labels == 1).astype(np.int32)
    return TrainingVolume(name, image, labels, foreground)


def load_pairs(entries, data: DataConfig) -> list[TrainingVolume]:
    out = []
    for entry in entries:
        image = read_volume(entry["image"])
        labels = read_volume(entry["labels"])
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            raise TomosegError(f"{entry['labels']}: labels hold NaN or infinite values; use 0, 1 and "
                               f"{data.ignore_value}")
        out.append(_prepare(str(entry["image"]), image, labels, data))
    return out


def _randomized(preset_name: str, rng: np.random.Generator) -> dict:
    from ..synthetic import PRESETS, PhantomConfig

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


def phantom_volumes(spec: PhantomData, data: DataConfig, *, start: int, count: int) -> list[TrainingVolume]:
    """Phantoms ``start .. start+count-1``: seed ``spec.seed + i``, presets in turn."""
    from ..synthetic import make_phantom

    out = []
    for i in range(start, start + count):
        seed = spec.seed + i
        name = spec.presets[i % len(spec.presets)]
        rng = np.random.default_rng(seed)
        overrides = _randomized(name, rng) if spec.randomize else {}
        ph = make_phantom(spec.shape, rng=rng, preset_name=name, **overrides)
        out.append(_prepare(f"phantom[{name}, seed {seed}]", ph.image, ph.labels, data))
    return out
