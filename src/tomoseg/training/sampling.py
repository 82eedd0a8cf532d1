"""Where training patches come from: a data source whose ``batch()`` gives tensors on the training device.

The training volumes are held as tensors on the device (on the CPU they share the NumPy arrays'
memory). Each batch is cut, zoomed, normalized and augmented by tensor operations there: the Python
work per patch is a few scalar choices, never a loop over voxels, so on a GPU the data path keeps up
with the network and on a CPU it uses PyTorch's threads.

Where patches are:

``random``: patches at random places, a share of them centred (with jitter) on an object voxel (at
0.2 % foreground, uniform sampling collapses to all background).
``paper``: the paper's non-overlapping sub-volumes, in a shuffled order, from the first 60 % of each
volume's slices (30 % validation, 10 % test).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TomosegError
from .augment import augment_batch, crop_size, zoom_to
from .config import AugmentConfig, SamplingConfig
from .data import TrainingVolume

PAPER_SPLIT = (0.6, 0.3, 0.1)


def split_ranges(depth: int) -> dict[str, tuple[int, int]]:
    a = int(round(depth * PAPER_SPLIT[0]))
    b = int(round(depth * (PAPER_SPLIT[0] + PAPER_SPLIT[1])))
    return {"train": (0, a), "validation": (a, b), "test": (b, depth)}


def split_part(volume: TrainingVolume, part: str) -> TrainingVolume:
    """The slices of ``volume`` in one part of the paper's split (``train``, ``validation`` or ``test``), as a
    training volume of its own (views of the arrays, not copies)."""
    lo, hi = split_ranges(volume.shape[0])[part]
    return _slices(volume, lo, hi, part)


def _slices(volume: TrainingVolume, lo: int, hi: int, part: str) -> TrainingVolume:
    """Slices ``lo..hi-1`` of ``volume``, named by their slices in its file (a crop's origin added)."""
    labels = volume.labels[lo:hi]
    z0 = volume.origin[0]
    return TrainingVolume(f"{volume.name} [{part} slices {z0 + lo}..{z0 + hi - 1}]", volume.image[lo:hi], labels,
                          np.argwhere(labels == 1).astype(np.int32), voxel_size_nm=volume.voxel_size_nm,
                          part="" if part == "train" else part, origin=(z0 + lo,) + tuple(volume.origin[1:]),
                          source=volume.source)


def hold_out(volumes: list[TrainingVolume], share: float, *, ignore_value: int, need: int,
             divisor: int) -> tuple[list[TrainingVolume], list[TrainingVolume]] | str:
    """``(training parts, held-out parts)`` of the volumes of one file (its slabs, :func:`~.data.load_pairs`, in
    the order of their slices, or one whole volume): the last ``share`` of their annotated slices (those with a
    voxel other than ``ignore_value``) and the slices after them are held out, the slices before them train.
    Along z, so that no training patch holds a held-out voxel (sparse annotation: a share of the annotated
    slices, not of all). A slab whose slices before the cut hold no annotated slice (only the context of the first
    held-out slice) is held out whole. Where that leaves a training part thinner than ``need`` (a patch) or the
    held-out part of a slab cut in two thinner than ``divisor``, or the volumes have fewer than two annotated
    slices: why, as a string.

    Examples
    --------
    >>> labels = np.full((40, 8, 8), 255, np.uint8); labels[10:30] = 1     # only slices 10..29 annotated
    >>> v = TrainingVolume("v", np.zeros(labels.shape, np.float32), labels, np.argwhere(labels == 1))
    >>> train, held = hold_out([v], 0.2, ignore_value=255, need=8, divisor=2)
    >>> train[0].shape[0], held[0].name
    (26, 'v [held-out slices 26..39]')
    """
    annotated = [np.flatnonzero((v.labels != ignore_value).any(axis=(1, 2))) for v in volumes]
    in_file = np.concatenate([a + v.origin[0] for a, v in zip(annotated, volumes)])  # slice numbers in the file
    if len(in_file) < 2:
        return "fewer than two annotated slices"
    held = min(len(in_file) - 1, max(1, int(np.ceil(share * len(in_file)))))
    cut = int(in_file[len(in_file) - held])
    train, out = [], []
    for v, marked in zip(volumes, annotated):
        z0, depth = v.origin[0], v.shape[0]
        local = min(max(cut - z0, 0), depth)
        if not np.any(marked < local):  # only the context before the first held-out slice: held out with it
            local = 0
        if local > 0:
            if local < need:
                return f"its training part would be {local} slices, thinner than a patch ({need})"
            train.append(v if local == depth else _slices(v, 0, local, "train"))
        if local < depth:
            if depth - local < divisor:
                return (f"its held-out part would be {depth - local} slices, thinner than the network's divisor "
                        f"({divisor})")
            out.append(_slices(v, local, depth, "held-out"))
    return train, out


def largest_crop(sampling: SamplingConfig, augment_cfg: AugmentConfig) -> int:
    """The edge of the largest crop a patch is cut from (a zoom below 1 cuts more than a patch, then shrinks it)."""
    return int(np.ceil(sampling.patch_size / min(1.0, min(augment_cfg.zoom))))


def check_fits(volumes: list[TrainingVolume], sampling: SamplingConfig, augment_cfg: AugmentConfig) -> None:
    if not volumes:
        raise TomosegError("the training set is empty")
    need = largest_crop(sampling, augment_cfg)
    for v in volumes:
        depth = v.shape[0]
        if sampling.mode == "paper":
            depth = split_ranges(depth)["train"][1]
        if min((depth,) + v.shape[1:]) < need:
            raise TomosegError(f"{v.name}: volume {v.shape} (training part {depth} slices) is smaller than the "
                               f"patch size {need}; lower sampling.patch_size or use larger volumes")


class AnnotatedVoxels:
    """The voxels of a volume's labels other than the ignore value, to draw one uniformly: their count per row
    (z, y), cumulated, is all that is kept (a slice is read at a time to count them)."""

    def __init__(self, labels: np.ndarray, ignore_value: int):
        self.labels, self.ignore = labels, ignore_value
        rows = np.empty(labels.shape[:2], np.int64)
        for z in range(labels.shape[0]):
            rows[z] = np.count_nonzero(labels[z] != ignore_value, axis=1)
        self.cumulative = np.cumsum(rows.ravel())
        self.count = int(self.cumulative[-1]) if self.cumulative.size else 0
        self.every_voxel = self.count == labels.size

    def pick(self, rng: np.random.Generator) -> tuple[int, int, int]:
        u = int(rng.integers(self.count))
        row = int(np.searchsorted(self.cumulative, u, side="right"))
        before = int(self.cumulative[row - 1]) if row else 0
        z, y = divmod(row, self.labels.shape[1])
        return z, y, int(np.flatnonzero(self.labels[z, y] != self.ignore)[u - before])


def _weighted(rng: np.random.Generator, weights) -> int:
    """An index drawn with probability proportional to ``weights``."""
    cumulative = np.cumsum(weights)
    return int(np.searchsorted(cumulative, rng.integers(int(cumulative[-1])), side="right"))


class RandomPlaces:
    """Random crops, a share centred on objects: on an object voxel drawn uniformly (``centre_on: voxels``,
    so a radius-8 object is about 150x as likely as a radius-1.5 one), or on a voxel of an object drawn
    uniformly (``centre_on: objects``, every object alike).

    The other crops (``sampling.patches_from: annotation``) are centred on an annotated voxel (a label other than
    the ignore value) drawn uniformly, as nnU-Net v2 does with an ignore label: with a few annotated slices, crops
    drawn anywhere mostly held none, and their step learned nothing (review R5). A volume with no unannotated voxel
    draws them anywhere, as before; so does ``patches_from: box`` (runs started before it).

    A volume is drawn uniformly, as a file: the slabs of one file (volumes sharing a ``source``) count as one, and
    the slab is then drawn by what the crop is centred on (object voxels, objects, or annotated voxels)."""

    def __init__(self, volumes: list[TrainingVolume], sampling: SamplingConfig, ignore_value: int = 255):
        self.shapes = [v.shape for v in volumes]
        self.labels = [v.labels for v in volumes]
        self.foreground = [v.foreground for v in volumes]
        self.objects = [v.objects for v in volumes] if sampling.centre_on == "objects" else None
        self.fraction = sampling.foreground_fraction
        self.ignore = ignore_value
        self.on_annotation = sampling.patches_from == "annotation"
        self._annotated: dict[int, AnnotatedVoxels] = {}
        groups: dict = {}
        for i, v in enumerate(volumes):
            groups.setdefault(v.source or i, []).append(i)
        self.groups = list(groups.values())

    def annotated(self, i: int) -> AnnotatedVoxels:
        if i not in self._annotated:  # built when first needed: a pass over the labels
            self._annotated[i] = AnnotatedVoxels(self.labels[i], self.ignore)
        return self._annotated[i]

    def _centre(self, rng: np.random.Generator, i: int):
        fg = self.foreground[i]
        if self.objects is None:
            return fg[int(rng.integers(len(fg)))]
        order, starts = self.objects[i]
        k = int(rng.integers(len(starts) - 1))
        return fg[order[int(rng.integers(starts[k], starts[k + 1]))]]

    def _on_object(self, i: int) -> int:
        """What an object-centred crop draws among in volume ``i``: object voxels, or objects."""
        return len(self.foreground[i]) if self.objects is None else len(self.objects[i][1]) - 1

    def __call__(self, rng: np.random.Generator, size: int):
        group = self.groups[int(rng.integers(len(self.groups)))]
        on_object = any(len(self.foreground[i]) for i in group) and rng.random() < self.fraction
        i = group[0]
        if len(group) > 1:
            i = group[_weighted(rng, [self._on_object(i) if on_object else self.annotated(i).count for i in group])]
        shape = self.shapes[i]
        size = min(size, *shape)
        centre = None
        if on_object:
            centre = self._centre(rng, i)
        elif self.on_annotation and not self.annotated(i).every_voxel and self.annotated(i).count:
            centre = self.annotated(i).pick(rng)
        starts = []
        for axis, extent in enumerate(shape):
            top = extent - size
            if centre is not None:
                s = int(np.clip(centre[axis] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, top))
            else:
                s = int(rng.integers(0, top + 1))
            starts.append(s)
        return i, starts, size


class PaperGrid:
    """Non-overlapping sub-volumes of the training slices, shuffled each pass; zoom takes a smaller
    random part of the sub-volume, or (zoom below 1) a larger crop centred on it, inside the training slices
    and the volume (never reaching into the validation or test slices)."""

    def __init__(self, volumes: list[TrainingVolume], sampling: SamplingConfig):
        p = sampling.patch_size
        self.patch = p
        self.grid = []
        self.bounds = []  # per volume: the (start, stop) of the training part along z, y and x
        for i, v in enumerate(volumes):
            lo, hi = split_ranges(v.shape[0])["train"]
            self.bounds.append(((lo, hi), (0, v.shape[1]), (0, v.shape[2])))
            for z in range(lo, hi - p + 1, p):
                for y in range(0, v.shape[1] - p + 1, p):
                    for x in range(0, v.shape[2] - p + 1, p):
                        self.grid.append((i, z, y, x))
        self._order: list = []

    def __call__(self, rng: np.random.Generator, size: int):
        if not self._order:
            self._order = [int(k) for k in rng.permutation(len(self.grid))]
        i, *starts = self.grid[self._order.pop()]
        if size < self.patch:
            starts = [int(s + o) for s, o in zip(starts, rng.integers(0, self.patch - size + 1, 3))]
        elif size > self.patch:
            bounds = self.bounds[i]
            size = min(size, *(hi - lo for lo, hi in bounds))
            starts = [int(np.clip(s + (self.patch - size) // 2, lo, hi - size)) for s, (lo, hi) in zip(starts, bounds)]
        return i, starts, size


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """The array as a tensor on ``device`` (sharing memory on the CPU where the array is writable)."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(device)


class PatchSource:
    """Batches of (image, label) patches, cut and augmented on ``device``.

    Parameters
    ----------
    volumes : list of TrainingVolume
    sampling, augment : the config sections
    ignore_value : int
        The label value of voxels that are not annotated (kept through every transform).
    per_patch_norm : bool
        Z-score each patch by its own statistics (the paper's code) instead of the volume's.
    device : torch.device
    seed : int
        Seeds the device generator of the noise fields.
    """

    def __init__(self, volumes, sampling: SamplingConfig, augment_cfg: AugmentConfig, ignore_value: int,
                 per_patch_norm: bool = False, device: torch.device | str = "cpu", seed: int = 0):
        check_fits(volumes, sampling, augment_cfg)
        self.device = torch.device(device)
        self.sampling, self.augment_cfg = sampling, augment_cfg
        self.ignore_value, self.per_patch_norm = ignore_value, per_patch_norm
        self.images = [_tensor(v.image, self.device) for v in volumes]
        self.labels = [_tensor(v.labels, self.device) for v in volumes]
        self.places = PaperGrid(volumes, sampling) if sampling.mode == "paper" else \
            RandomPlaces(volumes, sampling, ignore_value)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(seed))

    def batch(self, rng: np.random.Generator, *, train: bool = True, size: int | None = None):
        """A batch ``(x, y)``: float32 (n, 1, p, p, p) images and uint8 labels, on the device."""
        n = size or self.sampling.batch_size
        p = self.sampling.patch_size
        x = torch.empty((n, 1, p, p, p), dtype=torch.float32, device=self.device)
        y = torch.empty((n, 1, p, p, p), dtype=torch.uint8, device=self.device)
        for k in range(n):
            crop = crop_size(p, self.augment_cfg, rng) if train else p
            i, starts, crop = self.places(rng, crop)
            sl = tuple(slice(s, s + crop) for s in starts)
            image, labels = zoom_to(self.images[i][sl], self.labels[i][sl], p)
            x[k, 0] = image
            y[k, 0] = labels
        if self.per_patch_norm:
            mean = x.mean(dim=(2, 3, 4), keepdim=True)
            sd = x.std(dim=(2, 3, 4), keepdim=True)
            x = (x - mean) / torch.where(sd > 0, sd, torch.ones_like(sd))
        if train:
            x, y = augment_batch(x, y, self.augment_cfg, rng, self.gen)
        return x, y

    def pass_state(self) -> torch.Tensor | None:
        """What is left of the paper grid's shuffled pass (int64; None in random mode), for an exact resume."""
        if not isinstance(self.places, PaperGrid):
            return None
        return torch.as_tensor(self.places._order, dtype=torch.int64)

    def set_pass_state(self, order: torch.Tensor) -> None:
        if isinstance(self.places, PaperGrid):
            self.places._order = [int(k) for k in order.tolist()]

    def generator_state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_generator_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state.cpu())
