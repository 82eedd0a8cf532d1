"""Object analysis of a whole mask or probability map: label, measure, exclude, summarize.

Small volumes are labelled in memory; larger ones chunk by chunk into a
temporary Zarr store, so memory stays bounded by the chunk size, plus the
objects table: about 1 KB an object measured end to end (docs/analysis.md,
Memory), 80 GB for the 80 million objects of a typical terabyte scan.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TomosegError, recording, said, warn
from ..io.volume import path_of
from ..io.disk_space import make_temporary_folder
from .labelling import label_chunked, label_objects, open_label_store
from .large_regions import large_dark_regions, large_regions_warning
from .measure import edge_weights, measure_table, rows_of, select_objects, summarize, within
from .measure_processes import MeasurePool, measure_block
from .reading import (MaskView, Reading, ReadingChanged, check_threshold, mask_of, probability_values,
                      read_as)

IN_MEMORY_VOXELS = 64 * 2**20
PIECE_BYTES = 2**29  # pieces of objects that cross chunks kept for measuring them without a read (at most)


@dataclass
class AnalysisOptions:
    threshold: int = 127            # for probability maps (0-255): object where value > threshold
    read_as: str = "auto"           # "auto", "probability" or "mask": how the volume is read (reading.read_as)
    connectivity: int = 26
    exclude_border: bool = True
    min_voxels: int = 8
    chunks: tuple = (128, 128, 128)
    in_memory_voxels: int = IN_MEMORY_VOXELS
    # worker processes measuring the objects of a volume labelled chunk by chunk (measure_processes.py); 0: the
    # labelling's threads, which the GIL holds to about one core. The CLI gives one a core; a script that sets it
    # needs the ``if __name__ == "__main__":`` guard every use of multiprocessing does
    processes: int = 0

    def __post_init__(self):
        check_threshold(self.threshold)
        if not isinstance(self.processes, int) or self.processes < 0:
            raise TomosegError(f"processes {self.processes!r} must be a non-negative integer")


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
    fraction_along_z: np.ndarray     # the counted objects' (the summary's) volume fraction of each z slice: their
                                     # voxels in the slice over its voxels (the sample mask's where one is given:
                                     # NaN where the slice holds none of the sample), volume_fraction's basis
    voxel_size: tuple | None
    shape: tuple
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    labels: KeptLabels | None = None  # with keep_labels, where the volume was labelled chunk by chunk
    reading: Reading | None = None    # how the volume was read: probability map, mask or label image
    fraction_along_z_all: np.ndarray | None = None  # every object voxel (excluded objects included) of each z
                                     # slice, inside the sample mask where one is given: volume_fraction_all_objects'

    @property
    def population(self) -> dict:
        """The objects the summary covers: the kept objects, and of them only those inside the sample mask
        (``in_sample``) where one was given."""
        if "in_sample" not in self.selected:
            return self.selected
        return rows_of(self.selected, np.asarray(self.selected["in_sample"]) == 1)


def warn_if_flooded(share: float, where) -> None:
    """A warning where most voxels are objects: a gray-value image (or a probability map of another type)
    given where a mask belongs, every nonzero voxel an object."""
    if share > 0.5:
        warn(f"{where}: {share:.0%} of the voxels are objects; is this a mask? A gray-value image counts every "
             "nonzero voxel as an object: give the mask or the probability map from tomoseg segment")


LABEL_STORE_PREFIX = "tomoseg-labels-"
_OWNER = "owner.txt"


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


def check_sample_mask(sample_mask, slab_voxels: int) -> None:
    """Refuse an empty sample mask (or one holding NaN) before the labelling, not after it: a spread sample of
    it first; only where that holds no sample voxel is the whole mask read (then stopping at the first). A float
    mask of graded values, many nonzero voxels below 0.5 (a probability?), is warned of, from that sample."""
    from ..io.blocks import block_grid, storage_chunks
    from ..sample_mask import SoftValues, inside as mask_block
    from .reading import first_look

    where = f"sample mask {path_of(sample_mask) or ''}".rstrip()
    soft = SoftValues()
    for b in first_look(sample_mask):
        data = sample_mask[b]
        mask_block(data, where)  # NaN refused
        soft(data)
    if soft.nonzero:
        message = soft.warning(where)  # a probability taken for the sample (review SM7)
        if message:
            warn(message)
        return
    shape = tuple(int(n) for n in sample_mask.shape)
    for zs, ys, xs in block_grid(shape, storage_chunks(sample_mask), max_voxels=slab_voxels):
        if mask_block(sample_mask[zs, ys, xs], where).any():
            return
    raise TomosegError(f"{where}: the sample mask is empty (no nonzero voxel); give the mask of the sample "
                       "(nonzero inside it)")


def _sample_mask_counts(sample_mask, centroids: np.ndarray, shape, slab_voxels: int, objects=None):
    """Voxels inside the sample mask, which centroids ((n, 3); the voxel holding each) lie inside it, and per z
    slice the sample's voxels and the object voxels (of ``objects``, a :class:`MaskView`) inside it; read in
    blocks of whole storage chunks."""
    from ..io.blocks import block_grid, storage_chunks
    from ..sample_mask import inside as mask_block

    inside = np.zeros(len(centroids), bool)
    # the voxel holding the centroid (halves round up: a centroid at 9.5 counts in voxel 10, whatever its parity)
    idx = np.clip(np.floor(centroids + 0.5).astype(np.int64), 0, np.asarray(shape) - 1) if len(centroids) else \
        np.zeros((0, 3), np.int64)
    total = 0
    per_z = np.zeros((2, shape[0]), np.int64)  # sample voxels, object voxels inside the sample
    for zs, ys, xs in block_grid(shape, storage_chunks(sample_mask), max_voxels=slab_voxels):
        block = mask_block(sample_mask[zs, ys, xs], f"sample mask {path_of(sample_mask) or ''}".rstrip())
        total += int(np.count_nonzero(block))
        per_z[0, zs] += np.count_nonzero(block, axis=(1, 2))
        if objects is not None:
            per_z[1, zs] += np.count_nonzero(block & (objects[zs, ys, xs] > 0), axis=(1, 2))
        sel = (idx[:, 0] >= zs.start) & (idx[:, 0] < zs.stop) & (idx[:, 1] >= ys.start) & (idx[:, 1] < ys.stop)
        if sel.any():
            zi, yi, xi = idx[sel].T
            inside[sel] = block[zi - zs.start, yi - ys.start, xi]
    return total, inside, per_z


@recording
def analyze(volume, *, intensity=None, probability=None, voxel_size=None, options: AnalysisOptions | None = None,
            workdir=None, progress=None, sample_mask=None, keep_labels: bool = False, origin=None,
            roi=None) -> Analysis:
    """Label and measure the objects of a mask or a probability map.

    Parameters
    ----------
    volume : Volume or ndarray
        A mask (nonzero = object), a probability map on the 0-255 scale (object where > threshold) or one in
        [0, 1] (:func:`~tomoseg.inference.predict`'s, read as ``rint(p * 255)``), read as ``options.read_as`` says (:func:`~tomoseg.objects.reading.read_as`; ``Analysis.reading`` tells how).
    intensity : Volume or ndarray, optional
        The gray-value image, for each object's mean gray value.
    probability : Volume or ndarray, optional
        The probability map, for each object's mean and max probability (defaults to ``volume`` when that is
        a probability map).
    voxel_size : (z, y, x) nm, optional
    sample_mask : Volume or ndarray, optional
        Nonzero inside the sample. Objects are marked ``in_sample`` by their centroid; the summary (Table 1,
        volume fraction, number density) then covers the kept objects inside the sample, over its volume;
        without it, the kept objects over the whole volume.
    keep_labels : bool
        Where the volume is labelled chunk by chunk, keep the labels (``Analysis.labels``) for a label image
        (:func:`~tomoseg.objects.write_label_image`'s ``labels``) instead of labelling again; the caller
        discards them (``Analysis.labels.discard()``).
    origin : (z, y, x) nm, optional
        Where the centre of voxel (0, 0, 0) lies (an NRRD's space origin): added to the ``centroid_*_nm``
        columns, so that they are positions in the file's physical space.
    roi : ((z0, z1), (y0, y1), (x0, x1)) or three slices, optional
        The box a map was segmented in (``segment --roi``; the map is 0 outside it): analysed as the volume.
        Objects touching a face of the box count as touching the border (they are cut there), and without a
        ``sample_mask`` the box is the sample (volume fraction and number density over its voxels); with one,
        the sample inside the box (the part that was segmented).
    """
    from ..errors import checked_options
    from ..io.volume import check_array, checked_voxel_size

    options = checked_options(options, AnalysisOptions)
    voxel_size = checked_voxel_size(voxel_size)
    volume = check_array(volume, "volume")
    intensity, probability, sample_mask = (None if v is None else check_array(v, name) for v, name in (
        (intensity, "intensity"), (probability, "probability"), (sample_mask, "sample_mask")))
    shape = tuple(int(s) for s in volume.shape)
    for name, other in (("intensity", intensity), ("probability", probability), ("sample mask", sample_mask)):
        if other is not None and tuple(other.shape) != shape:
            raise TomosegError(f"{name} volume {tuple(other.shape)} and mask {shape} differ in shape")
    reading = read_as(volume, options.read_as)
    if sample_mask is not None:
        check_sample_mask(sample_mask, options.in_memory_voxels)
    if roi is not None:
        roi = roi_box(roi, shape)
        if sample_mask is None:
            sample_mask = BoxMask(shape, roi)
        else:  # the part of the sample that was segmented: the map is 0 outside the box (review SM2)
            sample_mask = MaskInBox(sample_mask, roi)
            try:
                check_sample_mask(sample_mask, options.in_memory_voxels)
            except TomosegError:
                raise TomosegError(f"{sample_mask.name}: holds no voxel inside the box {_box_text(roi)} the map was "
                                   "segmented in; give the mask of the sample in that box, or analyse the whole "
                                   "volume (--no-roi; API: roi=None)") from None
    where = None
    if probability is not None:  # a map beside a mask, for the probability columns: 0-255, read as uint8
        where = path_of(probability) or "the probability map"
        probability = probability_values(probability, where=f"{where} (the probability map)")
    while True:  # a block the sample's reading does not allow: read again (at most twice; reading.py)
        try:
            table, fraction, profile, kept = _label_and_measure(reading.view(volume), reading.probability, intensity,
                                                       probability, voxel_size, options, workdir, progress,
                                                       keep_labels)
        except ReadingChanged as changed:
            reading = reading.revised(volume, changed)
            if progress is not None and hasattr(progress, "reset"):
                progress.reset()
            continue
        if probability is None and reading.shows_object_ids(table, options.min_voxels):
            # a sparse label image the ID sample missed: its objects (the IDs above the threshold) are flat
            # plateaus of several values, which no probability map makes. Read again as a label image
            if kept is not None:
                kept.discard()
            reading = reading.as_object_ids()
            if progress is not None and hasattr(progress, "reset"):
                progress.reset()
            continue
        break
    if probability is not None and len(table["label"]) and \
            0 < np.nanmax(table["max_probability"]) <= 1.5 / 255:  # value 1 at most: a 0/1 mask
        warn(f"{where}: holds only 0 and 1 where the objects are (a mask?), so the mean_probability and "
             "max_probability columns read 0 to 0.004 (value / 255). Give the probability map from tomoseg segment")
    try:
        return _finish(volume, reading.whole(), table, (fraction, profile), options, voxel_size, sample_mask, kept,
                       origin, roi, intensity)
    except BaseException:  # the labels kept for the caller are the caller's only once this returns
        if kept is not None:
            kept.discard()
        raise


def _label_and_measure(volume, prob_map: bool, intensity, probability, voxel_size, options, workdir, progress,
                       keep_labels) -> tuple:
    """:func:`analyze`'s labelling and measuring of ``volume`` (as its reading reads it): (every object's table,
    the object fraction of each z slice, each object's voxels per z slice (:func:`z_profile`), the labels kept
    or None)."""
    shape = tuple(int(s) for s in volume.shape)
    if prob_map and probability is None:
        probability = volume
    size = int(np.prod(shape, dtype=np.int64))
    kept = None
    if size <= options.in_memory_voxels:
        mask = mask_of(np.asarray(volume if isinstance(volume, np.ndarray) else volume[:, :, :]), prob_map,
                       options.threshold)
        fraction = mask.mean(axis=(1, 2))
        labels, _ = label_objects(mask, connectivity=options.connectivity)
        del mask
        profile = z_profile(labels)
        table = measure_table(labels, intensity=None if intensity is None else intensity[:, :, :],
                                probability=None if probability is None else probability[:, :, :],
                                voxel_size=voxel_size)
        if progress is not None:
            progress.update(size)
        return table, fraction, profile, kept
    clean_stale_label_stores(workdir)
    tmp = make_temporary_folder(LABEL_STORE_PREFIX, workdir)
    (tmp / _OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
    try:
        store = tmp / "labels.zarr"
        # bounding boxes, the fraction along z and the objects within one chunk measured as labels are written
        with MeasurePool(options.processes) as pool:  # the objects measured in processes: not held by the GIL
            inner = _InnerObjects(shape, intensity, probability, voxel_size, probability is volume,
                                  measure=pool.measure)
            label_chunked(volume, store, chunks=options.chunks, connectivity=options.connectivity,
                          threshold=options.threshold if prob_map else None, visit=inner,
                          progress=None if progress is None else _Halved(progress))
        labels_arr = open_label_store(store)
        done = inner.parts + inner.crossing()
        rest = inner.bounds.boxes(sorted(inner.dropped))  # every other object is measured already
        table = _measure_chunked(labels_arr, rest, intensity, probability, voxel_size, options, done)
        if keep_labels:
            kept = KeptLabels(store, int(len(table["label"])))
        return table, inner.bounds.fraction, inner.bounds.profile, kept
    finally:
        if kept is None:
            shutil.rmtree(tmp, ignore_errors=True)


def roi_box(roi, shape) -> tuple:
    """A box (three slices, or three (start, stop) pairs) checked against ``shape``: three slices."""
    try:
        box = tuple(r if isinstance(r, slice) else slice(int(r[0]), int(r[1])) for r in roi)
        box = tuple(slice(0 if b.start is None else int(b.start), n if b.stop is None else int(b.stop))
                    for b, n in zip(box, shape))
    except (TypeError, ValueError, IndexError):
        raise TomosegError(f"roi {roi!r}: give three (start, stop) pairs (z, y, x)") from None
    if len(box) != 3 or not all(0 <= b.start < b.stop <= n for b, n in zip(box, shape)):
        raise TomosegError(f"roi {roi!r}: not a box inside the volume {tuple(shape)}")
    return box


class BoxMask:
    """A box as a sample mask (True inside), read block by block like a mask volume: the ``--roi`` of a map."""

    def __init__(self, shape, box):
        self.shape, self.box, self.dtype = tuple(int(s) for s in shape), tuple(box), np.dtype(bool)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        axes = []
        for k, b, n in zip(key, self.box, self.shape):
            r = np.arange(n)[k]
            axes.append((r >= b.start) & (r < b.stop))
        return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]


class MaskInBox:
    """A sample mask inside a box (False outside it), read block by block like a mask volume: the sample of a map
    from ``segment --roi``, which is 0 outside its box. Without the box, the sample's voxels outside it, never
    segmented, were counted in the denominator (a quarter of them in the review: fractions 25 % low)."""

    def __init__(self, mask, box):
        from ..io.blocks import storage_chunks

        self.mask, self.box = mask, tuple(box)
        self.shape, self.dtype = tuple(int(s) for s in mask.shape), np.dtype(bool)
        self.chunks = storage_chunks(mask)  # read in the mask's own blocks
        self.name = f"sample mask {path_of(mask) or ''}".rstrip()

    def __getitem__(self, key):
        from ..sample_mask import inside

        return BoxMask(self.shape, self.box)[key] & inside(self.mask[key], self.name)


def _box_text(box) -> str:
    return ",".join(f"{b.start}:{b.stop}" for b in box)


def cut_by_box(table, box, shape) -> np.ndarray:
    """Which objects of ``table`` touch an inner face of ``box`` (a face that is not the volume's own edge):
    the objects a segmentation restricted to the box cut there."""
    cut = np.zeros(len(table["label"]), bool)
    for axis, b, n in zip("zyx", box, shape):
        first, last = np.asarray(table[f"bbox_{axis}0"]), np.asarray(table[f"bbox_{axis}1"])
        if b.start > 0:
            cut |= first <= b.start
        if b.stop < n:
            cut |= last >= b.stop
    return cut


def _region_box(sample_mask, shape, options: AnalysisOptions):
    """The box the analysed region is, where it is one and the objects touching its faces are left out (the
    whole volume, or a ``segment --roi`` box): None for a sample mask of another shape or with the border kept,
    where no edge correction holds."""
    if not options.exclude_border:
        return None
    if sample_mask is None:
        return tuple(slice(0, n) for n in shape)
    return sample_mask.box if isinstance(sample_mask, BoxMask) else None


def _corrected_density(population: dict, box, voxels: int, voxel_um3) -> dict:
    """The edge-corrected number density of the kept objects (:func:`~.measure.edge_weights`) over the box's
    ``voxels``: per µm³ (None without a voxel size) and per 10^6 voxels; both None where the region is no box."""
    if box is None:
        return {"number_density_corrected_per_um3": None, "number_density_corrected_per_mvox": None}
    weighted = float(edge_weights(population, box).sum())
    return {"number_density_corrected_per_um3": weighted / (voxels * voxel_um3) if voxel_um3 else None,
            "number_density_corrected_per_mvox": weighted / voxels * 1e6}


def _finish(volume, reading: Reading, table, fractions, options, voxel_size, sample_mask, kept,
            origin, roi=None, intensity=None) -> Analysis:
    """The marks, selection, summary and sample-mask figures of :func:`analyze` (``fractions``: every object's
    fraction of each z slice, and the objects' voxels per slice, :func:`z_profile`)."""
    fraction, profile = fractions
    shape = tuple(int(s) for s in volume.shape)
    size = int(np.prod(shape, dtype=np.int64))
    warn_if_flooded(float(fraction.mean()), path_of(volume) or "the volume")
    vs = voxel_size
    if vs and origin is not None:  # positions in the file's physical space
        for axis, name in enumerate("zyx"):
            table[f"centroid_{name}_nm"] = table[f"centroid_{name}_nm"] + float(origin[axis])
    table["too_small"] = (np.asarray(table["volume_vox"]) < options.min_voxels).astype(np.int64)
    if roi is not None and len(table["label"]):  # cut by the box: border objects of the box
        table["touches_border"] = (np.asarray(table["touches_border"]).astype(bool)
                                   | cut_by_box(table, roi, shape)).astype(np.int64)
    if sample_mask is not None:
        centroids = np.stack([np.asarray(table[f"centroid_{a}"], float) for a in "zyx"], 1) \
            if len(table["label"]) else np.zeros((0, 3))
        sample_voxels, inside, per_z = _sample_mask_counts(
            sample_mask, centroids, shape, options.in_memory_voxels,
            objects=MaskView(volume, options, probability=reading.probability))
        if sample_voxels == 0:
            raise TomosegError("the sample mask is empty (no nonzero voxel); give the mask of the sample")
        table["in_sample"] = inside.astype(np.int64)
    selected = select_objects(table, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    counted = np.ones(len(selected["label"]), bool) if sample_mask is None else selected["in_sample"] == 1
    population = rows_of(selected, counted)  # Table 1's objects: kept (and in the sample)
    summary = summarize(population)
    if not vs:
        summary["mean_radius_nm"] = summary["sd_radius_nm"] = None  # not the voxel value under another name
    kept_voxels = np.asarray(population["volume_vox"], dtype=np.int64)
    counted_z = slice_counts(profile, population["label"], shape[0])  # the summary's objects' voxels per slice
    if sample_mask is not None:
        # all objects on the same basis as volume_fraction: their voxels inside the sample, per slice and in all
        all_objects = float(per_z[1].sum() / sample_voxels)
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(per_z[0] > 0, per_z[1] / np.maximum(per_z[0], 1), np.nan)
            fraction_counted = np.where(per_z[0] > 0, counted_z / np.maximum(per_z[0], 1), np.nan)
        region = "the sample mask"
        if isinstance(sample_mask, BoxMask):
            region = "the ROI box " + _box_text(sample_mask.box)
        elif isinstance(sample_mask, MaskInBox):
            region = "the sample mask inside the ROI box " + _box_text(sample_mask.box)
        basis = (f"volume_fraction_all_objects (the phase's volume fraction): every object voxel (objects touching "
                 f"the border and small ones included) inside {region}, over its voxels; volume_fraction: only the "
                 f"kept objects (after the border and size exclusions) whose centroid lies inside {region}, over "
                 "its voxels (lower: the objects cut by the border are left out)")
        population_basis = ("objects, the radii and sphericities, volume_fraction and number_density_per_um3: "
                            "the kept objects whose centroid lies inside the sample mask (in_sample = 1); "
                            "objects_outside_sample: kept objects outside it (in the table, in_sample = 0)")
    else:
        sample_voxels = size
        all_objects = float(fraction.mean())
        fraction_counted = counted_z / (shape[1] * shape[2])
        basis = ("volume_fraction_all_objects (the phase's volume fraction): every object voxel (objects touching "
                 "the border and small ones included) over the whole volume; volume_fraction: only the kept "
                 "objects (after the border and size exclusions) over the whole volume (lower: the objects cut by "
                 "the border are left out). Both include the surroundings: pass a sample mask to measure inside "
                 "the sample")
        population_basis = "every figure of the summary: the kept objects (after the border and size exclusions)"
    voxel_um3 = float(np.prod(vs)) / 1e9 if vs else None
    n_counted = int(len(kept_voxels))
    border = np.asarray(table["touches_border"], bool) if options.exclude_border else np.zeros(len(table["label"]),
                                                                                                bool)
    summary.update({
        "objects_all": int(len(table["label"])),
        # each excluded object counted once: the border first, then the small ones among the rest
        "excluded_border": int(np.count_nonzero(border)),
        "excluded_small": int(np.count_nonzero((table["volume_vox"] < options.min_voxels) & ~border)),
        "objects_outside_sample": int(len(counted) - n_counted) if sample_mask is not None else None,
        "volume_fraction_all_objects": all_objects,  # the phase's volume fraction (first: the headline)
        "volume_fraction": float(kept_voxels.sum() / sample_voxels),
        "number_density_per_um3": float(n_counted / (sample_voxels * voxel_um3)) if vs else None,
        # per 10^6 voxels: the density where the voxel size is not known (number_density_per_um3 null)
        "number_density_per_mvox": float(n_counted / sample_voxels * 1e6),
        "number_density_note": ("kept objects over the analysed volume: objects touching the border are not "
                                "counted, so the density is biased low (more so for small volumes and large "
                                "objects); number_density_corrected_* weights each kept object by the inverse "
                                "of its chance to be counted (Miles-Lantuejoul), where the analysed region is a "
                                "box (docs/analysis.md)"),
        **_corrected_density(population, _region_box(sample_mask, shape, options), sample_voxels, voxel_um3),
        "analysed_volume_um3": float(sample_voxels * voxel_um3) if vs else None,
        "analysed_voxels": int(sample_voxels),
        "objects_basis": population_basis,
        "fraction_basis": basis,
        "read_as": reading.kind,
        "reading": reading.note(options.threshold),
        "origin_nm": [float(o) for o in origin] if vs and origin is not None else None,  # in centroid_*_nm
        "roi": [[b.start, b.stop] for b in roi] if roi is not None else None,  # analysed as the volume
    })
    # with the gray image: dark regions larger than the model's objects holding several of them (review S8)
    regions = large_dark_regions(intensity, population, chunks=options.chunks) \
        if intensity is not None and n_counted else None
    message = large_regions_warning(regions, n_counted)
    if message:
        warn(message)
    summary["large_dark_regions"] = regions
    summary["notes"] = said()  # the notes and warnings given so far (reading it, assuming a voxel size, ...)
    return Analysis(objects=table, selected=selected, summary=summary, fraction_along_z=fraction_counted,
                    voxel_size=tuple(vs) if vs else None, shape=shape, options=options, labels=kept,
                    reading=reading, fraction_along_z_all=fraction)


def z_profile(labels: np.ndarray, z0: int = 0, nz: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each object's voxels per z slice in a block of labels starting at slice ``z0`` of a volume of ``nz``
    slices: sorted keys ``label * nz + z`` and their voxel counts (int64), one per slice an object crosses
    (a few per object: far fewer than its voxels). Blocks' profiles add with
    :func:`~tomoseg.objects.matching.sum_by_key`."""
    nz = int(labels.shape[0]) if nz is None else int(nz)
    where = np.flatnonzero(labels)
    keys = labels.ravel()[where].astype(np.int64) * nz + (where // (labels.shape[1] * labels.shape[2]) + z0)
    keys, counts = np.unique(keys, return_counts=True)
    return keys, counts.astype(np.int64)


def slice_counts(profile, labels, nz: int) -> np.ndarray:
    """The voxels of the objects ``labels`` in each of the ``nz`` z slices, from a :func:`z_profile`."""
    keys, counts = profile
    mine = np.isin(keys // nz, np.asarray(labels, np.int64))
    return np.bincount(keys[mine] % nz, weights=counts[mine], minlength=nz).astype(np.int64)


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
    summaries merged under a lock). Boxes are kept in arrays indexed by label (the labels are 1..n): 24 bytes an
    object (int32: a volume's edges are far below 2^31 voxels), for the millions of a terabyte."""

    def __init__(self, shape):
        self.shape = shape
        if max(shape) >= 2**31:
            raise TomosegError(f"a volume of shape {tuple(shape)}: edges of 2^31 voxels or more are not supported")
        self.lo = np.zeros((0, 3), np.int32)
        self.hi = np.zeros((0, 3), np.int32)
        self.counts = np.zeros(shape[0], np.int64)  # object voxels per z slice: integers, in any order the same
        self._profiles: list = []                    # each chunk's z_profile (label * nz + z, voxels)
        self._lock = threading.Lock()

    @property
    def fraction(self) -> np.ndarray:
        return self.counts / (self.shape[1] * self.shape[2])

    @property
    def profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Each object's voxels per z slice (:func:`z_profile`), the chunks' summed."""
        from .matching import sum_by_key

        return sum_by_key([k for k, _ in self._profiles], [c for _, c in self._profiles])

    def _grow(self, size: int) -> None:
        if size > len(self.lo):
            size = max(size, 2 * len(self.lo))
            lo, hi = np.full((size, 3), np.iinfo(np.int32).max, np.int32), np.full((size, 3), -1, np.int32)
            lo[:len(self.lo)], hi[:len(self.hi)] = self.lo, self.hi
            self.lo, self.hi = lo, hi

    def __call__(self, sl, block: np.ndarray) -> tuple:
        """Add a chunk's labels; returns its objects' labels and boxes within the chunk (starts, stops: (n, 3))."""
        where = np.flatnonzero(block)
        if where.size == 0:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)
        rows = np.bincount(where // (block.shape[1] * block.shape[2]), minlength=block.shape[0])
        # each label's box from its voxels' positions, by a sort of the object voxels only (a sort of the whole
        # chunk, np.unique's way, cost 60 ms a 128^3 chunk; find_objects on a renumbered copy of it, and slices
        # turned into numbers, a fifth of analyze's time once objects were measured all at once)
        values = block.ravel()[where]
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        first = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        ids = ordered[first].astype(np.int64)
        origin = np.array([s.start for s in sl], np.int64)
        position = np.unravel_index(where[order], block.shape)
        starts = np.stack([np.minimum.reduceat(c, first) for c in position], axis=1).astype(np.int64) + origin
        stops = np.stack([np.maximum.reduceat(c, first) for c in position], axis=1).astype(np.int64) + 1 + origin
        keys = values.astype(np.int64) * self.shape[0] + (where // (block.shape[1] * block.shape[2]) + sl[0].start)
        profile = np.unique(keys, return_counts=True)
        with self._lock:
            self.counts[sl[0]] += rows
            self._profiles.append(profile)
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
                 piece_bytes: int | None = None, measure=measure_block):
        """``probability_read``: ``probability`` is the volume being labelled, whose blocks come with the labels.
        ``measure``: :func:`.measure_processes.measure_block`, or a :class:`.measure_processes.MeasurePool`'s
        ``measure`` (in worker processes)."""
        self.shape, self.intensity, self.probability, self.voxel_size = shape, intensity, probability, voxel_size
        self.measure = measure
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

        first = np.array([r.start for r in region])
        last = np.array([r.stop for r in region])
        alone = np.all(((starts > first) | (first == 0)) & ((stops < last) | (last == np.array(shape))), axis=1)
        pieces = []
        for row in np.flatnonzero(~alone).tolist():
            lab, box = int(ids[row]), tuple(slice(int(a), int(b)) for a, b in zip(starts[row], stops[row]))
            at = within(box, region)
            pieces.append((lab, (box, labels[at] == lab, None if gray is None else gray[at].copy(),
                                 None if prob is None else prob[at].copy())))
        inner = ids[alone]  # measured from the chunk in hand, all at once
        part = self.measure(labels, gray, prob, region, inner, self.voxel_size, shape) if len(inner) else None
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

    def crossing(self, group: int = 4096) -> list:
        """Measure the objects that cross chunks from their pieces (those whose pieces were all kept): one table
        per ``group`` objects (one per object cost about 5 KB an object: 26 arrays of one value each, and their
        dict)."""
        boxes = self.bounds.boxes(list(self.pieces))
        labs = sorted(self.pieces)
        parts = []
        for first in range(0, len(labs), group):
            chosen = {lab: boxes[lab] for lab in labs[first:first + group]}
            by_region: dict = {}  # what measure_table reads for an object: its box and a voxel of margin
            for lab, box in chosen.items():
                region = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, self.shape))
                by_region.setdefault(_key(region), []).append(lab)
            parts.append(measure_table(None, voxel_size=self.voxel_size, shape=self.shape, bboxes=chosen,
                                       read=lambda region, found=by_region: self._assemble(region,
                                                                                           found[_key(region)])))
            for lab in chosen:
                del self.pieces[lab]
        return parts

    def _assemble(self, region, labs) -> tuple:
        """The labels, gray values and probabilities of ``region`` from the pieces of the objects ``labs`` (those
        whose box with its margin is ``region``: two objects can share one), zero elsewhere."""
        size = tuple(r.stop - r.start for r in region)
        first = self.pieces[labs[0]][0]
        labels = np.zeros(size, np.uint32)
        gray = None if first[2] is None else np.zeros(size, first[2].dtype)
        prob = None if first[3] is None else np.zeros(size, first[3].dtype)
        for lab in labs:
            for where, mask, g, p in self.pieces[lab]:
                at = within(where, region)
                labels[at][mask] = lab
                if gray is not None:
                    gray[at][mask] = g[mask]
                if prob is not None:
                    prob[at][mask] = p[mask]
        return labels, gray, prob


def _key(region) -> tuple:
    """A box of slices as a key of a dict (slices are not hashable before Python 3.12)."""
    return tuple((s.start, s.stop) for s in region)


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
            lab, gray, prob = read(region)
            out.append(measure_table(lab, intensity=gray, probability=prob, voxel_size=voxel_size, shape=shape,
                                     bboxes=inside, region=region))
        if outside:
            out.append(measure_table(None, voxel_size=voxel_size, shape=shape, bboxes=outside, read=read))
        return out

    parts = list(measured) + [p for _, group in read_ahead(sorted(groups.items()), measure,
                                                            threads=worker_threads(16)) for p in group]
    if not parts:
        return measure_table(np.zeros((1, 1, 1), np.uint32))
    # one column at a time, each part's column let go as it is joined: the rows once more, not twice (a table of
    # millions of objects is hundreds of MB)
    order = np.argsort(np.concatenate([p["label"] for p in parts]))
    return {c: np.concatenate([p.pop(c) for p in parts])[order] for c in list(parts[0])}
