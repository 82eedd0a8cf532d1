"""Where training patches come from.

``random``: patches at random places, a share of them centred on an object
voxel (at 0.2 % foreground, uniform sampling collapses to all background).
``paper``: the paper's non-overlapping sub-volumes, in a shuffled order, from
the first 60 % of each volume's slices (30 % validation, 10 % test).
"""

from __future__ import annotations

import numpy as np

from ..errors import TomosegError
from .augment import augment, crop_size, zoom_to
from .config import AugmentConfig, SamplingConfig
from .data import TrainingVolume

PAPER_SPLIT = (0.6, 0.3, 0.1)


def split_ranges(depth: int) -> dict[str, tuple[int, int]]:
    a = int(round(depth * PAPER_SPLIT[0]))
    b = int(round(depth * (PAPER_SPLIT[0] + PAPER_SPLIT[1])))
    return {"train": (0, a), "validation": (a, b), "test": (b, depth)}


def check_fits(volumes: list[TrainingVolume], sampling: SamplingConfig, augment_cfg: AugmentConfig) -> None:
    if not volumes:
        raise TomosegError("the training set is empty")
    need = int(np.ceil(sampling.patch_size / min(1.0, min(augment_cfg.zoom))))
    for v in volumes:
        depth = v.shape[0]
        if sampling.mode == "paper":
            depth = split_ranges(depth)["train"][1]
        if min((depth,) + v.shape[1:]) < need:
            raise TomosegError(f"{v.name}: volume {v.shape} (training part {depth} slices) is smaller than the "
                               f"patch size {need}; lower sampling.patch_size or use larger volumes")


def _crop(v: TrainingVolume, size: int, rng, centre=None, zrange=None):
    lo_z, hi_z = zrange or (0, v.shape[0])
    starts = []
    for axis, (lo, hi) in enumerate([(lo_z, hi_z), (0, v.shape[1]), (0, v.shape[2])]):
        top = hi - size
        if centre is not None:
            s = int(np.clip(centre[axis] - size // 2 + rng.integers(-size // 4, size // 4 + 1), lo, top))
        else:
            s = int(rng.integers(lo, top + 1))
        starts.append(s)
    sl = tuple(slice(s, s + size) for s in starts)
    return v.image[sl], v.labels[sl]


def _normalize_patch(image: np.ndarray) -> np.ndarray:
    sd = float(image.std())
    return ((image - image.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


class RandomSampler:
    def __init__(self, volumes, sampling: SamplingConfig, augment_cfg: AugmentConfig, ignore_value: int,
                 per_patch_norm: bool = False):
        self.volumes, self.sampling, self.augment_cfg = volumes, sampling, augment_cfg
        self.ignore_value, self.per_patch_norm = ignore_value, per_patch_norm
        check_fits(volumes, sampling, augment_cfg)

    def patch(self, rng, *, train: bool = True):
        p = self.sampling.patch_size
        v = self.volumes[int(rng.integers(len(self.volumes)))]
        size, _ = crop_size(p, self.augment_cfg, rng) if train else (p, 1.0)
        size = min(size, *v.shape)
        centre = None
        if len(v.foreground) and rng.random() < self.sampling.foreground_fraction:
            centre = v.foreground[int(rng.integers(len(v.foreground)))]
        image, labels = _crop(v, size, rng, centre)
        image, labels = zoom_to(image, labels, p, self.ignore_value)
        if self.per_patch_norm:
            image = _normalize_patch(image)
        if train:
            image, labels = augment(image, labels, self.augment_cfg, rng)
        return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(labels)

    def batch(self, rng, *, train: bool = True):
        pairs = [self.patch(rng, train=train) for _ in range(self.sampling.batch_size)]
        x = np.stack([a for a, _ in pairs])[:, None]
        y = np.stack([b for _, b in pairs])[:, None]
        return x, y


class PaperSampler(RandomSampler):
    """Non-overlapping ``patch_size`` sub-volumes of the training slices, shuffled each epoch."""

    def __init__(self, volumes, sampling, augment_cfg, ignore_value, per_patch_norm=False):
        super().__init__(volumes, sampling, augment_cfg, ignore_value, per_patch_norm)
        p = sampling.patch_size
        self.grid = []
        for i, v in enumerate(volumes):
            lo, hi = split_ranges(v.shape[0])["train"]
            for z in range(lo, hi - p + 1, p):
                for y in range(0, v.shape[1] - p + 1, p):
                    for x in range(0, v.shape[2] - p + 1, p):
                        self.grid.append((i, z, y, x))
        self._order: list = []

    def patch(self, rng, *, train: bool = True):
        if not self._order:
            self._order = list(rng.permutation(len(self.grid)))
        i, z, y, x = self.grid[self._order.pop()]
        p = self.sampling.patch_size
        v = self.volumes[i]
        image = v.image[z:z + p, y:y + p, x:x + p]
        labels = v.labels[z:z + p, y:y + p, x:x + p]
        if self.per_patch_norm:
            image = _normalize_patch(image)
        if train:
            size, _ = crop_size(p, self.augment_cfg, rng)
            if size < p:  # up-scaling: zoom into a random part of the sub-volume
                o = rng.integers(0, p - size + 1, 3)
                sl = tuple(slice(a, a + size) for a in o)
                image, labels = zoom_to(image[sl], labels[sl], p, self.ignore_value)
            image, labels = augment(image, labels, self.augment_cfg, rng)
        return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(labels)


def make_sampler(volumes, sampling: SamplingConfig, augment_cfg: AugmentConfig, ignore_value: int,
                 per_patch_norm: bool):
    cls = PaperSampler if sampling.mode == "paper" else RandomSampler
    return cls(volumes, sampling, augment_cfg, ignore_value, per_patch_norm)
