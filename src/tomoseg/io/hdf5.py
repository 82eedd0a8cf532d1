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


def open_hdf5(path: Path, dataset: str | None = None) -> Volume:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TomosegError(f"{path}: is not a readable HDF5 file ({exc})") from None
    try:
        name = dataset if dataset else _find_dataset(f, path)
        if name not in f:
            raise TomosegError(f"{path}: has no dataset {name!r}; check the path after the colon")
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise TomosegError(f"{path}:{name} is a group, not a dataset; name a dataset inside it")
        voxel_size = None
        if "element_size_um" in ds.attrs:
            voxel_size = tuple(float(v) * 1e3 for v in np.ravel(ds.attrs["element_size_um"]))
        elif "voxel_size_nm" in ds.attrs:
            voxel_size = tuple(float(v) for v in np.ravel(ds.attrs["voxel_size_nm"]))
        if voxel_size is not None and len(voxel_size) != 3:
            voxel_size = None
        vol = Volume(ds, path=Path(f"{path}:{name}"), format="hdf5", voxel_size=voxel_size, chunks=ds.chunks,
                     close=f.close)
    except Exception:
        f.close()
        raise
    return vol


def create_hdf5(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, dataset: str | None = None) -> Sink:
    f = h5py.File(tmp, "w")
    name = dataset or DEFAULT_DATASET
    ds = f.create_dataset(name, shape=tuple(shape), dtype=np.dtype(dtype),
                          chunks=tuple(min(c, s) for c, s in zip(chunks or (64, 64, 64), shape)),
                          compression="gzip", compression_opts=1, shuffle=True)
    if voxel_size is not None:
        ds.attrs["element_size_um"] = np.asarray(voxel_size, np.float64) / 1e3
        ds.attrs["voxel_size_nm"] = np.asarray(voxel_size, np.float64)
    return Sink(ds, finish=f.close, abort=f.close)
