"""HDF5 and NeXus: ``file.h5:/entry/data/data`` names a dataset inside a file.

The voxel size is read from the dataset attribute ``element_size_um`` (z, y, x in
µm; the convention of ilastik and Fiji's HDF5 plugin) or ``voxel_size_nm``, and
written as both.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import TomosegError
from .hdf5_chunks import parallel_reader
from .volume import Sink, Volume

EXTENSIONS = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".he5")
DEFAULT_DATASET = "/data"
_NEXUS_DEFAULT = "/entry/data/data"


def _find_dataset(f: h5py.File, path: Path) -> str:
    candidates = []
    f.visititems(lambda name, obj: candidates.append("/" + name)
                 if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 else None)
    three_d = [c for c in candidates if f[c].ndim == 3]
    if _NEXUS_DEFAULT in three_d:
        return _NEXUS_DEFAULT
    if len(three_d) == 1:
        return three_d[0]
    if not candidates:
        raise TomosegError(f"{path}: holds no image dataset")
    listed = ", ".join(f"{path}:{c}" for c in candidates[:8])
    raise TomosegError(f"{path}: holds several datasets; name one, e.g. {listed}")


def _check_virtual(ds, path: Path, name: str) -> None:
    """A virtual dataset whose source files are missing reads as its fill value: refuse it."""
    if not ds.is_virtual:
        return
    for source in ds.virtual_sources():
        src = source.file_name
        if src == ".":
            continue
        candidates = [Path(src)] if Path(src).is_absolute() else [path.parent / src, Path(src)]
        if not any(c.exists() for c in candidates):
            raise TomosegError(f"{path}:{name} is a virtual dataset whose source file {src} is missing; it would "
                               "read as zeros. Copy the source files beside it, or export a real dataset")


def _check_not_projections(f, path, name: str) -> None:
    """Refuse raw tomography data: an NXtomo entry (NeXus: projections with their darks and flats, told apart by
    ``image_key``) read as a volume would give darks, flats and projections as z slices."""
    parts = name.strip("/").split("/")
    for depth in range(1, len(parts)):
        group = f.get("/" + "/".join(parts[:depth]))
        if not isinstance(group, h5py.Group):
            continue
        definition = group.get("definition")
        text = definition[()] if isinstance(definition, h5py.Dataset) else group.attrs.get("definition")
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        if str(text).strip() == "NXtomo" or "image_key" in group:
            raise TomosegError(f"{path}:{name} holds raw projections (NeXus NXtomo: projections, darks and flats), "
                               "not a reconstructed volume; reconstruct it first (e.g. tomopy, nabu, tomocupy) "
                               "and give the reconstruction")


def open_hdf5(path: Path, dataset: str | None = None) -> Volume:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TomosegError(f"{path}: is not a readable HDF5 file ({exc})") from None
    try:
        name = dataset if dataset else _find_dataset(f, path)
        link = f.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            try:
                f[name]
            except (KeyError, OSError) as exc:
                raise TomosegError(f"{path}:{name} is an external link to {link.filename}:{link.path}, which cannot "
                                   f"be opened ({exc}); copy that file beside it or name the dataset itself") from None
        if name not in f:
            raise TomosegError(f"{path}: has no dataset {name!r}; check the path after the colon")
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise TomosegError(f"{path}:{name} is a group, not a dataset; name a dataset inside it")
        _check_virtual(ds, path, name)
        _check_not_projections(f, path, name)
        voxel_size = None
        try:
            if "element_size_um" in ds.attrs:
                voxel_size = tuple(float(v) * 1e3 for v in np.ravel(ds.attrs["element_size_um"]))
            elif "voxel_size_nm" in ds.attrs:
                voxel_size = tuple(float(v) for v in np.ravel(ds.attrs["voxel_size_nm"]))
        except (TypeError, ValueError, OSError):
            voxel_size = (float("nan"),) * 3  # unreadable: reported as not valid, --voxel-size overrides
        if voxel_size is not None and len(voxel_size) != 3:
            voxel_size = None
        vol = Volume(parallel_reader(ds), path=Path(f"{path}:{name}"), format="hdf5", voxel_size=voxel_size,
                     chunks=ds.chunks, close=f.close)
    except TomosegError:
        f.close()
        raise
    except Exception as exc:
        f.close()
        raise TomosegError(f"{path}: dataset cannot be opened ({exc}); the file may be damaged") from None
    return vol


def _create(f: h5py.File, name: str, shape, dtype, voxel_size, chunks):
    from .._version import __version__
    from .output_guard import MARK

    ds = f.create_dataset(name, shape=tuple(shape), dtype=np.dtype(dtype),
                          chunks=tuple(min(c, s) for c, s in zip(chunks or (64, 64, 64), shape)),
                          compression="gzip", compression_opts=1, shuffle=True)
    if voxel_size is not None:
        ds.attrs["element_size_um"] = np.asarray(voxel_size, np.float64) / 1e3
        ds.attrs["voxel_size_nm"] = np.asarray(voxel_size, np.float64)
    ds.attrs[MARK] = f"written by tomoseg {__version__}"
    return ds


def create_hdf5(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, dataset: str | None = None) -> Sink:
    f = h5py.File(tmp, "w")
    ds = _create(f, dataset or DEFAULT_DATASET, shape, dtype, voxel_size, chunks)
    return Sink(ds, finish=f.close, abort=f.close)


def create_hdf5_in_file(path: Path, shape, dtype, *, voxel_size=None, chunks=None, dataset: str | None = None,
                        tmp: Path | None = None) -> Sink:
    """Write one dataset into an existing file, keeping its other datasets.

    The data are written to a separate temporary file first; only when they are complete is the user's file
    opened for writing, the dataset copied in as ``NAME.partial`` and renamed to ``NAME`` (replacing tomoseg's
    own earlier result, as checked before). The user's file is thus open for writing only for the copy, not
    for the whole computation, so a crash during the computation cannot damage its other datasets.
    """
    name = "/" + (dataset or DEFAULT_DATASET).strip("/")
    tmp = Path(tmp or path.with_name(path.name + ".partial"))
    staging = h5py.File(tmp, "w")
    try:
        ds = _create(staging, "/data", shape, dtype, voxel_size, chunks)
    except Exception:
        staging.close()
        tmp.unlink(missing_ok=True)
        raise

    def finish():
        staging.close()
        part = name + ".partial"
        try:
            with h5py.File(tmp, "r") as src, h5py.File(path, "a") as dst:
                if part in dst:
                    del dst[part]
                parent = part.rsplit("/", 1)[0]
                if parent and parent not in dst:
                    dst.require_group(parent)
                dst.copy(src["/data"], part)
                if name in dst:
                    del dst[name]
                dst.move(part, name)
        except OSError as exc:
            raise TomosegError(f"{path}: the result could not be added to this HDF5 file ({exc}); close other "
                               "programs using it, or write to another file") from None
        finally:
            tmp.unlink(missing_ok=True)

    def abort():
        try:
            staging.close()
        finally:
            tmp.unlink(missing_ok=True)

    return Sink(ds, finish=finish, abort=abort, placed=True)
