"""OME-Zarr the way viewers expect it: multiscale pyramids, and masks and objects as ``labels/``.

One OME-Zarr 0.5 image (NGFF) holds the image as a pyramid (``0``, ``1``, ...,
each level half the size of the one before, down to one chunk) and, under
``labels/``, the mask and the object labels as NGFF image-labels with their own
pyramids, colours and per-object properties::

    result.ome.zarr/
        zarr.json            ome.multiscales (axes z, y, x in nanometer), tomoseg marker
        0/ 1/ 2/ ...         the image: 2x2x2 block means
        labels/zarr.json     ome.labels = ["mask", "objects"]
        labels/mask/0 1 ..   uint8 0/1: 2x2x2 block modes
        labels/objects/0 ..  uint32 object IDs (the CSV's label column): 2x2x2 block modes

The metadata are built and checked with ome-zarr-models (pydantic models of the
NGFF specification), not written by hand; the pyramid is computed chunk by chunk
here, so volumes larger than memory are fine. :func:`validate_ome_zarr` runs the
same models over a written store. The single-scale files of earlier tomoseg
versions stay readable (:mod:`.zarr_store` reads level 0 of any NGFF image).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import TomosegError
from .blocks import chunk_regions, read_ahead, worker_threads
from .zarr_chunks import parallel_reader, parallel_writer
from .zarr_store import store_chunks, write_chunk

DEFAULT_CHUNKS = (64, 128, 128)
MAX_LEVELS = 10
MARKER = "tomoseg"  # root attribute by which tomoseg recognizes its own stores

__all__ = ["write_ome_zarr", "add_pyramid", "validate_ome_zarr", "read_pyramid", "pyramid_shapes", "have_models",
           "downsample_mean", "downsample_mode"]


def have_models() -> bool:
    """Whether ome-zarr-models is installed (it supports Python 3.11 to 3.13)."""
    try:
        import ome_zarr_models  # noqa: F401
    except ImportError:
        return False
    return True


def _need_models() -> None:
    if not have_models():
        from ..errors import needs_package

        raise needs_package("OME-Zarr pyramids and labels", "ome-zarr-models",
                            "it supports Python 3.11 to 3.13; a single-scale .zarr is written without it")


# ------------------------------------------------------------------ downsampling
def _blocks(block: np.ndarray) -> np.ndarray:
    """(z, y, x) -> (z/2, y/2, x/2, 8): the 2x2x2 neighbourhoods (odd edges repeat their last plane)."""
    pad = [(0, s % 2) for s in block.shape]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    z, y, x = (s // 2 for s in block.shape)
    return block.reshape(z, 2, y, 2, x, 2).transpose(0, 2, 4, 1, 3, 5).reshape(z, y, x, 8)


def downsample_mean(block: np.ndarray) -> np.ndarray:
    """2x2x2 block mean, in the input's dtype (rounded for integers): for images.

    Examples
    --------
    >>> downsample_mean(np.arange(8, dtype=np.uint8).reshape(2, 2, 2))
    array([[[4]]], dtype=uint8)
    """
    block = np.asarray(block)
    if block.dtype in (np.uint8, np.uint16):  # exact in integers, without the float64 copy (4x faster)
        total = _sums(block, np.uint16 if block.dtype == np.uint8 else np.uint32)
        q, r = np.divmod(total, 8)
        q += (r > 4) | ((r == 4) & (q % 2 == 1))  # np.rint's rounding: halves to even
        return q.astype(block.dtype)
    mean = _blocks(block).mean(axis=-1, dtype=np.float64)
    if np.issubdtype(block.dtype, np.integer):
        mean = np.rint(mean)
    return mean.astype(block.dtype)


def _sums(block: np.ndarray, dtype) -> np.ndarray:
    """Sums of the 2x2x2 neighbourhoods of :func:`_blocks`, in ``dtype``, without building them."""
    pad = [(0, s % 2) for s in block.shape]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    total = block[0::2].astype(dtype)  # pairwise along each axis: 20x faster than a reduction over 3 axes
    total += block[1::2]
    total = total[:, 0::2] + total[:, 1::2]
    return total[:, :, 0::2] + total[:, :, 1::2]


def downsample_mode(block: np.ndarray) -> np.ndarray:
    """2x2x2 block mode for masks and labels (ties go to an object rather than background, then to the
    smaller ID), so no value is invented by averaging.

    Examples
    --------
    >>> b = np.zeros((2, 2, 2), np.uint32); b[0, 0, :] = 7; b[1, 1, :] = 7; b[0, 1, 0] = 3
    >>> downsample_mode(b)
    array([[[7]]], dtype=uint32)
    """
    block = np.asarray(block)
    if block.dtype.kind in "ub" and (block.size == 0 or block.max() <= 1):  # a binary mask: 1 where 4 or more of 8
        return (_sums(block.view(np.uint8) if block.dtype == bool else block, np.uint8) >= 4).astype(block.dtype)
    return _mode(block)


def _mode(block: np.ndarray) -> np.ndarray:
    """:func:`downsample_mode` for any values (labels). Blocks of one value (nearly all of a label image: the
    background and the insides of objects) are taken as they are; only the mixed ones are compared."""
    v = _blocks(block)
    out = v[..., 0].copy()
    mixed = ~(v == v[..., :1]).all(axis=-1)
    if mixed.any():
        w = v[mixed]
        counts = (w[:, :, None] == w[:, None, :]).sum(axis=-1)
        # score: count first, then "is an object", then the smaller value
        rank = np.argsort(np.argsort(w, axis=-1, kind="stable"), axis=-1)
        score = counts * 32 + (w != 0) * 16 + (7 - rank)
        out[mixed] = np.take_along_axis(w, np.argmax(score, axis=-1)[:, None], axis=-1)[:, 0]
    return out


# ------------------------------------------------------------------ layout
def pyramid_shapes(shape, chunks=DEFAULT_CHUNKS) -> list[tuple]:
    """Level shapes: halve (rounding up) until a level fits in one chunk.

    The coarsest level is then at most one chunk (a few MB), which napari's 3D view and thumbnails load at
    once; a volume of one chunk or less has one level.

    Examples
    --------
    >>> pyramid_shapes((100, 300, 300), (64, 128, 128))
    [(100, 300, 300), (50, 150, 150), (25, 75, 75)]
    """
    shapes = [tuple(int(s) for s in shape)]
    while any(s > c for s, c in zip(shapes[-1], chunks)) and len(shapes) < MAX_LEVELS:
        shapes.append(tuple(max(1, (s + 1) // 2) for s in shapes[-1]))
    return shapes


def _multiscale_attrs(n_levels: int, voxel_size, name: str, method: str, origin=None):
    """NGFF 0.5 multiscales metadata, built with ome-zarr-models (validated on construction); ``method``: how the
    levels were made (``mean`` or ``mode``, :func:`_downscaling`); ``origin`` (nm, where voxel (0, 0, 0)'s centre
    lies): level 0's translation, with a voxel size (without one the axes have no unit to hold it in)."""
    from ome_zarr_models.v05.axes import Axis
    from ome_zarr_models.v05.multiscales import Dataset, Multiscale

    unit = "nanometer" if voxel_size is not None else None
    vs = [float(v) for v in voxel_size] if voxel_size is not None else [1.0, 1.0, 1.0]
    axes = tuple(Axis(name=a, type="space", unit=unit) for a in "zyx")
    t0 = [float(o) for o in origin] if origin is not None and voxel_size is not None else None
    datasets = tuple(Dataset.build(path=d["path"], scale=d["scale"], translation=d.get("translation"))
                     for d in _level_transforms(n_levels, vs, t0))
    return Multiscale(axes=axes, datasets=datasets, name=name, **_downscaling(n_levels, method))


