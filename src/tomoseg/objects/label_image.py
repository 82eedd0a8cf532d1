"""The object label image: each object's voxels carry its row's ``label`` in the objects table.

A scientist who opens the label image in napari, Fiji or ParaView beside
``objects.csv`` finds row ``label == 17`` as the voxels of value 17. Objects the
table leaves out (touching the border, under ``min_voxels``) are dropped to 0,
so the image and the table always hold the same objects; with
``--all-objects`` both keep every object.

The labelling is the one :func:`~tomoseg.objects.analyze` uses (the same
threshold, connectivity and raster-order numbering, in memory or chunk by chunk),
so IDs agree without keeping the analysis' labels in memory; where the analysis
kept its chunked labels on disk (``analyze(keep_labels=True)``), they are used
instead of labelling again.

Every label image gets a provenance record beside it
(:func:`~tomoseg.io.output_guard.provenance_path`: ``LABELS.provenance.json``, or
``FILE#DATASET.provenance.json`` in an HDF5 file): what it was labelled from and
how (threshold, connectivity, exclusions), the objects table whose rows it holds.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .analysis import AnalysisOptions, _Halved
from .reading import MaskView, is_probability, mask_of
from ..io.blocks import chunk_regions
from ..io.volume import origin_of, path_of
from ..io.disk_space import make_temporary_folder
from .labelling import check_store_space, label_chunked, label_objects, open_label_store

__all__ = ["label_image", "write_label_image", "write_objects_ome_zarr", "object_colours", "label_dtype_for",
           "write_mapped"]


def _lookup(table: dict, n_max: int) -> np.ndarray:
    keep = np.asarray(table["label"], np.int64)
    top = max(int(n_max), int(keep.max()) if len(keep) else 0)
    lut = np.zeros(top + 1, np.uint32)
    lut[keep] = keep.astype(np.uint32)
    return lut


def label_image(volume, table: dict, *, options: AnalysisOptions | None = None,
                probability: bool | None = None) -> np.ndarray:
    """The label image (uint32, 0 = background) of the objects in ``table``, in memory.

    Parameters
    ----------
    volume : Volume or ndarray
        The mask or probability map given to :func:`~tomoseg.objects.analyze`.
    table : dict
        ``Analysis.selected`` (or ``.objects``): which labels to keep.
    options : AnalysisOptions
        The analysis' threshold and connectivity.
    probability : bool, optional
        Whether ``volume`` was read as a probability map (``Analysis.reading.probability``); else decided again
        (:func:`~tomoseg.objects.reading.is_probability`).

    Examples
    --------
    >>> from tomoseg.objects import analyze
    >>> m = np.zeros((9, 9, 9), np.uint8); m[2:5, 2:5, 2:5] = 1; m[0, 0, 0] = 1
    >>> a = analyze(m)
    >>> lab = label_image(m, a.selected, options=a.options)
    >>> sorted(np.unique(lab)), list(a.selected["label"])
    ([np.uint32(0), np.uint32(2)], [np.int64(2)])
    """
    options = options or AnalysisOptions()
    prob = is_probability(volume) if probability is None else bool(probability)
    mask = mask_of(np.asarray(volume[:, :, :]), prob, options.threshold)
    labels, n = label_objects(mask, connectivity=options.connectivity)
    return _lookup(table, n)[labels]


TIFF_MAX_ID = 2**24  # ImageJ has no uint32: IDs past 65535 go as float32, exact up to 2^24


def label_dtype_for(path, max_label: int):
    """uint32 where the format holds it; for TIFF (ImageJ has no uint32) uint16, or float32 up to 2^24."""
    from ..io import format_of

    if format_of(path, for_writing=True) not in ("tiff", "tiff-folder"):
        return np.uint32
    if max_label <= np.iinfo(np.uint16).max:
        return np.uint16
    if max_label <= TIFF_MAX_ID:
        return np.float32
    raise TomosegError(f"{path}: {max_label} objects do not fit a TIFF label image (ImageJ holds IDs up to "
                       "2^24 as float32); write the labels as .zarr or .h5")


def labelled_as(probability: bool, threshold: int) -> dict:
    """How a label image's objects were found, for its provenance record: in a probability map (object where
    value > ``threshold``) or in a mask (object where value is not 0; no threshold)."""
    if probability:
        return {"labelled_as": "probability map", "objects_where": f"value > {threshold}", "threshold": threshold}
    return {"labelled_as": "mask", "objects_where": "value != 0", "threshold": None}


def label_provenance(volume, path, table: dict, options: AnalysisOptions, *, dtype, voxel_size=None,
                     probability: bool | None) -> dict:
    """The provenance record of the label image of ``table``'s objects written to ``path`` from ``volume``:
    what it was labelled from and how (``probability``: whether ``volume`` is a probability map; None: left to
    the caller), which objects it holds. The caller adds what only it knows (:func:`write_label_image`'s
    ``provenance``: the command, the objects tables written, ``all_objects``)."""
    from .._version import __version__

    source = path_of(volume)
    ids = np.asarray(table["label"])
    return {
        "tool": "tomoseg write_label_image", "tomoseg_version": __version__, "label_image": str(path),
        "labelled_from": None if source is None else str(source),  # None: an array in memory
        **(labelled_as(probability, options.threshold) if probability is not None else {}),
        "connectivity": options.connectivity,
        "ids": "3D connected components numbered in raster order (as analyze numbers them); each object's "
               "voxels hold its row's label in the objects table, objects the table leaves out are 0",
        "objects": int(len(ids)), "max_label": int(ids.max()) if len(ids) else 0,
        # whether the table left out the objects these exclude (analyze's default) or kept every object
        # (--all-objects) is the caller's to say: all_objects
        "exclude_border": options.exclude_border, "min_voxels": options.min_voxels, "all_objects": None,
        "objects_tables": [], "dtype": str(np.dtype(dtype)), "shape": [int(s) for s in volume.shape],
        "voxel_size_nm": None if voxel_size is None else [float(v) for v in voxel_size],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_label_image(volume, path, table: dict, *, options: AnalysisOptions | None = None, voxel_size=None,
                      overwrite: bool = False, workdir=None, progress=None, labels=None, orientation=None,
                      provenance: dict | None = None, probability: bool | None = None, origin=None) -> Path:
    """Write the label image of the objects in ``table`` to ``path``, any format, in bounded memory, and its
    provenance record beside it (:func:`label_provenance`, with the entries of ``provenance`` added).

    Volumes up to ``options.in_memory_voxels`` are labelled in memory, larger ones chunk by chunk (as
    :func:`~tomoseg.objects.analyze` does), or taken from ``labels`` (the analysis' own,
    :class:`~tomoseg.objects.analysis.KeptLabels`) where given. A ``.zarr`` output is an OME-Zarr image with a
    pyramid (2x2x2 modes). TIFF holds uint16 (or float32 past 65535 objects); other formats uint32. An NRRD
    volume's place in space (``orientation``, default ``volume.orientation``) is kept by an NRRD output, as
    segment's outputs keep it, with the vectors' lengths set to ``voxel_size`` (an override changes them).
    ``origin`` ((z, y, x) nm, where voxel (0, 0, 0)'s centre lies; default: ``volume``'s,
    :func:`~tomoseg.io.volume.origin_of`) is kept by a Zarr output as its ``translation`` (each pyramid level's at
    its block centres) and by an NRRD output without an ``orientation`` as its ``space origin``, so the labels
    overlay the volume in viewers that place images by it; TIFF, HDF5, NPY and .vol hold no origin.
    ``probability``: whether the analysis read ``volume`` as a probability map (``Analysis.reading.probability``);
    else decided again from the volume.
    """
    from ..io import create_volume, format_of
    from ..io.output_guard import write_provenance

    options = options or AnalysisOptions()
    path = Path(path)
    shape = tuple(int(s) for s in volume.shape)
    max_label = int(np.max(table["label"])) if len(table["label"]) else 0
    dtype = label_dtype_for(path, max_label)
    size = int(np.prod(shape, dtype=np.int64))
    chunks = tuple(min(c, s) for c, s in zip(options.chunks, shape))
    is_zarr = format_of(path, for_writing=True) == "zarr"
    orientation = orientation if orientation is not None else getattr(volume, "orientation", None)
    origin = origin if origin is not None else origin_of(volume)
    # whether the volume is a probability map: for the labelling here and the record, unless the labels are
    # given and the caller says how they were found (the volume may be closed then: only its shape is used)
    told = "labelled_as" in (provenance or {})
    prob = None if labels is not None and told else is_probability(volume) if probability is None else \
        bool(probability)
    if labels is None and size <= options.in_memory_voxels:
        image = label_image(volume, table, options=options, probability=prob)
        with create_volume(path, shape, dtype, voxel_size=voxel_size, chunks=chunks, overwrite=overwrite,
                           orientation=orientation, origin=origin) as w:
            w[:, :, :] = image.astype(dtype, copy=False)
        if progress is not None:
            progress.update(size)
    elif labels is not None:
        _write_mapped(labels.path, labels.count, path, table, shape, dtype, chunks, voxel_size, overwrite,
                      progress, orientation, origin)
    else:
        tmp = make_temporary_folder("tomoseg-labels-", workdir)
        try:
            store = tmp / "labels.zarr"
            n = label_chunked(volume, store, chunks=chunks, connectivity=options.connectivity,
                              threshold=options.threshold if prob else None,
                              progress=None if progress is None else _Halved(progress))
            _write_mapped(store, n, path, table, shape, dtype, chunks, voxel_size, overwrite,
                          orientation=orientation, origin=origin)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if is_zarr:
        from ..io.ome_zarr import add_pyramid, have_models

        if have_models():  # else the single-scale OME-Zarr stays (readable everywhere)
            if progress is not None and hasattr(progress, "reset"):  # a stage of its own: the image read again
                progress.reset(desc="label image pyramid")  # its total: set by add_pyramid
            add_pyramid(path, method="mode", progress=progress)
    record = label_provenance(volume, path, table, options, dtype=dtype, voxel_size=voxel_size, probability=prob)
    write_provenance(path, {**record, **(provenance or {})})  # last: it describes the finished image
    return path


def _write_mapped(store, count: int, path, table: dict, shape, dtype, chunks, voxel_size, overwrite: bool,
                  progress=None, orientation=None, origin=None) -> None:
    """The label store (uint32 Zarr, labels 1..count) written to ``path`` with the table's objects kept."""
    src = open_label_store(store)
    if tuple(src.shape) != tuple(shape):
        raise TomosegError(f"{store}: labels of shape {tuple(src.shape)}, not the volume's {tuple(shape)}")
    write_mapped(src, _lookup(table, count), path, dtype=dtype, chunks=chunks, voxel_size=voxel_size,
                 overwrite=overwrite, progress=progress, orientation=orientation, origin=origin)


