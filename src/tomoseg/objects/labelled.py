"""Label and measure a volume and keep its labels, for work that compares label volumes (tracking two scans,
evaluating a prediction against ground truth): in memory where it fits, else chunk by chunk.

The volume is read by ``analyze``'s rule (:func:`~tomoseg.objects.reading.read_as`: mask, 0-255 probability map
or label image, whatever its type; refusals as there), except that a label image keeps its own IDs. A volume of at
most ``in_memory_voxels`` is read whole, labelled and measured in memory. A larger one never is:

- a mask or a probability map is labelled and measured by :func:`~tomoseg.objects.analyze` chunk by
  chunk, which keeps its label volume on disk (a Zarr store in a temporary folder) until :meth:`discard`;
- a label image keeps its own IDs: one pass finds each object's box, then objects
  are measured from crops (as ``analyze`` measures a large volume).

Either way the table has every object (``touches_border`` flagged, none dropped; a probability map's
confidence columns filled) and the labels are an array or anything sliced like one, read block by block by
:func:`~tomoseg.objects.matching.block_overlaps` and :func:`~tomoseg.track.matching.carried_overlaps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TomosegError
from ..io.volume import path_of
from .analysis import IN_MEMORY_VOXELS, AnalysisOptions, KeptLabels, _Bounds, _measure_chunked, analyze
from .labelling import label_objects, open_label_store
from .measure import COLUMNS, measure_table
from .reading import Reading, mask_of, read_as

MAX_LABEL_ID = 2**27  # a label image's largest ID sizes arrays indexed by ID (boxes: 6 GiB here; in memory too)


@dataclass
class LabelledScan:
    """A volume's objects (``table``: every object, one row each) and the label volume they were measured
    from (``labels``: an ndarray, the user's label volume, or a Zarr array of labels ``kept`` on disk until
    :meth:`discard`)."""

    table: dict
    labels: object
    kept: KeptLabels | None = None
    reading: Reading | None = None  # how ``labels`` were read (label_note says it in one line)

    def discard(self) -> None:
        if self.kept is not None:
            self.kept.discard()
            self.kept = None


def label_note(reading: Reading, threshold: int) -> str:
    """How a label volume was read, in one line (the CLI's stderr note): as ``analyze`` says it, except that a
    label image keeps its IDs here (``analyze`` finds its objects again by connectivity)."""
    if reading.kind == "labels":
        return "read as a label image (object IDs): each ID is one object"
    return reading.note(threshold)


def check_label_ids(top: int, where) -> None:
    """Refuse IDs so large that the arrays indexed by ID (one row an ID up to the largest) would not fit."""
    if top > MAX_LABEL_ID:
        raise TomosegError(f"{where}: holds IDs up to {top}: objects are indexed by ID here (48 bytes an ID, "
                           f"{48 * top / 2**30:.0f} GiB); renumber them 1..n first "
                           "(skimage.segmentation.relabel_sequential), or give the mask instead")


def as_labels(data: np.ndarray, reading: Reading, *, threshold: int = 127, connectivity: int = 26) -> np.ndarray:
    """Instance labels (uint32) from a volume in memory as ``reading`` reads it: a label image's own IDs, a
    mask's (value != 0) or a probability map's (value > ``threshold``; a map in [0, 1] as ``rint(p * 255)``)
    objects found by connectivity."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise TomosegError(f"{reading.where}: labels must be 3D (z, y, x), got shape {data.shape}")
    if reading.kind == "labels":
        check_label_ids(int(data.max(initial=0)), reading.where)
        return data.astype(np.uint32, copy=False)
    if reading.unit:  # a map in [0, 1]: thresholded as rint(p * 255), as its note says and analyze reads it
        data = reading.view(data)[:, :, :]
    return label_objects(mask_of(data, reading.probability, threshold), connectivity=connectivity)[0]


def label_scan(image, labels, *, reading: Reading | None = None, probability=None, voxel_size=None,
               threshold: int = 127, connectivity: int = 26, in_memory_voxels: int = IN_MEMORY_VOXELS,
               chunks=(128, 128, 128), workdir=None, progress=None) -> LabelledScan:
    """Label and measure one volume, keeping its labels.

    Parameters
    ----------
    image : ndarray or Volume, or None
        The gray-value image (each object's ``mean_gray``).
    labels : ndarray or Volume
        A label image, a mask or a probability map of the image's shape, read by ``analyze``'s rule
        (:func:`~tomoseg.objects.reading.read_as`: a 0/1 mask of any type is a mask, whole values 0-255 a
        probability map, object where > ``threshold``, whose values also give each object's confidence
        columns; fractions, negative values and values above 255 that are not object IDs are refused), except
        that a label image keeps its IDs.
    reading : Reading, optional
        How to read ``labels`` (default: :func:`~tomoseg.objects.reading.read_as`'s automatic reading).
    probability : ndarray or Volume, optional
        The probability map for the confidence columns, where ``labels`` is not it (a mask view of it, say).
    in_memory_voxels : int
        Larger volumes are labelled and measured chunk by chunk (``chunks``), never read whole.
    progress : optional
        Given the volume's voxels as they are labelled (``update(n)``). A volume read again under a revised
        reading (values the first look did not show) adds its voxels read so far to the bar's total and says
        so on the bar (:class:`~tomoseg.progress.Stage`), rather than restarting the caller's whole bar.
    """
    from pathlib import Path

    from ..progress import Stage

    if reading is None:
        reading = read_as(labels, where=path_of(labels) or "the labels", command="track")
    stage = None if progress is None else Stage(progress, again=f"reading {Path(str(reading.where)).name} again")
    try:
        return _label_scan(image, labels, reading, probability, voxel_size, threshold, connectivity,
                           in_memory_voxels, chunks, workdir, stage)
    finally:
        if stage is not None:
            stage.finish()


def _label_scan(image, labels, reading: Reading, probability, voxel_size, threshold: int, connectivity: int,
                in_memory_voxels: int, chunks, workdir, progress) -> LabelledScan:
    """:func:`label_scan`, its progress a :class:`~tomoseg.progress.Stage` (or None)."""
    shape = tuple(int(s) for s in labels.shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size <= in_memory_voxels:
        data = np.asarray(labels[:, :, :])
        if not reading.verified:  # judged on a sample: judge again on every value
            reading = read_as(data, reading.how, where=reading.where, command=reading.command)
        while True:
            lab = as_labels(data, reading, threshold=threshold, connectivity=connectivity)
            prob = probability
            if prob is None and reading.probability:
                prob = reading.view(data)[:, :, :] if data.dtype != np.uint8 else data  # 0-255 as uint8
            table = measure_table(lab, intensity=None if image is None else np.asarray(image[:, :, :]),
                                  probability=None if prob is None else np.asarray(prob[:, :, :]),
                                  voxel_size=voxel_size)
            if probability is None and reading.shows_object_ids(table):  # a sparse label image (as analyze)
                reading = reading.as_object_ids()
                continue
            break
        if progress is not None:
            progress.update(size)
        return LabelledScan(table, lab, reading=reading.whole())
    if reading.kind == "labels":
        return _given_labels(image, labels, voxel_size, chunks, progress, probability, reading)
    options = AnalysisOptions(threshold=threshold, connectivity=connectivity, exclude_border=False, min_voxels=1,
                              chunks=tuple(chunks), in_memory_voxels=0, read_as=reading.how)
    result = analyze(labels, intensity=image, probability=probability, voxel_size=voxel_size, options=options,
                     workdir=workdir, progress=progress, keep_labels=True)
    if result.reading.kind == "labels":  # the full pass found object IDs the sample did not show: keep them
        result.labels.discard()
        if progress is not None:  # its voxels are read again
            progress.reset()
        return _given_labels(image, labels, voxel_size, chunks, progress, probability, result.reading)
    try:
        store = open_label_store(result.labels.path)
    except BaseException:
        result.labels.discard()
        raise
    # the measurements only, as in memory (analyze's marks, such as too_small, belong to its own tables)
    return LabelledScan({c: result.objects[c] for c in COLUMNS}, store, result.labels, result.reading)


def _given_labels(image, labels, voxel_size, chunks, progress, probability, reading) -> LabelledScan:
    """A label image larger than memory, its IDs kept: boxes in one pass over chunks, then crops measured."""
    from ..io.blocks import chunk_regions, read_ahead, worker_threads

    shape = tuple(int(s) for s in labels.shape)
    bounds = _Bounds(shape)
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape))

    def boxes(region):  # on a worker thread
        block = np.asarray(labels[region])
        if np.issubdtype(block.dtype, np.signedinteger) and block.size and block.min() < 0:
            raise TomosegError(f"{reading.where}: holds negative values (down to {int(block.min())}, in "
                               f"{region}): give non-negative integer labels")
        check_label_ids(int(block.max()) if block.size else 0, reading.where)
        bounds(region, block)
        return block.size

    for _, n in read_ahead(chunk_regions(shape, chunks), boxes, threads=worker_threads(8)):
        if progress is not None:
            progress.update(n)
    present = np.flatnonzero(bounds.hi[:, 0] >= 0)
    options = AnalysisOptions(chunks=chunks)
    table = _measure_chunked(_AsUint32(labels), bounds.boxes(present), image, probability, voxel_size, options)
    return LabelledScan(table, _AsUint32(labels), reading=reading.whole())


class _AsUint32:
    """A label volume read as uint32, region by region."""

    def __init__(self, labels):
        self.labels, self.shape, self.dtype = labels, tuple(labels.shape), np.dtype(np.uint32)

    def __getitem__(self, key):
        return np.asarray(self.labels[key]).astype(np.uint32, copy=False)