# NGFF: a multiscale's "type" SHOULD name the downscaling method, "metadata" describe it
_DOWNSCALING = {
    "mean": ("each level is the 2x2x2 block mean of the level before, rounded to the data type "
             "(odd sizes: the last plane repeated)", "tomoseg.io.ome_zarr.downsample_mean"),
    "mode": ("each level is the 2x2x2 block mode of the level before (ties go to an object rather than "
             "background, then to the smaller ID; odd sizes: the last plane repeated)",
             "tomoseg.io.ome_zarr.downsample_mode"),
}


def _downscaling(n_levels: int, method: str) -> dict:
    """The ``type`` and ``metadata`` of a multiscale of ``n_levels`` made by ``method``: none for one level (no
    downscaling was done)."""
    if n_levels <= 1:
        return {}
    description, function = _DOWNSCALING[method]
    return {"type": method, "metadata": {"description": description, "method": function, "version": __version__}}


def _level_transforms(n_levels: int, scale0, translation0=None) -> list[dict]:
    """Each level's path, scale and translation (in the units of level 0's): scale × 2^l, and the block centres,
    translation0 + scale × (2^l − 1)/2 (no translation at level 0 unless it has one)."""
    out = []
    for level in range(n_levels):
        f = 2 ** level
        d = {"path": str(level), "scale": [float(v) * f for v in scale0]}
        if level or translation0 is not None:
            t0 = translation0 if translation0 is not None else [0.0] * len(scale0)
            d["translation"] = [float(t) + float(v) * (f - 1) / 2 for t, v in zip(t0, scale0)]
        out.append(d)
    return out


