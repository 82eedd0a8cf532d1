"""napari's *File → Save* for image and labels layers, keeping the voxel size napari's own writers drop.

Two writers (napari.yaml): one layer (an image or labels layer) to any format :func:`tomoseg.write_volume`
writes (``.tif``, ``.zarr``, ``.h5``, ``.nrrd``, ``.npy``), and one image with any labels layers to an OME-Zarr
(``.ome.zarr``: the image as a pyramid, each labels layer under ``labels/``, as ``tomoseg analyze --ome-zarr``
writes). The voxel size comes from the layers' scale and units (:func:`.layers.voxel_size_of`); with none (a
scale of 1 pixel) the file records none. A layer's translation (nm) is kept as the file's origin where the format
holds one (Zarr and OME-Zarr translation, NRRD space origin). A file at the path is replaced only where tomoseg
wrote it (napari's save dialog has asked already; ``overwrite`` of :func:`tomoseg.write_volume` never replaces
another program's file): another program's file is left alone, with an error naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .layers import data_digest, level0, origin_of_layer, voxel_size_of


def write_image(path: str, data, meta: dict) -> list[str]:
    """One image layer (napari's single-layer writer): its full-resolution data, with its voxel size."""
    if meta.get("rgb"):
        raise TomosegError(f"{path}: layer {meta.get('name')!r} is an RGB image; tomoseg writes gray volumes")
    return _write(path, _full_resolution(data, meta), meta)


def write_labels(path: str, data, meta: dict) -> list[str]:
    """One labels layer (napari's single-layer writer), with its voxel size, as unsigned integers (0 =
    background) of the smallest type that holds them: uint16 for up to 65535 objects, which TIFF readers share."""
    return _write(path, _label_values(_full_resolution(data, meta), meta), meta)


def _write(path: str, array: np.ndarray, meta: dict) -> list[str]:
    from ..io import create_volume

    voxel_size = _voxel_size(meta)  # replaces tomoseg's own file only; the origin kept by Zarr and NRRD
    with create_volume(path, array.shape, array.dtype, voxel_size=voxel_size, overwrite=True,
                       origin=_origin(meta, voxel_size)) as writer:
        writer[:, :, :] = array
    made = (meta.get("metadata") or {}).get("tomoseg") or {}
    record = made.get("segment")
    # the Segment widget's layer, as it made it (a layer painted since keeps its metadata, not its voxels): the
    # run's record beside the file, as `tomoseg segment` writes it, for analyze and report to find
    if isinstance(record, dict) and made.get("digest") == data_digest(array):
        from ..io.output_guard import write_provenance

        outputs = {"probability": None, "mask": None, record.get("written") or "probability": str(path)}
        write_provenance(path, {**record, "outputs": outputs})
    return [str(path)]


def write_ome_zarr_layers(path: str, layer_data: list) -> list[str]:
    """One image layer and any labels layers (napari's multi-layer writer) as one OME-Zarr: the image's pyramid
    and each labels layer, of the image's shape, under ``labels/<its name>``."""
    from ..io.ome_zarr import write_ome_zarr

    images = [(d, m) for d, m, kind in layer_data if kind == "image"]
    labels = [(d, m) for d, m, kind in layer_data if kind == "labels"]
    if len(images) != 1:
        raise TomosegError(f"{path}: select one image layer (and any labels layers) to save as OME-Zarr; "
                           f"{len(images)} image layers were selected")
    image, meta = _full_resolution(*images[0]), images[0][1]
    voxel_size = _voxel_size(meta)
    named: dict = {}
    for data, m in labels:
        array = _full_resolution(data, m)
        if array.shape != image.shape:
            raise TomosegError(f"{path}: labels layer {m.get('name')!r} {array.shape} and image layer "
                               f"{meta.get('name')!r} {image.shape} differ in shape")
        if _voxel_size(m) != voxel_size:
            raise TomosegError(f"{path}: labels layer {m.get('name')!r} and image layer {meta.get('name')!r} "
                               "have other scales; save them apart")
        if _origin(m, voxel_size) != _origin(meta, voxel_size):
            raise TomosegError(f"{path}: labels layer {m.get('name')!r} and image layer {meta.get('name')!r} "
                               "are translated differently (they do not overlay); save them apart")
        named[_label_name(m.get("name"), named)] = _label_values(array, m)
    name = Path(path).name.split(".")[0] or "image"
    write_ome_zarr(path, image, labels=named or None, voxel_size=voxel_size, name=name,
                   overwrite=True, origin=_origin(meta, voxel_size))  # tomoseg's own file only
    return [str(path)]


def _full_resolution(data, meta: dict) -> np.ndarray:
    """A layer's data at full resolution (level 0 of a multiscale layer), 3D."""
    array = np.asarray(level0(data, bool(meta.get("multiscale"))))
    if array.ndim != 3:
        raise TomosegError(f"layer {meta.get('name')!r} has {array.ndim} dimensions; tomoseg writes 3D volumes "
                           "(z, y, x)")
    return array


def _label_values(array: np.ndarray, meta: dict) -> np.ndarray:
    """A labels layer's values as the smallest of uint8, uint16, uint32 that holds them (napari keeps labels
    as int32 or wider; TIFF holds up to uint16)."""
    if array.dtype == np.bool_ or not array.size:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= 2**32:
        raise TomosegError(f"labels layer {meta.get('name')!r} holds values from {low} to {high}; label images "
                           "hold 0 (background) to 2^32 - 1")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if high <= np.iinfo(dtype).max:
            return array.astype(dtype, copy=False)
    return array


def _voxel_size(meta: dict) -> tuple | None:
    scale = meta.get("scale")
    return None if scale is None else voxel_size_of(scale, meta.get("units"))


def _origin(meta: dict, voxel_size) -> tuple | None:
    """A layer's translation in nm (where the file it was read from put it, :func:`.reader.read`), with a voxel
    size only (a translation among pixels is no place in nm)."""
    return origin_of_layer(meta.get("translate"), meta.get("units")) if voxel_size is not None else None


def _label_name(name, taken: dict) -> str:
    """A labels layer's name as an NGFF label name (letters, digits, ``-``, ``_``, ``.``), unique."""
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name or "labels")) or "labels"
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}_{n}"
    return out

