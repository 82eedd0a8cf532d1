"""Label and measure a volume and keep its labels, for work that compares label volumes (tracking two scans,
evaluating a prediction against ground truth): in memory where it fits, else chunk by chunk.

A volume of at most ``in_memory_voxels`` is read whole, labelled and measured in memory. A larger one never is:

- a mask or a uint8 probability map is labelled and measured by :func:`~tomoseg.objects.analyze` chunk by
  chunk, which keeps its label volume on disk (a Zarr store in a temporary folder) until :meth:`discard`;
- a label image (integers wider than uint8) keeps its own IDs: one pass finds each object's box, then objects
  are measured from crops (as ``analyze`` measures a large volume).

Either way the table has every object (``touches_border`` flagged, none dropped; a probability map's
confidence columns filled) and the labels are an array or anything sliced like one, read block by block by
:func:`~tomoseg.objects.matching.block_overlaps` and :func:`~tomoseg.track.matching.carried_overlaps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TomosegError
from .analysis import IN_MEMORY_VOXELS, AnalysisOptions, KeptLabels, _Bounds, _measure_chunked, analyze
from .labelling import label_objects, open_label_store
from .measure import COLUMNS, measure_objects
from .reading import check_mask_like

MAX_LABEL_ID = 2**27  # a label image larger than memory: its largest ID sizes the arrays of boxes (6 GiB here)


@dataclass
class LabelledScan:
    """A volume's objects (``table``: every object, one row each) and the label volume they were measured
    from (``labels``: an ndarray, the user's label volume, or a Zarr array of labels ``kept`` on disk until
    :meth:`discard`)."""

    table: dict
    labels: object
    kept: KeptLabels | None = None

    def discard(self) -> None:
        if self.kept is not None:
            self.kept.discard()
            self.kept = None


def is_label_image(data) -> bool:
    """Integers wider than uint8 (uint16, uint32, int64 …): object IDs, not a mask or a probability map."""
    dtype = np.dtype(data.dtype)
    return dtype != bool and np.issubdtype(dtype, np.integer) and dtype.itemsize > 1


def as_labels(data, *, threshold: int = 127, connectivity: int = 26) -> np.ndarray:
    """Instance labels from a label image (wider than uint8), a mask (0/1, bool) or a uint8 probability map."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise TomosegError(f"labels must be 3D (z, y, x), got shape {data.shape}")
    if data.dtype == bool or (data.dtype == np.uint8 and data.max() <= 1):
        return label_objects(data, connectivity=connectivity)[0]
    if data.dtype == np.uint8:
        return label_objects(data > threshold, connectivity=connectivity)[0]
    if not np.issubdtype(data.dtype, np.integer) or data.min() < 0:
        raise TomosegError(f"labels of dtype {data.dtype}: give a mask, a uint8 probability map or non-negative "
                           "integer labels")
    if data.dtype.itemsize > 4 and data.max() >= 2**32:
        raise TomosegError(f"labels hold IDs up to {int(data.max())}: renumber them 1..n first "
                           "(skimage.segmentation.relabel_sequential); they are kept as uint32")
    return data.astype(np.uint32, copy=False)


def label_scan(image, labels, *, probability=None, voxel_size=None, threshold: int = 127, connectivity: int = 26,
               in_memory_voxels: int = IN_MEMORY_VOXELS, chunks=(128, 128, 128), workdir=None,
               progress=None) -> LabelledScan:
    """Label and measure one volume, keeping its labels.

    Parameters
    ----------
    image : ndarray or Volume, or None
        The gray-value image (each object's ``mean_gray``).
    labels : ndarray or Volume
        A label image, a mask or a uint8 probability map (object where > ``threshold``; its values also give
        each object's confidence columns), of the image's shape.
    probability : ndarray or Volume, optional
        The probability map for the confidence columns, where ``labels`` is not it (a mask view of it, say).
    in_memory_voxels : int
        Larger volumes are labelled and measured chunk by chunk (``chunks``), never read whole.
    progress : optional
        Given the volume's voxels as they are labelled (``update(n)``).
    """
    shape = tuple(int(s) for s in labels.shape)
    size = int(np.prod(shape, dtype=np.int64))
    check_mask_like(labels, getattr(labels, "path", "the labels"), command="tracking")
    if size <= in_memory_voxels:
        data = np.asarray(labels[:, :, :])
        lab = as_labels(data, threshold=threshold, connectivity=connectivity)
        if probability is None and data.dtype == np.uint8 and data.max() > 1:  # a probability map, as as_labels
            probability = data
        table = measure_objects(lab, intensity=None if image is None else np.asarray(image[:, :, :]),
                                probability=None if probability is None else np.asarray(probability[:, :, :]),
                                voxel_size=voxel_size)
        if progress is not None:
            progress.update(size)
        return LabelledScan(table, lab)
    if is_label_image(labels):
        return _given_labels(image, labels, voxel_size, chunks, progress, probability)
    if np.dtype(labels.dtype) not in (np.dtype(bool), np.dtype(np.uint8)):
        raise TomosegError(f"labels of dtype {np.dtype(labels.dtype)}: give a mask, a uint8 probability map or "
                           "non-negative integer labels")
    options = AnalysisOptions(threshold=threshold, connectivity=connectivity, exclude_border=False, min_voxels=1,
                              chunks=tuple(chunks), in_memory_voxels=0)
    result = analyze(labels, intensity=image, probability=probability, voxel_size=voxel_size, options=options,
                     workdir=workdir, progress=progress, keep_labels=True)
    try:
        store = open_label_store(result.labels.path)
    except BaseException:
        result.labels.discard()
        raise
    # the measurements only, as in memory (analyze's marks, such as too_small, belong to its own tables)
    return LabelledScan({c: result.objects[c] for c in COLUMNS}, store, result.labels)


def _given_labels(image, labels, voxel_size, chunks, progress, probability=None) -> LabelledScan:
    """A label image larger than memory, its IDs kept: boxes in one pass over chunks, then crops measured."""
    from ..io.blocks import chunk_regions, read_ahead, worker_threads

    shape = tuple(int(s) for s in labels.shape)
    bounds = _Bounds(shape)
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape))

    def boxes(region):  # on a worker thread
        block = np.asarray(labels[region])
        if np.issubdtype(block.dtype, np.signedinteger) and block.size and block.min() < 0:
            raise TomosegError(f"labels hold negative values (in {region}): give non-negative integer labels")
        top = int(block.max()) if block.size else 0
        if top > MAX_LABEL_ID:
            raise TomosegError(f"labels hold IDs up to {top}: objects are indexed by ID here (48 bytes an ID, "
                               f"{48 * top / 2**30:.0f} GiB); renumber them 1..n first "
                               "(skimage.segmentation.relabel_sequential), or give the mask instead")
        bounds(region, block)
        return block.size

    for _, n in read_ahead(chunk_regions(shape, chunks), boxes, threads=worker_threads(8)):
        if progress is not None:
            progress.update(n)
    present = np.flatnonzero(bounds.hi[:, 0] >= 0)
    options = AnalysisOptions(chunks=chunks)
    table = _measure_chunked(_AsUint32(labels), bounds.boxes(present), image, probability, voxel_size, options)
    return LabelledScan(table, _AsUint32(labels))


class _AsUint32:
    """A label volume read as uint32, region by region."""

    def __init__(self, labels):
        self.labels, self.shape, self.dtype = labels, tuple(labels.shape), np.dtype(np.uint32)

    def __getitem__(self, key):
        return np.asarray(self.labels[key]).astype(np.uint32, copy=False)