def _dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _write_levels(group, source, shapes, dtype, chunks, method: str, progress=None) -> None:
    """Write level 0 from ``source`` chunk by chunk, then each level from the one before."""
    reduce = downsample_mean if method == "mean" else downsample_mode
    arrays = []
    for level, shape in enumerate(shapes):
        c = tuple(min(a, b) for a, b in zip(chunks, shape))
        arrays.append(group.create_array(str(level), shape=shape, chunks=c, dtype=np.dtype(dtype), fill_value=0,
                                         dimension_names=["z", "y", "x"], overwrite=True))
    arrays = [store_chunks(a) for a in arrays]
    if source is not None:
        for sl in chunk_regions(shapes[0], arrays[0].chunks):
            write_chunk(arrays[0], sl, np.asarray(source[sl]).astype(dtype, copy=False))
            if progress is not None:
                progress.update(int(np.prod([s.stop - s.start for s in sl])))
    for level in range(1, len(shapes)):
        src, dst = arrays[level - 1], arrays[level]
        for sl in chunk_regions(dst.shape, dst.chunks):
            region = tuple(slice(2 * s.start, min(2 * s.stop, n)) for s, n in zip(sl, src.shape))
            write_chunk(dst, sl, reduce(np.asarray(src[region])))


# ------------------------------------------------------------------ writing
def _label_metadata(name: str, n_levels: int, voxel_size, colors=None, properties=None, origin=None):
    from ome_zarr_models.v05.image_label import ImageLabelAttrs
    from ome_zarr_models.v05.image_label_types import Label

    label = {"source": {"image": "../../"}}  # NGFF 0.5: the version is in ome.version only
    if colors:
        label["colors"] = [{"label-value": int(k), "rgba": [int(c) for c in v]} for k, v in colors.items()]
    if properties:
        label["properties"] = [{"label-value": int(k), **v} for k, v in properties.items()]
    attrs = ImageLabelAttrs(multiscales=[_multiscale_attrs(n_levels, voxel_size, name, "mode", origin)],
                            image_label=Label.model_validate(label), version="0.5")
    return _dump(attrs)


