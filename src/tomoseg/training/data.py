"""Training volumes: image/label pairs from files, or phantoms generated from seeds, held in memory.

Images are z-score normalized with their whole-volume statistics (the same as
``segment`` uses), unless the config asks for the paper's per-patch
normalization. Labels are 0 (background), 1 (object) or the ignore value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import TomosegError
from ..inference.normalization import nodata_mask, normalize, volume_stats
from ..objects.labelling import label_objects
from ..io import open_volume
from ..io.blocks import usable_cores
from ..synthetic.pool import RANGE_KEYS, generate_item
from .config import DataConfig, PhantomData


@dataclass
class TrainingVolume:
    name: str
    image: np.ndarray        # float32; normalized unless per-patch normalization
    labels: np.ndarray       # uint8: 0, 1, or ignore
    foreground: np.ndarray   # (n, 3) coordinates of object voxels (raster order), for object-centred sampling
    voxel_size_nm: tuple | None = None  # (z, y, x) from the image file, where it records one
    part: str = ""           # "" a whole volume; else the slices of one it holds, held out from training
    origin: tuple = (0, 0, 0)  # where this array starts in its file (a crop around the annotation: load_pairs)
    source: str = ""         # the image file of a data entry; the slabs of one entry (load_pairs) share it

    @property
    def shape(self):
        return self.image.shape

    @cached_property
    def objects(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, starts)``: object ``k``'s voxels are ``foreground[order[starts[k]:starts[k + 1]]]``
        (objects are 3D connected components, 26-connected, of the object voxels). For sampling that centres
        patches on objects chosen uniformly, whatever their size."""
        components, n = label_objects(self.labels == 1, connectivity=26)
        ids = components[tuple(self.foreground.T)]  # the component of each foreground voxel, raster order
        order = np.argsort(ids, kind="stable").astype(np.int64)
        starts = np.searchsorted(ids[order], np.arange(1, n + 2)).astype(np.int64)
        return order, starts


def _meaning(data: DataConfig) -> str:
    """What the label files' values mean, as a message says it."""
    m = data.labels or {"background": 0, "object": 1, "ignore": int(data.ignore_value)}
    return ", ".join(f"{m[k]} ({what})" for k, what in (("background", "background"), ("object", "object"),
                                                        ("ignore", "not annotated")) if k in m)


def map_labels(labels: np.ndarray, data: DataConfig, name: str = "labels") -> np.ndarray:
    """The label file's values as tomoseg's own (0 background, 1 object, ``data.ignore_value`` not annotated),
    as ``data.labels`` maps them; unchanged without a mapping. Values the mapping does not name are left as they
    are (outside 0..255: -1), for :func:`_prepare` to refuse by name."""
    m = data.labels
    if m is None:
        return labels
    out = np.full(labels.shape, data.ignore_value, np.uint8)
    named = np.zeros(labels.shape, bool)
    for key, value in (("background", 0), ("object", 1), ("ignore", data.ignore_value)):
        if key in m:
            hit = labels == m[key]
            out[hit] = value
            named |= hit
    if not named.all():
        other = np.unique(labels[~named])[:5]
        raise TomosegError(f"{name}: labels hold values {[v.item() for v in other]} that data.labels {m} does not "
                           "name; give each value of the label files a meaning there")
    return out


def _no_object_advice(labels: np.ndarray, present: set, data: DataConfig) -> str:
    """Why labels without an object voxel cannot train, and what to do, by what they hold (review R8)."""
    ignore = int(data.ignore_value)
    fix = f"Annotate some objects: the label values are {_meaning(data)}"
    if present == {ignore}:
        return f"no voxel is annotated: every voxel is marked 'not annotated'. {fix}"
    if present == {0, ignore}:
        unannotated = int(np.count_nonzero(labels == ignore))
        if data.labels is None and ignore == 255 and unannotated < labels.size / 2:
            return ("labels hold only 0 and 255, and 255 means 'not annotated' (data.ignore_value), so there is "
                    "no object voxel to learn from. If this is a binary mask with objects as 255 (as Fiji writes "
                    "them), write objects as 1 (labels // 255 with numpy)")
        return f"the annotation holds background only, no object voxel. {fix}"
    return f"labels hold no object voxel; the model would learn background only. {fix}"


