"""napari reader for tomoseg's outputs: OME-Zarr images with ``labels/``, label images, masks, object tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL_NAMES = ("label", "mask", "objects", "truth", "instances", "match_ids")  # track: after_match_ids.tif


def get_reader(path):
    """Return a reader for ``path`` if tomoseg understands it, else None (napari then asks other plugins)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    name = p.name.lower()
    if name.endswith(".csv"):
        return _read_csv if _is_objects_csv(p) else None
    from ..io import EXTENSIONS

    if name.endswith(EXTENSIONS):  # every format tomoseg reads (.nx, .zarr.zip, .vol, .nhdr, ... too)
        return read if _opens_as_volume(p) else None
    return None


def _opens_as_volume(path: Path) -> bool:
    """Whether tomoseg reads ``path`` as a 3D volume (its header only): a 2D or colour TIFF, a Zarr group or an
    HDF5 file that is not one volume is left to napari's other readers, so that choosing tomoseg for *.tif does
    not stop ordinary images from opening."""
    from ..errors import TomosegError
    from ..io import open_volume

    import warnings

    try:
        with warnings.catch_warnings():  # said once, when the volume is read
            warnings.simplefilter("ignore")
            with open_volume(path):
                return True
    except (TomosegError, OSError, ValueError):
        return False


OBJECT_COLUMNS = ("label", "centroid_z", "centroid_y", "centroid_x", "equivalent_radius_vox")


def _is_objects_csv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):  # unreadable or binary: not ours (napari asks other plugins)
        return False
    return set(OBJECT_COLUMNS) <= set(header)