def write_mapped(labels, lookup: np.ndarray, path, *, dtype, chunks, voxel_size=None, overwrite: bool = False,
                 progress=None, orientation=None, origin=None) -> None:
    """``lookup[labels]`` written to ``path`` (any format's writer) chunk by chunk: each chunk of ``labels``
    (an array, or anything sliced like one) read and mapped on worker threads, written in order here;
    ``progress`` is given each chunk's voxels. ``orientation`` and ``origin``: the place in space the output
    keeps, as :func:`~tomoseg.io.create_volume`'s."""
    from ..io import create_volume
    from ..io.blocks import read_ahead, worker_threads

    shape = tuple(int(s) for s in labels.shape)
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape))
    with create_volume(path, shape, dtype, voxel_size=voxel_size, chunks=chunks, overwrite=overwrite,
                       orientation=orientation, origin=origin) as w:
        mapped = read_ahead(chunk_regions(shape, chunks),
                            lambda sl: lookup[np.asarray(labels[sl])].astype(dtype, copy=False),
                            threads=worker_threads(8))
        for sl, block in mapped:
            w[sl] = block
            if progress is not None:
                progress.update(int(block.size))


MASK_RGBA = (230, 159, 0, 255)  # Okabe-Ito orange
MAX_LABEL_PROPERTIES = 50_000     # beyond this, colours and properties would bloat the metadata