def _prepare(name, image, labels, data: DataConfig, labels_name=None, voxel_size=None, *, stats=None,
             origin=(0, 0, 0)) -> TrainingVolume:
    if image.shape != labels.shape:
        raise TomosegError(f"{name}: image {image.shape} and labels {labels.shape} differ in shape")
    values = np.unique(labels)
    allowed = {0, 1, int(data.ignore_value)}
    bad = sorted(set(values.tolist()) - allowed)
    if bad:
        where = f"{labels_name} (the labels of {name})" if labels_name else name
        swapped = image.size and set(np.unique(image[:: max(1, image.shape[0] // 8)]).tolist()) <= allowed
        napari = (", or if unpainted voxels are 0 and background another value (napari, ilastik), say so in "
                  "data.labels, e.g. {object: 1, background: 2, ignore: 0}") if data.labels is None else ""
        raise TomosegError(f"{where}: labels hold values {bad[:5]}; use {_meaning(data)}{napari}"
                           + ("; the image holds only such values: are image and labels swapped?" if swapped else ""))
    labels = labels.astype(np.uint8, copy=False)
    present = set(values.tolist())
    if 1 not in present:
        raise TomosegError(f"{name}: " + _no_object_advice(labels, present, data))
    if data.normalization == "volume":  # the whole file's statistics where the array is a crop of it
        stats = stats if stats is not None else volume_stats(image)
        holes = nodata_mask(image, stats)
        image = normalize(image, stats)
        if holes is not None and holes.any():  # no data (NaN, ±inf, data.fill_value): nothing to learn there
            labels = np.where(holes, np.uint8(data.ignore_value), labels)
    else:
        image = image.astype(np.float32, copy=False)
    foreground = np.argwhere(labels == 1).astype(np.int32)
    return TrainingVolume(name, image, labels, foreground,
                          voxel_size_nm=tuple(float(v) for v in voxel_size) if voxel_size else None,
                          origin=tuple(int(o) for o in origin))


PHANTOM_VOXEL_NM = (29.33, 29.33, 29.33)  # the phantoms' voxel size (the paper's scans)
MEMORY_SHARE = 0.8  # of the available memory, at most, for the training pairs' arrays


def load_pairs(entries, data: DataConfig, *, context: int | None = None, slabs: bool = True) -> list[TrainingVolume]:
    """The image/label pairs of ``entries``, read and normalized (whole-volume statistics of each image file).

    ``context``: only the annotated voxels (labels other than ``data.ignore_value``) and this many voxels of image
    around them on every side are read and kept: one slab per run of annotated slices, around its annotated voxels
    (:func:`annotated_slabs`, at least ``2 * context`` along each axis), or with ``slabs=False`` one box around them
    all (``sampling.patches_from: box``, runs started before slabs). A scan of tens of GB annotated on a few slices
    or one box trains from those regions, in the memory they need; the slabs of one file are volumes of their own
    that share its ``source``. None reads the whole volumes (paper mode: its split is over the whole volume's
    slices). Pairs whose arrays would not fit in memory are refused before any is read, naming what to do."""
    from ..host_memory import available_memory

    planned, need = [], 0
    for entry in entries:
        with open_volume(entry["image"]) as volume, open_volume(entry["labels"]) as labels:
            if tuple(volume.shape) != tuple(labels.shape):
                raise TomosegError(f"{entry['image']}: image {tuple(volume.shape)} and labels "
                                   f"{tuple(labels.shape)} differ in shape ({entry['labels']})")
            unannotated, boxes = data.file_ignore, []
            if context is not None and unannotated is not None:
                boxes = annotated_slabs(labels, unannotated, context) if slabs else \
                    [b for b in [_grown(annotated_box(labels, unannotated), volume.shape, context)] if b]
            boxes = boxes or [tuple(slice(0, n) for n in volume.shape)]
            voxels = sum(int(np.prod([b.stop - b.start for b in box], dtype=np.int64)) for box in boxes)
            # float32 image, uint8 labels, and the file's arrays while they are converted
            need += voxels * (5 + np.dtype(volume.dtype).itemsize + np.dtype(labels.dtype).itemsize)
            planned.append((entry, boxes, voxels, int(np.prod(volume.shape, dtype=np.int64))))
    available = available_memory()  # also under a cgroup's limit (a SLURM job) or ulimit -v
    if available is not None and need > MEMORY_SHARE * available:
        raise TomosegError(_memory_advice(planned, need, available, data, context))
    out, sources = [], set()
    for k, (entry, boxes, voxels, whole) in enumerate(planned):
        name = str(entry["image"])
        # the slabs of one entry share a source; an image listed twice (to weigh it more) is two
        source = name if name not in sources else f"{name} (data entry {k + 1})"
        sources.add(source)
        with open_volume(entry["image"]) as volume, open_volume(entry["labels"]) as labels_file:
            stats = volume_stats(volume, fill=data.fill_value, objects=data.objects) \
                if data.normalization == "volume" else None
            for box in boxes:
                image, labels, voxel_size = np.asarray(volume[box]), np.asarray(labels_file[box]), volume.voxel_size
                if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
                    raise TomosegError(f"{entry['labels']}: labels hold NaN or infinite values; use 0, 1 and "
                                       f"{data.ignore_value}")
                labels = map_labels(labels, data, str(entry["labels"]))
                region = "" if voxels == whole else \
                    " [annotated region " + ",".join(f"{b.start}:{b.stop}" for b in box) + "]"
                out.append(_prepare(name + region, image, labels, data, labels_name=str(entry["labels"]),
                                    voxel_size=voxel_size, stats=stats, origin=tuple(b.start for b in box)))
                out[-1].source = source
        if len(boxes) == 1:  # several slabs: the file marks voxels as not annotated
            _warn_if_partial(out[-1].labels, data, str(entry["labels"]))
    return out


def _memory_advice(planned, need: int, available: int, data: DataConfig, context: int | None) -> str:
    """Why the training pairs are refused for memory, and what to do: mark what is not annotated, or (where it is
    marked already and only the annotated slabs are kept) keep less of them."""
    entry, boxes, voxels, whole = max(planned, key=lambda p: p[2])
    head = (f"the training pairs need about {need / 2**30:.1f} GiB in memory and {available / 2**30:.1f} GiB are "
            f"available; the largest, {entry['image']}, keeps ")
    if voxels == whole:
        return head + (f"the volume. Mark the voxels you did not annotate with {data.ignore_value} "
                       "(data.ignore_value): tomoseg then keeps only the annotated regions; or annotate a smaller "
                       "region, or crop the scan")
    sizes = "; ".join(" x ".join(str(b.stop - b.start) for b in box) for box in boxes[:4])
    more = f" and {len(boxes) - 4} more" if len(boxes) > 4 else ""
    return head + (f"only its annotated region{'s' if len(boxes) > 1 else ''} ({sizes}{more} voxels, with the "
                   f"{context} voxels of context each side that patches need), {voxels / whole:.0%} of it: the "
                   "annotation is sparse already. Annotate fewer slices or a smaller part of each (the regions "
                   "follow the annotated voxels), lower sampling.patch_size (the context is half a patch), or "
                   "train on a machine with more memory")


PARTIAL_FLAT_SHARE = 0.5    # of the object voxels on one-voxel-thin layers: painted slice by slice, not 3D objects
PARTIAL_SLICE_SHARE = 0.2   # of the slices holding object voxels: the objects of only some slices painted


def partial_annotation(labels: np.ndarray, ignore_value: int) -> str | None:
    """Where labels hold no ``ignore_value`` voxel yet look painted on some slices only (napari and ilastik leave
    unpainted voxels 0, which then train as background): how the object voxels lie; else None.

    Two signs: at least half of the object voxels have no object neighbour on either side along some axis (objects
    painted slice by slice, where real objects span several slices); or the object voxels lie on under a fifth of
    the z slices and at least half of them are in objects cut off at their first or last slice (widest there:
    painted slices cut the objects crossing their ends, where whole near-spherical objects taper). Objects on few
    slices of a fully labelled scan are not warned about.

    >>> lab = np.zeros((40, 16, 16), np.uint8); lab[[5, 20], 4:8, 4:8] = 1
    >>> partial_annotation(lab, 255)
    'on 2 of 40 slices, and 100 % of them on one-voxel-thin layers'
    >>> lab[5:12] = 255; partial_annotation(lab, 255) is None
    True
    """
    obj = labels == 1
    n = int(np.count_nonzero(obj))
    if n == 0 or np.any(labels == ignore_value):
        return None
    flat = 0.0
    for axis in range(3):
        if labels.shape[axis] < 3:
            continue
        alone = obj.copy()
        hi, lo = [slice(None)] * 3, [slice(None)] * 3
        hi[axis], lo[axis] = slice(1, None), slice(None, -1)
        alone[tuple(hi)] &= ~obj[tuple(lo)]
        alone[tuple(lo)] &= ~obj[tuple(hi)]
        flat = max(flat, np.count_nonzero(alone) / n)
    depth = labels.shape[0]
    on = obj.any(axis=(1, 2))
    slices = int(np.count_nonzero(on))
    if flat >= PARTIAL_FLAT_SHARE:
        return f"on {slices} of {depth} slices, and {round(100 * flat)} % of them on one-voxel-thin layers"
    if not (depth >= 8 and slices < PARTIAL_SLICE_SHARE * depth):
        return None
    # few slices alone is no sign: a fully labelled scan with few objects has them on few slices too. Painted
    # slices cut the objects that cross their ends, widest there; whole objects taper to their ends
    cut = _cut_share(obj[np.flatnonzero(on)[0]:np.flatnonzero(on)[-1] + 1])
    if cut < PARTIAL_FLAT_SHARE:
        return None
    return (f"on {slices} of {depth} slices, and {round(100 * cut)} % of them in objects widest on the first or "
            "last slice they reach (cut off there, where whole objects taper)")


def _cut_share(obj: np.ndarray) -> float:
    """The share of the object voxels of ``obj`` in objects (26-connected) whose largest cross-section along z lies
    on their first or last slice."""
    components, n = label_objects(obj, connectivity=26)
    z = np.nonzero(obj)[0]
    area = np.bincount(components[obj].astype(np.int64) * obj.shape[0] + z,
                       minlength=(n + 1) * obj.shape[0]).reshape(n + 1, obj.shape[0])[1:]
    has = area > 0
    first, last = has.argmax(axis=1), obj.shape[0] - 1 - has[:, ::-1].argmax(axis=1)
    rows, widest = np.arange(n), area.max(axis=1)
    cut = (area[rows, first] == widest) | (area[rows, last] == widest)
    return float(area[cut].sum() / area.sum())


def _warn_if_partial(labels: np.ndarray, data: DataConfig, name: str) -> None:
    from ..errors import warn

    where = partial_annotation(labels, data.ignore_value)
    if where is None:
        return
    mark = data.ignore_value if data.file_ignore is None else data.file_ignore
    unmarked = "data.labels names no value for them" if data.file_ignore is None else f"value {mark}"
    background = (data.labels or {}).get("background", 0)
    warn(f"{name}: no voxel is marked 'not annotated' ({unmarked}), so every voxel counts as annotated and every "
         f"{background} as background, but the object voxels lie {where}. If you painted only some slices (napari "
         "and ilastik leave unpainted voxels 0), the objects you did not paint train as background: mark the "
         f"unpainted voxels {mark}, or say what the values mean with data.labels, e.g. {{object: 1, background: 2, "
         "ignore: 0} (docs/training.md, 'Annotations from napari, Fiji and ilastik')")


def annotated_extents(labels, ignore_value: int) -> np.ndarray:
    """Per slice of ``labels``, where its voxels other than ``ignore_value`` lie: an (depth, 4) int64 array of the
    y start, y stop, x start and x stop (all 0 for a slice with none), read block by block in its storage chunks.

    >>> lab = np.full((4, 8, 8), 255, np.uint8); lab[1, 1:3, 5] = 0; lab[2, 6, 2:4] = 1
    >>> annotated_extents(lab, 255).tolist()
    [[0, 0, 0, 0], [1, 3, 5, 6], [6, 7, 2, 4], [0, 0, 0, 0]]
    """
    from ..io.blocks import block_grid, read_blocks, storage_chunks

    depth = labels.shape[0]
    lo, hi = np.full((depth, 2), np.iinfo(np.int64).max), np.full((depth, 2), -1)
    for block, values in read_blocks(labels, block_grid(tuple(labels.shape), storage_chunks(labels))):
        marked = values != ignore_value
        z = slice(block[0].start, block[0].start + marked.shape[0])
        for k, axis in enumerate((2, 1)):  # the y extent (any along x), then the x extent (any along y)
            seen = marked.any(axis=axis)    # (slices, y) or (slices, x)
            has, n = seen.any(axis=1), seen.shape[1]
            first = np.where(has, seen.argmax(axis=1), np.iinfo(np.int64).max) + block[1 + k].start
            last = np.where(has, n - seen[:, ::-1].argmax(axis=1), -1 - block[1 + k].start) + block[1 + k].start
            lo[z, k] = np.minimum(lo[z, k], first)
            hi[z, k] = np.maximum(hi[z, k], last)
    out = np.zeros((depth, 4), np.int64)
    some = hi[:, 0] >= 0
    out[some] = np.stack([lo[some, 0], hi[some, 0], lo[some, 1], hi[some, 1]], axis=1)
    return out


def annotated_box(labels, ignore_value: int) -> tuple | None:
    """The bounding box (slices) of the voxels of ``labels`` other than ``ignore_value``; None where every voxel is
    ``ignore_value``.

    >>> lab = np.full((10, 8, 8), 255, np.uint8); lab[2:4, 1:3, 5] = 0
    >>> annotated_box(lab, 255)
    (slice(2, 4, None), slice(1, 3, None), slice(5, 6, None))
    """
    return _box(annotated_extents(labels, ignore_value), 0, labels.shape[0])


def _box(extents: np.ndarray, z0: int, z1: int) -> tuple | None:
    """The bounding box of the annotated voxels of slices ``z0..z1-1`` (their :func:`annotated_extents`)."""
    part = extents[z0:z1]
    some = np.flatnonzero(part[:, 1] > 0)
    if not len(some):
        return None
    rows = part[some]
    return (slice(z0 + int(some[0]), z0 + int(some[-1]) + 1), slice(int(rows[:, 0].min()), int(rows[:, 1].max())),
            slice(int(rows[:, 2].min()), int(rows[:, 3].max())))


def annotated_slabs(labels, ignore_value: int, context: int) -> list[tuple]:
    """The regions of ``labels`` a random-mode run keeps: one box per run of consecutive annotated slices (slices
    with a voxel other than ``ignore_value``), around its annotated voxels, each grown by ``context`` (:func:`_grown`);
    runs whose grown slabs overlap are one slab. Three annotated slices spread through a 2000-slice scan keep
    three slabs of about ``2 * context`` slices, not the whole scan (review R5). Empty where nothing is annotated.

    >>> lab = np.full((100, 40, 40), 255, np.uint8); lab[[10, 11, 80], 5:9, 5:9] = 0
    >>> [tuple((b.start, b.stop) for b in box) for box in annotated_slabs(lab, 255, 8)]
    [((2, 20), (0, 17), (0, 17)), ((72, 89), (0, 17), (0, 17))]
    """
    extents = annotated_extents(labels, ignore_value)
    shape = tuple(labels.shape)
    slabs: list[list] = []  # [z start, z stop of the grown slab, first annotated slice, last annotated slice + 1]
    for z in np.flatnonzero(extents[:, 1] > 0).tolist():
        if slabs and slabs[-1][3] == z:  # the run goes on
            slabs[-1][3] = z + 1
        else:
            slabs.append([0, 0, z, z + 1])
        grown = _grown((slice(slabs[-1][2], slabs[-1][3]),), shape[:1], context)[0]
        slabs[-1][:2] = [grown.start, grown.stop]
        while len(slabs) > 1 and slabs[-2][1] > slabs[-1][0]:  # overlaps the slab before: one slab
            last = slabs.pop()
            slabs[-1] = [min(slabs[-1][0], last[0]), max(slabs[-1][1], last[1]), slabs[-1][2], last[3]]
    out = []
    for a, z, first, stop in slabs:
        box = _grown(_box(extents, first, stop), shape, context)
        out.append((slice(a, z),) + box[1:])
    return out


def _grown(box, shape, context: int) -> tuple | None:
    """``box`` grown by ``context`` on every side and to at least ``2 * context`` along each axis, within
    ``shape``."""
    if box is None:
        return None
    out = []
    for b, n in zip(box, shape):
        a, z = max(0, b.start - context), min(n, b.stop + context)
        short = 2 * context - (z - a)
        if short > 0:  # thinner than a patch: widened on both sides, then against the volume's ends
            a, z = max(0, a - short // 2 - short % 2), min(n, z + short // 2)
            a, z = max(0, min(a, z - 2 * context)), min(n, max(z, a + 2 * context))
        out.append(slice(a, z))
    return tuple(out)


def phantom_specs(spec: PhantomData, *, validation: bool) -> list[dict]:
    """What each phantom of the training (or validation) pool is: name, seed, preset, shape, physics ranges.

    Preset volumes use seeds ``seed .. seed+count-1`` (validation: the next ``validation_count``); physics
    volumes the seeds after all preset ones. The validation volumes continue the training's preset cycle, so
    a few of them see only a few presets (count 24, 9 presets: small-objects, small-pillar, bright; review P11,
    docs/phantoms.md, Known limitations).
    """
    out = []
    start, count = (spec.count, spec.validation_count) if validation else (0, spec.count)
    for i in range(start, start + count):
        out.append({"seed": spec.seed + i, "preset": spec.presets[i % len(spec.presets)], "shape": list(spec.shape),
                    "randomize": bool(spec.randomize), "physics": None})
    pool = spec.physics
    if pool is not None and (pool.count or pool.validation_count):
        first = spec.seed + spec.count + spec.validation_count
        start, count = (pool.count, pool.validation_count) if validation else (0, pool.count)
        shape = list(spec.physics_shape or spec.shape)
        ranges = {k: list(getattr(pool, k)) for k in RANGE_KEYS}
        for i in range(start, start + count):
            out.append({"seed": first + i, "preset": "physics", "shape": shape, "randomize": True,
                        "physics": ranges})
    return out


def _cache_dir(spec: PhantomData):
    import os
    from pathlib import Path

    if spec.cache_dir is None:
        return None
    if spec.cache_dir != "auto":
        return Path(spec.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tomoseg" / "phantoms"


# the cost of a phantom pool, per voxel of preset phantom (physics ones cost _work's 30x the time):
POOL_CACHE_BYTES_PER_VOXEL = 2       # the cache's .npz: uint8 image and labels
POOL_MEMORY_BYTES_PER_VOXEL = 6      # held while training: float32 image, uint8 labels, and the pair while prepared
POOL_SECONDS_PER_VOXEL = 0.2e-6      # one process: 64x192x192 in about 0.5 s (2 cores, 2026-11)


def pool_cost(spec: PhantomData) -> dict:
    """What the training and validation phantoms of ``spec`` cost: ``count``, ``voxels``, and for the ones not
    in the cache yet ``generate``, ``cache_bytes`` and ``seconds`` (one process), plus ``memory_bytes`` (all)."""
    items = phantom_specs(spec, validation=False) + phantom_specs(spec, validation=True)
    cache = _cache_dir(spec)
    todo = [it for it in items if cache is None or not (cache / f"{_cache_key(it)}.npz").exists()]
    voxels = sum(float(np.prod(it["shape"])) for it in items)
    new_voxels = sum(float(np.prod(it["shape"])) for it in todo)
    return {"count": len(items), "voxels": voxels, "generate": len(todo),
            "cache_bytes": int(new_voxels * POOL_CACHE_BYTES_PER_VOXEL) if cache is not None else 0,
            "seconds": sum(_work(it) for it in todo) * POOL_SECONDS_PER_VOXEL,
            "memory_bytes": int(voxels * POOL_MEMORY_BYTES_PER_VOXEL)}


def check_phantom_pool(spec: PhantomData, *, progress: bool = True) -> None:
    """Before any phantom is generated: the cache folder can be created, the new phantoms fit on its disk, the
    pool fits in memory; then (with ``progress``) one line on stderr saying what generating it costs."""
    import os
    import shutil
    import sys

    import psutil

    from ..io.disk_space import human_size
    from ..synthetic.pool import check_item

    for validation in (False, True):  # a shape too small for a preset: refused now, not while the pool is made
        for item in phantom_specs(spec, validation=validation):
            try:
                check_item(item)
            except TomosegError as exc:
                key = "physics_shape" if item["physics"] is not None and spec.physics_shape else "shape"
                raise TomosegError(f"data.phantoms.{key} {item['shape']} (preset {item['preset']}, seed "
                                   f"{item['seed']}): {exc}") from None
    cache = _cache_dir(spec)
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TomosegError(f"data.phantoms.cache_dir {spec.cache_dir}: cannot create the phantom cache "
                               f"{cache} ({exc.strerror}); give a folder you can write to, or null for no "
                               "cache") from None
        if not os.access(cache, os.W_OK | os.X_OK):
            raise TomosegError(f"data.phantoms.cache_dir {spec.cache_dir}: the phantom cache {cache} is not "
                               "writable; give a folder you can write to, or null for no cache")
    cost = pool_cost(spec)
    what = (f"{cost['count']} phantoms (data.phantoms count {spec.count} and validation_count "
            f"{spec.validation_count}" + (f", physics {spec.physics.count} and {spec.physics.validation_count}"
                                          if spec.physics is not None else "") + ")")
    if cache is not None and cost["cache_bytes"]:
        free = shutil.disk_usage(cache).free
        if cost["cache_bytes"] + (64 << 20) > free:
            raise TomosegError(f"{what}: the {cost['generate']} not cached yet need about "
                               f"{human_size(cost['cache_bytes'])} in the cache {cache}, and {human_size(free)} are "
                               "free on its disk; lower the counts or data.phantoms.shape, or set "
                               "data.phantoms.cache_dir to a larger disk (null: no cache)")
    available = psutil.virtual_memory().available
    if cost["memory_bytes"] > available:
        raise TomosegError(f"{what}: {cost['voxels'] / 1e6:,.0f} Mvoxels are held in memory while training, about "
                           f"{human_size(cost['memory_bytes'])}, and {human_size(available)} are available; lower "
                           "the counts or data.phantoms.shape")
    if progress and cost["generate"]:
        workers = spec.workers or usable_cores()
        seconds = cost["seconds"] / max(1, min(workers, cost["generate"]))
        took = (f"about {seconds / 60:,.0f} min" if seconds >= 120 else f"about {seconds:,.0f} s" if seconds >= 1
                else "under a second")
        disk = f"about {human_size(cost['cache_bytes'])} in the cache {cache}" if cache is not None else "no cache"
        print(f"tomoseg: generating {cost['generate']} of {what}: {took} on {workers} processes, {disk}, "
              f"{human_size(cost['memory_bytes'])} of memory", file=sys.stderr)


def _cache_key(item: dict) -> str:
    import hashlib
    import json

    from .._version import __version__
    from ..synthetic import version

    # the generator's version: a change to the generated data bumps it, and the cached phantoms of the old
    # generator are no longer found (the package version alone did not change with the generator's code)
    text = json.dumps({**item, "tomoseg": __version__, "format": 1, "generator": version.GENERATOR_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _load_cached(path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["image"], f["labels"]
    except (OSError, ValueError, KeyError):
        return None  # missing or damaged: generate again


def _save_cached(path, image, labels) -> None:
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, image=image, labels=labels)
    tmp.replace(path)


def _work(item: dict) -> float:
    """A phantom's cost in units of preset voxels: physics mode (projection and reconstruction) costs about 30x."""
    return float(np.prod(item["shape"])) * (30 if item["physics"] else 1)


def generate_pool(items: list[dict], *, cache_dir=None, workers: int = 0) -> tuple[list, dict]:
    """Phantoms of ``items`` as (image, labels) pairs, from the disk cache or generated in a process pool.

    Returns the pairs and ``{"generated": n, "cached": m}``.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    results: list = [None] * len(items)
    paths = [None] * len(items)
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TomosegError(f"{cache_dir}: cannot create the phantom cache ({exc.strerror}); set "
                               "data.phantoms.cache_dir to a folder you can write to, or null") from None
        for k, item in enumerate(items):
            paths[k] = cache_dir / f"{_cache_key(item)}.npz"
            if paths[k].exists():
                results[k] = _load_cached(paths[k])
    workers = workers or usable_cores()
    # the longest first (physics ones), so that no worker starts a long phantom after the others are done;
    # each phantom depends on its own seed only, so the order changes nothing in them
    todo = sorted((k for k, r in enumerate(results) if r is None), key=lambda k: -_work(items[k]))
    # processes pay off only for real work: about 1 s per 6 Mvox of preset phantom, 30x that with physics
    if len(todo) > 1 and workers > 1 and sum(_work(items[k]) for k in todo) > 2e7:
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
            for k, pair in zip(todo, pool.map(generate_item, [items[k] for k in todo])):
                results[k] = pair
                if paths[k] is not None:
                    _save_cached(paths[k], *pair)
    else:
        for k in todo:
            results[k] = generate_item(items[k])
            if paths[k] is not None:
                _save_cached(paths[k], *results[k])
    return results, {"generated": len(todo), "cached": len(items) - len(todo)}


def phantom_volumes(spec: PhantomData, data: DataConfig, *, validation: bool = False) -> list[TrainingVolume]:
    """The training (or validation) phantoms of a config, normalized as ``segment`` normalizes."""
    items = phantom_specs(spec, validation=validation)
    pairs, _ = generate_pool(items, cache_dir=_cache_dir(spec), workers=spec.workers)
    return _volumes(spec, data, items, pairs)


def phantom_volume_sets(spec: PhantomData, data: DataConfig) -> tuple[list, list]:
    """The training and the validation phantoms of a config, generated in one pool: the validation
    phantoms' long (physics) ones start with the training ones' instead of after them."""
    train_items, val_items = phantom_specs(spec, validation=False), phantom_specs(spec, validation=True)
    pairs, _ = generate_pool(train_items + val_items, cache_dir=_cache_dir(spec), workers=spec.workers)
    n = len(train_items)
    return _volumes(spec, data, train_items, pairs[:n]), _volumes(spec, data, val_items, pairs[n:])


def _volumes(spec: PhantomData, data: DataConfig, items, pairs) -> list[TrainingVolume]:
    """The generated (image, labels) pairs of ``items`` as training volumes: faded ends where the spec asks."""
    if spec.faded_ends:
        pairs = [_maybe_fade(it["seed"], image, labels, spec.faded_ends, data.ignore_value)
                 for it, (image, labels) in zip(items, pairs)]
    return [_prepare(f"phantom[{it['preset']}, seed {it['seed']}]", image, labels, data,
                     voxel_size=PHANTOM_VOXEL_NM) for it, (image, labels) in zip(items, pairs)]


def _maybe_fade(seed: int, image, labels, share: float, ignore_value: int):
    """The pair with faded ends for a ``share`` of the seeds (decided by the seed, so the pool is reproducible)."""
    rng = np.random.default_rng([seed, 0xFADE])
    if rng.random() >= share:
        return image, labels
    return fade_ends(image, labels, rng, ignore_value=ignore_value)


def fade_ends(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, ignore_value: int = 255,
              slices: tuple[int, int] = (4, 16)) -> tuple[np.ndarray, np.ndarray]:
    """One or both ends of an 8-bit volume (a phantom) fading over 4-16 slices to a flat field darker than the
    matrix, as a reconstruction does past the sample's ends (cone-beam CT of concrete: ``segment`` flooded such slices).

    Slice ``j`` from the end keeps ``w = j / k`` of the image and takes ``1 - w`` of the flat level, so the
    texture and the objects fade with it. Labels: 0 where ``w < 0.4``, ``ignore_value`` where ``0.4 <= w < 0.8``,
    unchanged above. The noise is scaled by ``w`` too, so the objects' contrast-to-noise ratio does not fall
    (2.22 at w = 0.38 against 1.93 mid-volume, review P1): slices labelled 0 still show their objects, the
    flat level is noiseless, and the cast floors (a -0.5 gray bias). Kept as it is because the default model
    v3 was trained with it (docs/phantoms.md, Known limitations, P1).
    """
    image, labels = image.copy(), labels.copy()
    depth = image.shape[0]
    level = float(np.median(image[depth // 2])) * rng.uniform(0.2, 0.6)
    ends = [e for e in ("first", "last") if rng.random() < 0.5] or [("first", "last")[int(rng.integers(2))]]
    for end in ends:
        k = int(min(rng.integers(slices[0], slices[1] + 1), depth // 3))
        for j in range(k):
            z = j if end == "first" else depth - 1 - j
            w = j / k
            image[z] = np.clip(w * image[z].astype(np.float32) + (1 - w) * level, 0, 255).astype(image.dtype)
            if w < 0.4:
                labels[z] = 0
            elif w < 0.8:
                labels[z] = ignore_value
    return image, labels