def _read_objects_table(path) -> dict:
    """The objects CSV as :func:`tomoseg.table.read_csv` reads it, after checking each row: a damaged row is a
    :class:`~tomoseg.errors.TomosegError` naming the file and the row (line number; the header is line 1)."""
    import csv

    from ..errors import TomosegError
    from ..table import read_csv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise TomosegError(f"{path}: cannot be read as an objects table ({exc})") from None
    header = rows[0] if rows else []
    columns = [header.index(c) for c in OBJECT_COLUMNS if c in header]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise TomosegError(f"{path}: row {number} has {len(row)} values, the header {len(header)}; the table "
                               "is damaged: write it again (tomoseg analyze --csv)")
        for j in columns:
            if not _is_number(row[j]):
                raise TomosegError(f"{path}: row {number}, column {header[j]}: {row[j]!r} is not a number; the "
                                   "table is damaged: write it again (tomoseg analyze --csv)")
    return read_csv(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


def _read_csv(path) -> list[tuple]:
    """The centroids as points, in nm where the table has its nm columns (then at the objects of tomoseg's image
    and label layers, translated as they are: :func:`table_origin`), else in voxels (said in the layer's name)."""
    from .layers import objects_layers

    table = _read_objects_table(path)
    voxel_size = table_voxel_size(table)
    _, points = objects_layers(None, table, voxel_size=voxel_size)
    points[1]["visible"] = True
    points[1].pop("metadata_spherical", None)
    points[1]["name"] = Path(str(path)).stem + ("" if voxel_size else " (voxels: no nm columns)")
    points[1]["metadata"]["tomoseg"]["voxel_size_nm"] = voxel_size
    origin = table_origin(table, voxel_size)
    if origin is not None:  # the centroids where the table's nm columns put them: over the image's translation
        points[1]["translate"] = origin
    return [points]


def table_origin(table: dict, voxel_size) -> tuple | None:
    """Where an objects table's nm columns place voxel (0, 0, 0) (z, y, x nm: the input's origin, an OME-Zarr
    translation or an NRRD's space origin, which ``centroid_A_nm`` start from): per axis the median of
    ``centroid_A_nm - centroid_A × voxel size``; None without a voxel size, or where it is 0 to a thousandth of a
    voxel (no translation to give)."""
    if not voxel_size:
        return None
    origin = []
    for a, v in zip("zyx", voxel_size):
        c = np.asarray(table[f"centroid_{a}"], np.float64)
        nm = np.asarray(table[f"centroid_{a}_nm"], np.float64)
        ok = np.isfinite(c) & np.isfinite(nm)
        if not ok.any():
            return None
        origin.append(float(np.median(nm[ok] - c[ok] * v)))
    if all(abs(o) <= 1e-3 * v for o, v in zip(origin, voxel_size)):
        return None
    return tuple(origin)


def table_voxel_size(table: dict) -> tuple | None:
    """The voxel size (z, y, x, nm) an objects table was measured with: per axis the slope of ``centroid_A_nm``
    against ``centroid_A`` (least squares over the rows, to the CSV's 6 significant digits; the nm columns may
    start at an NRRD's space origin, the intercept). A table whose rows share one centroid along an axis gives
    the ratio there (right where the origin is 0). None where the nm columns are missing or empty (voxel size
    unknown) or there are no rows."""
    vs = []
    for a in "zyx":
        try:
            c = np.asarray(table[f"centroid_{a}"], np.float64)
            nm = np.asarray(table[f"centroid_{a}_nm"], np.float64)
        except (KeyError, TypeError, ValueError):
            return None
        ok = np.isfinite(c) & np.isfinite(nm)
        c, nm = c[ok], nm[ok]
        if len(c) > 1 and np.ptp(c) > 0:  # slope and intercept
            dc = c - c.mean()
            v = float(np.sum(dc * (nm - nm.mean())) / np.sum(dc ** 2))
        else:
            v = float(np.sum(c * nm) / np.sum(c ** 2)) if np.any(c != 0) else np.nan
        if not v > 0:
            return None
        vs.append(float(f"{v:.6g}"))
    return tuple(vs)


def _label_kwargs(attrs: dict) -> dict:
    """napari colormap and features from NGFF image-label colours and properties."""
    meta = (attrs.get("ome") or {}).get("image-label") or attrs.get("image-label") or {}
    kw: dict = {}
    colours = meta.get("colors")
    if colours:
        cmap = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
        cmap.update({int(c["label-value"]): tuple(v / 255 for v in c["rgba"]) for c in colours if c.get("rgba")})
        kw["colormap"] = cmap
    props = meta.get("properties")
    if props:
        keys = sorted({k for p in props for k in p if k != "label-value"})
        feats = {"index": np.array([int(p["label-value"]) for p in props])}
        for k in keys:
            feats[k] = np.array([p.get(k, np.nan) for p in props], dtype=object if k == "name" else float)
        kw["features"] = feats
    return kw


def read(path) -> list[tuple]:
    """Layers of one file: OME-Zarr (image pyramid plus every ``labels/``) or any tomoseg volume."""
    import zarr

    from ..io import open_volume
    from ..io.volume import origin_of
    from ..io.zarr_store import is_zarr_dir
    from .layers import placement

    p = Path(str(path))
    if is_zarr_dir(p):
        group = zarr.open(str(p), mode="r")
        attrs = dict(group.attrs) if isinstance(group, zarr.Group) else {}
        ms = (attrs.get("ome") or {}).get("multiscales")
        if ms:
            return _read_ome_zarr(p, group, ms)
    vol = open_volume(str(p))
    data = vol.read() if vol.size <= LAZY_VOXELS else lazy_array(vol)
    layer_type = "labels" if _looks_like_labels(p, vol) else "image"
    kwargs = {"name": p.name.split(".")[0], **placement(vol.voxel_size, origin_of(vol)), **_segmented_in(p)}
    if layer_type == "labels" and data.dtype.kind == "f":
        data = data.astype(np.uint32)
    return [(data, kwargs, layer_type)]


def _segmented_in(path: Path) -> dict:
    """The layer's metadata naming the ``--roi`` box ``tomoseg segment`` wrote ``path`` in (its provenance
    record), so that Analyze analyses that box; {} for any other file."""
    from ..io.segment_record import segmented_roi
    from .layers import roi_metadata

    box = segmented_roi(path)
    return {"metadata": roi_metadata(box)} if box else {}


LAZY_VOXELS = 2**27  # larger volumes open as dask arrays: napari reads the chunks of the slices it shows


def lazy_array(volume):
    """A dask array over a :class:`~tomoseg.io.Volume`, in its storage chunks (whole slices where the data is not
    chunked), so that napari reads only what it draws."""
    import dask.array as da

    from ..io.blocks import storage_chunks

    shape = tuple(int(s) for s in volume.shape)
    chunks = storage_chunks(volume) or (1, *shape[1:])
    return da.from_array(volume, chunks=chunks, asarray=True, lock=False, name=f"tomoseg-{volume.path}",
                         meta=np.empty((0, 0, 0), volume.dtype))


def _looks_like_labels(path: Path, volume) -> bool:
    if np.dtype(volume.dtype) in (np.uint32, np.uint64, np.int32, np.int64):
        return True
    if _label_image_record(path):  # tomoseg's label image or mask, named as the user chose (lab.tif, pores.tif)
        return True
    if any(n in path.name.lower() for n in LABEL_NAMES) and np.dtype(volume.dtype).kind in "uif":
        step = max(1, volume.shape[0] // 8)
        sample = np.asarray(volume[::step])  # about 8 slices, not the volume
        return np.array_equal(sample, np.round(sample))
    return False


PHANTOM_LABELS = ("labels", "instances", "pair_labels", "pair_instances")  # a phantom's outputs that are labels


def _label_image_record(path: Path) -> bool:
    """Whether tomoseg's provenance record beside ``path`` says it wrote a label image or a mask there (a label
    image, segment's mask, a phantom's labels or object ids)."""
    from ..io.output_guard import tomoseg_provenance

    try:
        record = tomoseg_provenance(path)
    except Exception:  # noqa: BLE001 - a record that cannot be read says nothing: the other rules decide
        return False
    if not record:
        return False
    return record.get("tool") == "tomoseg write_label_image" or \
        (record.get("tool") == "tomoseg segment" and record.get("written") == "mask") or \
        (record.get("tool") == "tomoseg phantom" and record.get("written") in PHANTOM_LABELS)  # its truth


def _read_ome_zarr(p: Path, group, ms) -> list[tuple]:
    from ..io.volume import origin_of
    from ..io.zarr_store import open_zarr
    from .layers import placement

    levels = _levels(p, group)
    image = open_zarr(p)
    vs, origin = image.voxel_size, origin_of(image)
    # a mask written by segment (0/1, no image-label block) is labels too
    image_is_labels = "image-label" in (dict(group.attrs).get("ome") or {}) or _looks_like_labels(p, levels[0])
    name = ms[0].get("name") or p.name.split(".")[0]
    if image_is_labels:
        data, multiscale = label_data(levels)
    else:
        data, multiscale = (levels if len(levels) > 1 else levels[0]), len(levels) > 1
    kwargs = {"name": name, **placement(vs, origin), "multiscale": multiscale, **_segmented_in(p)}
    layers = [(data, kwargs, "labels" if image_is_labels else "image")]
    if "labels" in group:
        for name in (dict(group["labels"].attrs).get("ome") or {}).get("labels", []):
            lv = _levels(p, group, f"labels/{name}")
            # each label image at its own scale (another tool's labels may be coarser than the image)
            label = open_zarr(p / "labels" / name)
            own = label.voxel_size or vs
            data, multiscale = label_data(lv)  # at its own translation (none: at 0, NGFF), in the image's space
            at = origin_of(label) if label.voxel_size else origin
            kw = {"name": name, **placement(own, at), "multiscale": multiscale, "opacity": 0.7,
                  **_label_kwargs(dict(group[f"labels/{name}"].attrs))}
            layers.append((data, kw, "labels"))
    return layers


DAMAGED = ("the store is incomplete (an interrupted copy or write?): copy it again, or write it again with "
           "tomoseg (analyze --ome-zarr, segment to a .ome.zarr)")


def _levels(p: Path, group, dataset: str = "") -> list:
    """The levels of the image (or of ``labels/NAME``), after checking that what the metadata lists is there: a
    missing label image or level is a :class:`~tomoseg.errors.TomosegError` naming the store and what is missing
    (napari review V10: a bare ``KeyError '1'``)."""
    from ..errors import TomosegError
    from ..io.ome_zarr import read_pyramid

    what = f"the label image {dataset.split('/')[-1]!r} ({dataset}/)" if dataset else "the image"
    if dataset and dataset not in group:
        raise TomosegError(f"{p}: its metadata lists {what}, which is missing; {DAMAGED}")
    node = group[dataset] if dataset else group
    ms = (dict(node.attrs).get("ome") or {}).get("multiscales") or dict(node.attrs).get("multiscales") or []
    paths = [str(d.get("path")) for d in (ms[0].get("datasets") or [])] if ms else []
    missing = [q for q in paths if q not in node]
    if missing:
        where = f"{dataset}/" if dataset else ""
        raise TomosegError(f"{p}: {what} lacks resolution level{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(where + q for q in missing)} (its metadata lists {len(paths)}: "
                           f"{', '.join(paths)}); {DAMAGED}")
    return read_pyramid(p, dataset)


def label_data(levels: list) -> tuple:
    """A label image's layer data and whether it is multiscale. The store is opened read-only, and napari paints
    on a labels layer whose data is not multiscale, so a Zarr level as such data looks editable and every brush
    stroke fails. Up to :data:`LAZY_VOXELS` voxels: level 0 read into memory, an editable copy (the file is not
    changed; save the edits as a new file); beyond: the levels as napari's multiscale labels, which napari does not
    paint on (``editable`` False); a single level gets a lazy second one, every other voxel (napari takes no
    multiscale data of one level)."""
    if int(np.prod(levels[0].shape)) <= LAZY_VOXELS:
        return np.asarray(levels[0]), False
    if len(levels) == 1:
        import dask.array as da

        return [levels[0], da.from_array(levels[0], chunks=levels[0].chunks)[::2, ::2, ::2]], True
    return list(levels), True
