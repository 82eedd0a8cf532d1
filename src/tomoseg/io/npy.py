"""NumPy ``.npy`` files, memory-mapped. They carry no voxel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .volume import Sink, Volume

EXTENSIONS = (".npy",)


def open_npy(path: Path) -> Volume:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise TomosegError(f"{path}: is not a readable .npy array ({exc}); the file may be truncated") from None
    return Volume(array, path=path, format="npy")


def create_npy(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None) -> Sink:
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
    return Sink(mm, finish=mm.flush)