def write_ome_zarr(path, image, *, labels: dict | None = None, voxel_size=None, name: str | None = None,
                   chunks=DEFAULT_CHUNKS, label_colors: dict | None = None, label_properties: dict | None = None,
                   overwrite: bool = False, progress=None, origin=None) -> Path:
    """Write an OME-Zarr 0.5 image with a pyramid and NGFF ``labels/`` (mask, objects, ...).

    Parameters
    ----------
    path : str or Path
        ``something.ome.zarr`` (a folder). Written as ``PATH.partial`` and renamed when complete.
    image : Volume or array-like (z, y, x)
        The image (gray values or probabilities): read chunk by chunk, downsampled by 2x2x2 means.
    labels : dict name -> Volume or array-like, optional
        Integer label images of the same shape (a 0/1 mask, uint32 objects): downsampled by 2x2x2 modes.
    voxel_size : (z, y, x) nm, optional
        Written as the scale of each axis, unit nanometer.
    origin : (z, y, x) nm, optional
        Where the centre of voxel (0, 0, 0) lies (an input's translation): level 0's ``translation`` in the image
        and every label image, each coarser level's at its 2x2x2 block centres (with ``voxel_size`` only).
    label_colors, label_properties : dict name -> {value: RGBA} / {value: {key: number}}, optional
        NGFF image-label colours and properties (e.g. each object's radius), for viewers that show them.
    overwrite : bool
        Replace an existing store, only if tomoseg wrote it.
    progress : optional
        Given the voxels of the full-resolution image and of each label image as they are written (the volume's
        voxels once per image).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> img = np.zeros((8, 300, 300), np.uint8); mask = (img > 0).astype(np.uint8)
    >>> p = write_ome_zarr(os.path.join(tempfile.mkdtemp(), "r.ome.zarr"), img, labels={"mask": mask},
    ...                    voxel_size=(30.0, 30.0, 30.0))
    >>> [a.shape for a in read_pyramid(p)]
    [(8, 300, 300), (4, 150, 150), (2, 75, 75)]
    """
    import zarr

    _need_models()
    path = Path(path)
    _check_output(path, overwrite)
    shape = tuple(int(s) for s in image.shape)
    if len(shape) != 3:
        raise TomosegError(f"{path}: the image must be 3D (z, y, x), got shape {shape}")
    for key, lab in (labels or {}).items():
        if tuple(lab.shape) != shape:
            raise TomosegError(f"{path}: label image {key!r} {tuple(lab.shape)} and image {shape} differ in shape")
        if not np.issubdtype(np.dtype(lab.dtype), np.integer):
            raise TomosegError(f"{path}: label image {key!r} must be integer, not {np.dtype(lab.dtype)}")
    name = name or path.name.split(".")[0]
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape))
    shapes = pyramid_shapes(shape, chunks)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    from ome_zarr_models.v05.image import ImageAttrs
    from ome_zarr_models.v05.labels import LabelsAttrs

    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    _write_levels(root, image, shapes, np.dtype(image.dtype), chunks, "mean", progress)
    multiscale = _multiscale_attrs(len(shapes), voxel_size, name, "mean", origin)
    root.attrs.update({"ome": _dump(ImageAttrs(multiscales=[multiscale], version="0.5")),
                       MARKER: {"version": __version__, "kind": "ome-zarr image"}})
    if labels:
        lab_group = root.create_group("labels")
        for key, lab in labels.items():
            g = lab_group.create_group(key)
            dtype = np.dtype(lab.dtype)
            if dtype == np.bool_:
                dtype = np.dtype(np.uint8)
            _write_levels(g, lab, shapes, dtype, chunks, "mode", progress)
            g.attrs.update({"ome": _label_metadata(key, len(shapes), voxel_size,
                                                   (label_colors or {}).get(key),
                                                   (label_properties or {}).get(key), origin)})
        lab_group.attrs.update({"ome": _dump(LabelsAttrs(labels=list(labels), version="0.5"))})
    validate_ome_zarr(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def _check_output(path: Path, overwrite: bool) -> None:
    if not path.parent.exists():
        raise TomosegError(f"{path.parent}: output folder does not exist; create it first")
    if path.exists():
        if not overwrite:
            raise TomosegError(f"{path}: already exists; pass --overwrite to replace it")
        if not is_tomoseg_store(path):
            raise TomosegError(f"{path}: exists and was not written by tomoseg; it is left alone. "
                               "Choose another output path")


def is_tomoseg_store(path) -> bool:
    """Whether ``path`` is a Zarr store that tomoseg wrote (its root group carries the ``tomoseg`` marker)."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:
        return False
    return MARKER in attrs


def add_pyramid(path, *, method: str = "mean", chunks=None, progress=None) -> int:
    """Add the downsampled levels to a single-scale NGFF 0.5 image that tomoseg wrote (e.g. a probability map
    from ``segment``); returns the number of levels. ``method``: ``mean`` (images) or ``mode`` (masks, labels).
    ``progress``: a :class:`~tomoseg.progress.Progress` (or anything with ``update(n)``), given the voxels read
    from each level to make the next (its total is reset to their sum where it has ``reset``).

    Only the datasets of the metadata change (each level's scale and translation, in the store's own units),
    with the multiscale's ``type`` and ``metadata``, which describe the downscaling (none for a single level);
    axes, units and any other metadata stay as they are. A store without tomoseg's marker is refused: its
    metadata are another tool's.
    """
    import zarr

    _need_models()
    from ome_zarr_models.v05.image import ImageAttrs

    if method not in ("mean", "mode"):
        raise TomosegError(f"pyramid method {method!r} must be mean or mode")
    if not is_tomoseg_store(path):
        raise TomosegError(f"{path}: was not written by tomoseg (no {MARKER!r} attribute); add_pyramid adds levels "
                           "only to tomoseg's own stores and leaves this one untouched: build its pyramid with the "
                           "tool that wrote it, or write it again with tomoseg (e.g. analyze --ome-zarr)")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    ms = attrs.get("ome", {}).get("multiscales")
    if not ms:
        raise TomosegError(f"{path}: is not an OME-Zarr 0.5 image")
    base = group[ms[0]["datasets"][0]["path"]]
    chunks = tuple(chunks or base.chunks)
    shapes = pyramid_shapes(base.shape, chunks)
    transforms = {t["type"]: t for t in ms[0]["datasets"][0]["coordinateTransformations"]}
    datasets = [{"path": d["path"], "coordinateTransformations": [
        {"type": "scale", "scale": d["scale"]}, *([{"type": "translation", "translation": d["translation"]}]
                                                  if "translation" in d else [])]}
        for d in _level_transforms(len(shapes), transforms["scale"]["scale"],
                                   (transforms.get("translation") or {}).get("translation"))]
    datasets[0]["path"] = ms[0]["datasets"][0]["path"]
    reduce = downsample_mean if method == "mean" else downsample_mode
    prev = parallel_reader(base)
    if progress is not None and hasattr(progress, "reset"):
        progress.reset(total=int(sum(np.prod(shape, dtype=np.int64) for shape in shapes[:-1])))
    for level in range(1, len(shapes)):
        c = tuple(min(a, b) for a, b in zip(chunks, shapes[level]))
        arr = store_chunks(group.create_array(str(level), shape=shapes[level], chunks=c, dtype=base.dtype,
                                              fill_value=0, dimension_names=["z", "y", "x"], overwrite=True))
        out = parallel_writer(arr)

        def block(sl, prev=prev, out=out) -> int:  # on a worker thread: read, reduce, write (all outside Zarr's
            region = tuple(slice(2 * s.start, min(2 * s.stop, n)) for s, n in zip(sl, prev.shape))  # event loop)
            write_chunk(out, sl, reduce(np.asarray(prev[region])))
            return int(np.prod([r.stop - r.start for r in region]))

        for _, read in read_ahead(list(chunk_regions(arr.shape, arr.chunks)), block, threads=worker_threads(8)):
            if progress is not None:
                progress.update(read)
        prev = parallel_reader(arr)
    first = {k: v for k, v in ms[0].items() if k not in ("type", "metadata")}
    first.update({"datasets": datasets, **_downscaling(len(shapes), method)})
    ome = {**attrs["ome"], "multiscales": [first, *ms[1:]]}
    ImageAttrs.model_validate(ome)  # still valid NGFF 0.5
    group.attrs.update({"ome": ome})
    return len(shapes)


# ------------------------------------------------------------------ reading and checking
def validate_ome_zarr(path) -> dict:
    """Check a store against the NGFF 0.5 specification with ome-zarr-models; returns a short summary.

    Raises :class:`~tomoseg.errors.TomosegError` naming what is wrong.
    """
    import zarr

    _need_models()
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.labels import Labels

    try:
        group = zarr.open_group(str(path), mode="r")
        image = Image.from_zarr(group)
        labels = []
        if "labels" in group:
            labels = Labels.from_zarr(group["labels"]).attributes.ome.labels
    except Exception as exc:
        raise TomosegError(f"{path}: is not a valid OME-Zarr 0.5 image: {exc}") from None
    ms = image.attributes.ome.multiscales[0]
    return {"levels": len(ms.datasets), "labels": list(labels),
            "axes": [(a.name, a.unit) for a in ms.axes]}


def read_pyramid(path, dataset: str = "") -> list:
    """The levels of an OME-Zarr image (or of ``labels/NAME`` with ``dataset``) as lazy zarr arrays, finest
    first (napari takes this list as a multiscale layer)."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    if dataset:
        group = group[dataset]
    attrs = dict(group.attrs)
    ms = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
    if not ms:
        raise TomosegError(f"{path}: {dataset or 'root'} is not an OME-Zarr image")
    return [group[d["path"]] for d in ms[0]["datasets"]]
