"""Object analysis of a whole mask or probability map: label, measure, exclude, summarize.

Small volumes are labelled in memory; larger ones chunk by chunk into a
temporary Zarr store, so memory stays bounded by the chunk size (plus one
row per object).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import TomosegError
from .labelling import label_chunked, label_objects, open_label_store
from .measure import measure_objects, select_objects, summarize

IN_MEMORY_VOXELS = 64 * 2**20
PIECE_BYTES = 2**29  # pieces of objects that cross chunks kept for measuring them without a read (at most)


@dataclass
class AnalysisOptions:
    threshold: int = 127            # for uint8 probability maps: object where value > threshold
    connectivity: int = 26
    exclude_border: bool = True
    min_voxels: int = 8
    chunks: tuple = (128, 128, 128)
    in_memory_voxels: int = IN_MEMORY_VOXELS


@dataclass(frozen=True)
class KeptLabels:
    """The label volume of a chunked analysis (uint32 Zarr; IDs = the objects table's ``label`` column), kept
    for the caller (``analyze(keep_labels=True)``), who writes the label image from it and then discards it."""

    path: Path      # the Zarr store, in a folder of its own
    count: int      # the labels 1..count it holds

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


@dataclass
class Analysis:
    objects: dict                    # every object, with touches_border
    selected: dict                   # after the exclusions
    summary: dict                    # the paper's Table 1 and population figures
    fraction_along_z: np.ndarray     # all objects' volume fraction of each z slice (of the sample mask's voxels in
                                     # the slice where one is given: NaN where the slice holds none of the sample)
    voxel_size: tuple | None
    shape: tuple
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    labels: KeptLabels | None = None  # with keep_labels, where the volume was labelled chunk by chunk


def _spread_sample(volume, slices: int = 16) -> list:
    """Blocks holding about as many voxels as ``slices`` z slices, spread evenly over the volume: whole
    storage chunks of a chunked store (a single slice of a Zarr store decompresses its whole chunk layer),
    else whole slices."""
    from ..io.blocks import sample_blocks, storage_chunks

    shape = tuple(int(s) for s in volume.shape)
    return sample_blocks(shape, storage_chunks(volume), min(1.0, slices / shape[0]))


def is_probability(volume) -> bool:
    """A uint8 volume is a 0–255 probability map if ``segment`` wrote it as one (:func:`written_as_probability`)
    or if its values go beyond 1 in a spread sample; otherwise a mask."""
    if np.dtype(volume.dtype) != np.uint8:
        return False
    if isinstance(volume, np.ndarray):  # in memory: the whole array, as the tracking's labels are told apart
        return volume.size > 0 and int(volume.max()) > 1
    if written_as_probability(volume):
        return True
    return any(int(np.asarray(volume[block]).max()) > 1 for block in _spread_sample(volume))


def written_as_probability(volume) -> bool:
    """Whether ``segment`` wrote this volume as its probability map: its provenance record (a dataset of an HDF5
    file has its own, :func:`~tomoseg.io.output_guard.provenance_path`) names it so. Then a sparse map whose
    sample holds only 0 and 1 is not taken for a mask (where every 1 would become an object)."""
    from ..io.output_guard import same_output, tomoseg_provenance

    path = getattr(volume, "path", None)
    if path is None:
        return False
    record = tomoseg_provenance(path)
    if record is None or record.get("tool") != "tomoseg segment":
        return False
    outputs = record.get("outputs")
    return same_output(outputs.get("probability") if isinstance(outputs, dict) else None, path)


def check_mask_like(volume, where, command: str = "analyze") -> None:
    """Refuse volumes that are neither a mask nor a uint8 probability map: fractions (e.g. a float map in
    [0, 1]), and object IDs stored as uint8 (:func:`looks_like_object_ids`), which the threshold would drop.
    A :class:`MaskView` is 0/1 by construction: nothing to read."""
    if isinstance(volume, MaskView):
        return
    if np.dtype(volume.dtype) == np.uint8:
        ids = looks_like_object_ids(volume)
        if ids:
            regions, values = ids
            raise TomosegError(f"{where}: looks like an image of object IDs stored as uint8 ({regions} regions of "
                               f"one value each, {values} different values); uint8 volumes are read as masks "
                               "(0/1) or probability maps (object where > the threshold), which would drop IDs "
                               "up to 127. Save object IDs as uint16 (numpy: .astype('uint16')), or give a mask")
    if np.dtype(volume.dtype).kind != "f":
        return
    for block in _spread_sample(volume):
        plane = np.asarray(volume[block])
        if np.any((plane != np.round(plane)) & np.isfinite(plane)):
            raise TomosegError(f"{where}: holds fractional values ({plane.dtype}); {command} takes a mask (0 = "
                               "background, nonzero = object) or tomoseg's uint8 probability map (0-255). For a "
                               "probability map in [0, 1] write numpy.rint(p * 255).astype('uint8') first")


def looks_like_object_ids(volume, min_voxels: int = 8) -> tuple[int, int] | None:
    """Whether a uint8 volume holds object IDs (a label image from Fiji or ilastik saved as 8 bits) rather than
    a mask or a probability map: in a spread sample, its nonzero regions of at least ``min_voxels`` are nearly
    all of one value each (90 %, two at least), and of more than one value. A probability map's objects ramp up
    from their edges; a 0/1 or 0/255 mask has one value. Returns (regions, values), or None. tomoseg's own
    probability maps are never taken for IDs."""
    if np.dtype(volume.dtype) != np.uint8 or (not isinstance(volume, np.ndarray) and written_as_probability(volume)):
        return None
    regions = uniform = 0
    values: set = set()
    for block in _spread_sample(volume):
        data = np.asarray(volume[block])
        lab, n = ndimage.label(data > 0)
        if not n:
            continue
        index = np.arange(1, n + 1)
        big = ndimage.sum_labels(np.ones(data.shape, np.int32), lab, index) >= min_voxels
        lo = np.asarray(ndimage.minimum(data, lab, index))[big]
        hi = np.asarray(ndimage.maximum(data, lab, index))[big]
        regions += int(big.sum())
        uniform += int(np.count_nonzero(lo == hi))
        values.update(lo[lo == hi].astype(int).tolist())
    if uniform >= 2 and len(values) >= 2 and uniform >= 0.9 * regions:
        return regions, len(values)
    return None


def warn_if_flooded(share: float, where) -> None:
    """A warning where most voxels are objects: a gray-value image (or a probability map of another type)
    given where a mask belongs, every nonzero voxel an object."""
    if share > 0.5:
        from ..errors import warn

        warn(f"{where}: {share:.0%} of the voxels are objects; is this a mask? A gray-value image counts every "
             "nonzero voxel as an object: give the mask or the probability map from tomoseg segment")


def _mask_of(block, probability: bool, threshold: int):
    return block > threshold if probability else block != 0


LABEL_STORE_PREFIX = "tomoseg-labels-"
_OWNER = "owner.txt"


class MaskView:
    """The mask of a mask or probability map (uint8 0/1), read region by region: ``view[z]``, ``view[:, y]``
    read one plane of the volume, not the volume."""

    def __init__(self, volume, options: AnalysisOptions | None = None, probability: bool | None = None):
        """``probability``: whether ``volume`` is a probability map, where the caller knows (else a sample is read
        to tell, :func:`is_probability`)."""
        options = options or AnalysisOptions()
        prob = is_probability(volume) if probability is None else bool(probability)
        self.volume, self.prob, self.threshold = volume, prob, options.threshold
        self.shape, self.dtype = tuple(volume.shape), np.dtype(np.uint8)

    def __getitem__(self, key):
        return _mask_of(np.asarray(self.volume[key]), self.prob, self.threshold).astype(np.uint8)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_label_stores(folder=None) -> list:
    """Remove label stores of chunked runs that were killed (their process on this host is gone)."""
    folder = Path(folder or tempfile.gettempdir())
    removed = []
    for d in folder.glob(LABEL_STORE_PREFIX + "*"):
        owner = d / _OWNER
        try:
            host, pid = owner.read_text(encoding="utf-8").split()
            stale = host == socket.gethostname() and not _alive(int(pid))
        except (OSError, ValueError):
            continue  # not ours to judge (no owner record yet, or another format)
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def json_safe(value):
    """NaN and infinities as None (JSON null), recursively: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return json_safe(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _sample_mask_counts(sample_mask, centroids: np.ndarray, shape, slab_voxels: int, objects=None):
    """Voxels inside the sample mask, which centroids (rounded, (n, 3)) lie inside it, and per z slice the
    sample's voxels and the object voxels (of ``objects``, a :class:`MaskView`) inside it; read in blocks of
    whole storage chunks."""
    from ..io.blocks import block_grid, storage_chunks
    from ..sample_mask import inside as mask_block

    inside = np.zeros(len(centroids), bool)
    idx = np.clip(np.rint(centroids).astype(np.int64), 0, np.asarray(shape) - 1) if len(centroids) else \
        np.zeros((0, 3), np.int64)
    total = 0
    per_z = np.zeros((2, shape[0]), np.int64)  # sample voxels, object voxels inside the sample
    for zs, ys, xs in block_grid(shape, storage_chunks(sample_mask), max_voxels=slab_voxels):
        block = mask_block(sample_mask[zs, ys, xs], f"sample mask {getattr(sample_mask, 'path', '')}".rstrip())
        total += int(np.count_nonzero(block))
        per_z[0, zs] += np.count_nonzero(block, axis=(1, 2))
        if objects is not None:
            per_z[1, zs] += np.count_nonzero(block & (objects[zs, ys, xs] > 0), axis=(1, 2))
        sel = (idx[:, 0] >= zs.start) & (idx[:, 0] < zs.stop) & (idx[:, 1] >= ys.start) & (idx[:, 1] < ys.stop)
        if sel.any():
            zi, yi, xi = idx[sel].T
            inside[sel] = block[zi - zs.start, yi - ys.start, xi]
    return total, inside, per_z


def analyze(volume, *, intensity=None, probability=None, voxel_size=None, options: AnalysisOptions | None = None,
            workdir=None, progress=None, sample_mask=None, keep_labels: bool = False) -> Analysis:
    """Label and measure the objects of a mask or a probability map.

    Parameters
    ----------
    volume : Volume or ndarray
        A mask (nonzero = object) or a uint8 probability map (object where > threshold).
    intensity : Volume or ndarray, optional
        The gray-value image, for each object's mean gray value.
    probability : Volume or ndarray, optional
        The probability map, for each object's mean and max probability (defaults to ``volume`` when that is
        a probability map).
    voxel_size : (z, y, x) nm, optional
    sample_mask : Volume or ndarray, optional
        Nonzero inside the sample. Volume fraction and number density are then computed inside it (objects
        counted by their centroid); without it, over the whole volume. Both count only the kept objects.
    keep_labels : bool
        Where the volume is labelled chunk by chunk, keep the labels (``Analysis.labels``) for a label image
        (:func:`~tomoseg.objects.write_label_image`'s ``labels``) instead of labelling again; the caller
        discards them (``Analysis.labels.discard()``).
    """
    options = options or AnalysisOptions()
    shape = tuple(int(s) for s in volume.shape)
    for name, other in (("intensity", intensity), ("probability", probability), ("sample mask", sample_mask)):
        if other is not None and tuple(other.shape) != shape:
            raise TomosegError(f"{name} volume {tuple(other.shape)} and mask {shape} differ in shape")
    prob_map = is_probability(volume)
    if prob_map and probability is None:
        probability = volume
    size = int(np.prod(shape, dtype=np.int64))
    fraction = np.zeros(shape[0])
    kept = None
    if size <= options.in_memory_voxels:
        mask = _mask_of(np.asarray(volume[:, :, :] if hasattr(volume, "path") else volume), prob_map,
                        options.threshold)
        fraction = mask.mean(axis=(1, 2))
        labels, _ = label_objects(mask, connectivity=options.connectivity)
        del mask
        table = measure_objects(labels, intensity=None if intensity is None else intensity[:, :, :],
                                probability=None if probability is None else probability[:, :, :],
                                voxel_size=voxel_size)
        if progress is not None:
            progress.update(size)
    else:
        clean_stale_label_stores(workdir)
        tmp = Path(tempfile.mkdtemp(prefix=LABEL_STORE_PREFIX, dir=workdir))
        (tmp / _OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
        try:
            store = tmp / "labels.zarr"
            # bounding boxes, the fraction along z and the objects within one chunk measured as labels are written
            inner = _InnerObjects(shape, intensity, probability, voxel_size, probability is volume)
            label_chunked(volume, store, chunks=options.chunks, connectivity=options.connectivity,
                          threshold=options.threshold if prob_map else None, visit=inner,
                          progress=None if progress is None else _Halved(progress))
            labels_arr = open_label_store(store)
            done = inner.parts + inner.crossing()
            rest = inner.bounds.boxes(sorted(inner.dropped))  # every other object is measured already
            table = _measure_chunked(labels_arr, rest, intensity, probability, voxel_size, options, done)
            fraction = inner.bounds.fraction
            if keep_labels:
                kept = KeptLabels(store, int(len(table["label"])))
        finally:
            if kept is None:
                shutil.rmtree(tmp, ignore_errors=True)
    try:
        return _finish(volume, table, fraction, options, voxel_size, sample_mask, shape, size, kept)
    except BaseException:  # the labels kept for the caller are the caller's only once this returns
        if kept is not None:
            kept.discard()
        raise


def _finish(volume, table, fraction, options, voxel_size, sample_mask, shape, size, kept) -> Analysis:
    """The selection, summary and sample-mask figures of :func:`analyze`."""
    warn_if_flooded(float(fraction.mean()), getattr(volume, "path", "the volume"))
    selected = select_objects(table, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    summary = summarize(selected)
    vs = voxel_size
    if not vs:
        summary["mean_radius_nm"] = None  # not the voxel value under another name
    kept_voxels = np.asarray(selected["volume_vox"], dtype=np.int64)
    counted = np.ones(len(kept_voxels), bool)
    if sample_mask is not None:
        centroids = np.stack([np.asarray(selected[f"centroid_{a}"], float) for a in "zyx"], 1) \
            if len(kept_voxels) else np.zeros((0, 3))
        sample_voxels, counted, per_z = _sample_mask_counts(sample_mask, centroids, shape, options.in_memory_voxels,
                                                            objects=MaskView(volume, options))
        if sample_voxels == 0:
            raise TomosegError("the sample mask is empty (no nonzero voxel); give the mask of the sample")
        # all objects on the same basis as volume_fraction: their voxels inside the sample, per slice and in all
        all_objects = float(per_z[1].sum() / sample_voxels)
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(per_z[0] > 0, per_z[1] / np.maximum(per_z[0], 1), np.nan)
        basis = ("kept objects (after the border and size exclusions) whose centroid lies inside the sample mask, "
                 "over the sample mask's volume; volume_fraction_all_objects: every object voxel (excluded objects "
                 "included) inside the sample mask, over its volume")
    else:
        sample_voxels = size
        all_objects = float(fraction.mean())
        basis = ("kept objects (after the border and size exclusions) over the whole volume, surroundings "
                 "included; pass a sample mask to measure inside the sample")
    voxel_um3 = float(np.prod(vs)) / 1e9 if vs else None
    n_counted = int(np.count_nonzero(counted))
    border = np.asarray(table["touches_border"], bool) if options.exclude_border else np.zeros(len(table["label"]),
                                                                                                bool)
    summary.update({
        "objects_all": int(len(table["label"])),
        # each excluded object counted once: the border first, then the small ones among the rest
        "excluded_border": int(np.count_nonzero(border)),
        "excluded_small": int(np.count_nonzero((table["volume_vox"] < options.min_voxels) & ~border)),
        "volume_fraction": float(kept_voxels[counted].sum() / sample_voxels),
        "volume_fraction_all_objects": all_objects,
        "number_density_per_um3": float(n_counted / (sample_voxels * voxel_um3)) if vs else None,
        "analysed_volume_um3": float(sample_voxels * voxel_um3) if vs else None,
        "analysed_voxels": int(sample_voxels),
        "fraction_basis": basis,
    })
    return Analysis(objects=table, selected=selected, summary=summary, fraction_along_z=fraction,
                    voxel_size=tuple(vs) if vs else None, shape=shape, options=options, labels=kept)


def _within(box, region) -> tuple:
    """``box`` (slices of the volume) as slices of an array holding ``region`` of it."""
    return tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))


class _Halved:
    """A progress bar counted in half steps (two passes over the volume make one bar of its voxels)."""

    def __init__(self, progress):
        self.progress, self._odd = progress, 0

    def update(self, n: int) -> None:
        whole, self._odd = divmod(self._odd + int(n), 2)
        self.progress.update(whole)


class _Bounds:
    """Each object's bounding box and the object fraction of each z slice, from the labels chunk by chunk
    (``label_chunked``'s ``visit``, called on its worker threads: each chunk is summarized there, and the
    summaries merged under a lock). Boxes are kept in arrays indexed by label (the labels are 1..n): 48 bytes an
    object, for the millions of a terabyte."""

    def __init__(self, shape):
        self.shape = shape
        self.lo = np.zeros((0, 3), np.int64)
        self.hi = np.zeros((0, 3), np.int64)
        self.counts = np.zeros(shape[0], np.int64)  # object voxels per z slice: integers, in any order the same
        self._lock = threading.Lock()

    @property
    def fraction(self) -> np.ndarray:
        return self.counts / (self.shape[1] * self.shape[2])

    def _grow(self, size: int) -> None:
        if size > len(self.lo):
            size = max(size, 2 * len(self.lo))
            lo, hi = np.full((size, 3), np.iinfo(np.int64).max), np.full((size, 3), -1, np.int64)
            lo[:len(self.lo)], hi[:len(self.hi)] = self.lo, self.hi
            self.lo, self.hi = lo, hi

    def __call__(self, sl, block: np.ndarray) -> tuple:
        """Add a chunk's labels; returns its objects' labels and boxes within the chunk (starts, stops: (n, 3))."""
        where = np.flatnonzero(block)
        if where.size == 0:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)
        rows = np.bincount(where // (block.shape[1] * block.shape[2]), minlength=block.shape[0])
        # the chunk's labels renumbered 1..n for find_objects; only object voxels are looked at (a sort of the
        # whole chunk, np.unique's way, cost 60 ms a 128^3 chunk, most of analyze's time on a large volume)
        values = block.ravel()[where]
        ids = np.unique(values)
        compact = np.zeros(block.shape, np.int32)
        compact.ravel()[where] = np.searchsorted(ids, values) + 1
        found = ndimage.find_objects(compact)  # one box per label of ids, all present
        origin = np.array([s.start for s in sl], np.int64)
        starts = np.array([[b.start for b in bb] for bb in found], np.int64) + origin
        stops = np.array([[b.stop for b in bb] for bb in found], np.int64) + origin
        ids = ids.astype(np.int64)
        with self._lock:
            self.counts[sl[0]] += rows
            self._grow(int(ids[-1]) + 1)
            self.lo[ids] = np.minimum(self.lo[ids], starts)  # labels are unique within a chunk
            self.hi[ids] = np.maximum(self.hi[ids], stops)
        return ids, starts, stops

    def boxes(self, labels) -> dict:
        """``{label: box}`` (slices) for ``labels``."""
        return {int(lab): tuple(slice(int(a), int(b)) for a, b in zip(self.lo[lab], self.hi[lab])) for lab in labels}


class _InnerObjects:
    """``label_chunked``'s ``visit`` for :func:`analyze`: :class:`_Bounds`, and every object measured from the
    blocks in hand as the labels are written (the chunk's labels, the block they came from: the probability
    map, and the gray values read once per chunk), with no read of its own.

    An object within one chunk (none of its voxels on a face the chunk shares with another: nothing connects it
    beyond) is measured there. Of an object that crosses chunks each chunk keeps its piece (the object's
    voxels in the chunk and their gray values and probabilities, cropped to the piece's box); :meth:`crossing`
    assembles and measures them at the end. Pieces beyond ``piece_bytes`` (:data:`PIECE_BYTES`) in all
    (objects spanning much of a volume, such as a flooded region) are not kept: those objects are measured
    afterwards from the volumes (:func:`_measure_chunked`)."""

    def __init__(self, shape, intensity, probability, voxel_size, probability_read: bool = False,
                 piece_bytes: int | None = None):
        """``probability_read``: ``probability`` is the volume being labelled, whose blocks come with the labels."""
        self.shape, self.intensity, self.probability, self.voxel_size = shape, intensity, probability, voxel_size
        self.probability_read = probability_read
        self.bounds = _Bounds(shape)
        self.parts: list = []
        self.pieces: dict = {}        # label -> [(box, mask, gray, prob)]
        self.dropped: set = set()     # labels whose pieces were not all kept: left to _measure_chunked
        self.piece_bytes, self._kept = int(PIECE_BYTES if piece_bytes is None else piece_bytes), 0
        self._lock = threading.Lock()

    def __call__(self, region, labels: np.ndarray, block: np.ndarray) -> None:
        shape = self.shape
        ids, starts, stops = self.bounds(region, labels)
        if not len(ids):
            return
        gray = None if self.intensity is None else np.asarray(self.intensity[region])
        prob = block if self.probability_read else None if self.probability is None else \
            np.asarray(self.probability[region])

        def local_read(sub):
            at = _within(sub, region)
            return labels[at], None if gray is None else gray[at], None if prob is None else prob[at]

        first = np.array([r.start for r in region])
        last = np.array([r.stop for r in region])
        alone = np.all(((starts > first) | (first == 0)) & ((stops < last) | (last == np.array(shape))), axis=1)
        inner, pieces = {}, []
        for lab, a, b, within in zip(ids.tolist(), starts.tolist(), stops.tolist(), alone.tolist()):
            box = tuple(slice(x, y) for x, y in zip(a, b))
            if within:
                inner[lab] = box
            else:
                at = _within(box, region)
                pieces.append((lab, (box, labels[at] == lab, None if gray is None else gray[at].copy(),
                                     None if prob is None else prob[at].copy())))
        part = measure_objects(None, voxel_size=self.voxel_size, shape=shape, bboxes=inner, read=local_read) \
            if inner else None
        with self._lock:
            if part is not None:
                self.parts.append(part)
            for lab, piece in pieces:
                size = sum(x.nbytes for x in piece[1:] if x is not None)
                if lab in self.dropped or self._kept + size > self.piece_bytes:
                    self.dropped.add(lab)
                    self._kept -= sum(x.nbytes for p in self.pieces.pop(lab, []) for x in p[1:] if x is not None)
                    continue
                self.pieces.setdefault(lab, []).append(piece)
                self._kept += size

    def crossing(self) -> list:
        """Measure the objects that cross chunks from their pieces (those whose pieces were all kept)."""
        boxes = self.bounds.boxes(list(self.pieces))
        parts = []
        for lab, pieces in sorted(self.pieces.items()):
            box = boxes[lab]
            region = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, self.shape))
            size = tuple(r.stop - r.start for r in region)
            labels = np.zeros(size, np.uint32)
            gray = None if pieces[0][2] is None else np.zeros(size, pieces[0][2].dtype)
            prob = None if pieces[0][3] is None else np.zeros(size, pieces[0][3].dtype)
            for where, mask, g, p in pieces:
                at = _within(where, region)
                labels[at][mask] = lab
                if gray is not None:
                    gray[at][mask] = g[mask]
                if prob is not None:
                    prob[at][mask] = p[mask]
            parts.append(measure_objects(None, voxel_size=self.voxel_size, shape=self.shape, bboxes={lab: box},
                                         read=lambda _, data=(labels, gray, prob): data))
        self.pieces.clear()
        return parts