def object_colours(table: dict, column: str = "equivalent_radius_vox", cmap: str = "viridis") -> dict:
    """{label: RGBA 0-255} colouring objects by ``column`` on a colour-blind-safe map (2nd-98th percentile)."""
    from matplotlib import colormaps

    values = np.asarray(table[column], np.float64)
    finite = values[np.isfinite(values)]
    lo, hi = (np.percentile(finite, [2, 98]) if len(finite) else (0.0, 1.0))
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgba = (np.asarray(colormaps[cmap](np.nan_to_num(scaled))) * 255).round().astype(int)
    return {int(l): tuple(int(c) for c in rgba[i]) for i, l in enumerate(table["label"])}


class _MappedLabels:
    """The label image of a table's objects, mapped from a label store chunk by chunk as it is read (no copy
    written): ``lookup[store[key]]``."""

    def __init__(self, store, count: int, table: dict):
        self.source = open_label_store(store)
        self.lookup = _lookup(table, count)
        self.shape = tuple(int(s) for s in self.source.shape)
        self.dtype = np.dtype(np.uint32)

    def __getitem__(self, key) -> np.ndarray:
        return self.lookup[np.asarray(self.source[key])]


def write_objects_ome_zarr(volume, path, table: dict, *, image=None, options: AnalysisOptions | None = None,
                           voxel_size=None, overwrite: bool = False, workdir=None, labels=None,
                           probability: bool | None = None, progress=None, provenance: dict | None = None,
                           origin=None) -> Path:
    """One OME-Zarr image for viewers: ``image`` (the gray values; else ``volume``) as a pyramid, with
    ``labels/mask`` (0/1) and ``labels/objects`` (IDs = the table's ``label``), objects coloured by equivalent
    radius and carrying their radius, volume and sphericity as NGFF properties. ``probability``: as
    :func:`write_label_image`'s. ``labels`` (the analysis' own, kept on disk) are mapped to the table's objects
    as they are read; without them the objects are labelled into a temporary store first. ``progress`` is given
    the voxels of the image, the mask and the objects as each is written (three times the volume's voxels).
    The store gets a provenance record beside it, as :func:`write_label_image`'s (with the entries of
    ``provenance`` added): it says how the objects were found, and its stamp keeps a store corrected in place
    (labels painted in napari) from being replaced by a later ``--overwrite``. ``origin`` (default: ``volume``'s):
    the image's and both label images' translation, as :func:`write_label_image`'s."""
    import zarr

    from ..io.ome_zarr import write_ome_zarr
    from ..io.output_guard import write_provenance

    options = options or AnalysisOptions()
    origin = origin if origin is not None else origin_of(volume)
    tmp = None
    try:
        if probability is None:
            probability = is_probability(volume)
        if labels is not None:  # no second label image written: the kept labels, mapped chunk by chunk
            objects = _MappedLabels(labels.path, labels.count, table)
        else:
            tmp = make_temporary_folder("tomoseg-ome-", workdir)
            # the objects' label image, with its pyramid (1/7 more), is staged in the temporary folder (TMPDIR)
            voxels = int(np.sum(table["volume_vox"])) if len(table["label"]) else 0
            check_store_space(tmp / "objects.zarr", voxels * 8 // 7, len(table["label"]) * 8 // 7,
                              what="the objects' label image staged for the OME-Zarr")
            lab_path = write_label_image(volume, tmp / "objects.zarr", table, options=options,
                                         voxel_size=voxel_size, probability=probability)
            objects = zarr.open_array(str(lab_path), path="0", mode="r")
        colours = properties = None
        n = len(table["label"])
        if 0 < n <= MAX_LABEL_PROPERTIES:
            colours = object_colours(table)
            cols = [c for c in ("equivalent_radius_vox", "equivalent_radius_nm", "volume_vox", "sphericity_voxel",
                                "sphericity_mesh", "mean_gray", "mean_probability") if c in table]
            properties = {int(l): {c: float(table[c][i]) for c in cols if np.isfinite(table[c][i])}
                          for i, l in enumerate(table["label"])}
        written = write_ome_zarr(path, image if image is not None else volume,
                              labels={"mask": MaskView(volume, options, probability=probability),
                                      "objects": objects},
                              voxel_size=voxel_size, chunks=(64, 128, 128),
                              label_colors={"mask": {1: MASK_RGBA}, "objects": colours},
                              label_properties={"mask": {1: {"name": "object"}}, "objects": properties},
                              overwrite=overwrite, progress=progress, origin=origin)
        record = label_provenance(volume, written, table, options, dtype=np.uint32, voxel_size=voxel_size,
                                  probability=probability)
        write_provenance(written, {**record, "tool": "tomoseg write_objects_ome_zarr",
                                   "label_image": f"{written}/labels/objects", **(provenance or {})})
        return written
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