def _measure_chunked(labels, bboxes: dict, intensity, probability, voxel_size, options: AnalysisOptions,
                     measured: list = ()):
    """Measurements chunk by chunk with a margin, groups of objects on worker threads; with the tables of
    objects ``measured`` already, one table of all in label order."""
    from ..io.blocks import read_ahead, worker_threads

    shape = tuple(labels.shape)
    chunks = tuple(min(c, s) for c, s in zip(options.chunks, shape))

    def read(region):
        return (np.asarray(labels[region]), None if intensity is None else np.asarray(intensity[region]),
                None if probability is None else np.asarray(probability[region]))

    # group objects by the chunk of their first corner, and measure each group from one read with a margin
    margin = 16
    groups: dict = {}
    for lab, bb in bboxes.items():
        key = tuple(s.start // c for s, c in zip(bb, chunks))
        groups.setdefault(key, []).append(lab)

    def measure(item):  # on a worker thread
        key, labs = item
        region = tuple(slice(max(k * c - 1, 0), min((k + 1) * c + margin, s)) for k, c, s in zip(key, chunks, shape))
        inside = {l: bboxes[l] for l in labs
                  if all(b.start >= max(r.start + 1, 0) or r.start == 0 for b, r in zip(bboxes[l], region))
                  and all(b.stop + 1 <= r.stop or r.stop == s for b, r, s in zip(bboxes[l], region, shape))}
        outside = {l: bboxes[l] for l in labs if l not in inside}
        out = []
        if inside:
            data = read(region)

            def local_read(sub, data=data, region=region):
                at = _within(sub, region)
                return tuple(None if d is None else d[at] for d in data)

            out.append(measure_objects(None, voxel_size=voxel_size, shape=shape, bboxes=inside, read=local_read))
        if outside:
            out.append(measure_objects(None, voxel_size=voxel_size, shape=shape, bboxes=outside, read=read))
        return out

    parts = list(measured) + [p for _, group in read_ahead(sorted(groups.items()), measure,
                                                            threads=worker_threads(16)) for p in group]
    if not parts:
        return measure_objects(np.zeros((1, 1, 1), np.uint32))
    table = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    order = np.argsort(table["label"])
    return {c: v[order] for c, v in table.items()}
