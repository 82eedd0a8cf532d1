"""Z-score normalization with whole-volume statistics, computed in one streaming pass.

The same statistics are applied to every tile (never per tile), as in training.
For very large volumes a documented sample of evenly spaced z slabs (whole layers of
storage chunks) can stand in for the full pass (``method="sample"``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..errors import TomosegError
from ..io.blocks import block_grid, read_ahead, sample_slabs, slab_blocks, storage_chunks, worker_threads


@dataclass(frozen=True)
class Stats:
    mean: float
    std: float
    voxels: int
    method: str

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "voxels": self.voxels, "method": self.method}


MAX_FULL_VOXELS = 2**31  # above this, --stats auto reads an evenly spread sample of the chunk layers
SAMPLE_FRACTION = 0.05   # the share of the layers of storage chunks along z that --stats sample reads (at least 8)


def volume_stats(volume, *, method: str = "auto", sample_fraction: float = SAMPLE_FRACTION,
                 max_full_voxels: int = MAX_FULL_VOXELS, slab_voxels: int = 2**24, progress=None, visit=None,
                 multiple: int = 1, slabs: list | None = None) -> Stats:
    """Mean and standard deviation of a volume, in float64, reading it block by block.

    Blocks follow the storage chunks (:mod:`tomoseg.io.blocks`): each chunk is decompressed once.

    Parameters
    ----------
    method : {"auto", "full", "sample"}
        ``full`` reads every voxel; ``sample`` reads ``sample_fraction`` of the layers of storage chunks along
        z (whole slices where the data is not chunked in z), at least 8, evenly spread
        (:func:`tomoseg.io.blocks.sample_slabs`); ``auto`` is full up to ``max_full_voxels``.
    visit : callable, optional
        Called with ``(block, data)`` for every block read, so that another computation over the whole
        volume (the sample mask's low-resolution copy) shares this read instead of reading again.
    multiple : int
        Block edges along z and y fall on multiples of this (what ``visit`` may need).
    slabs : list of slice, optional
        The z ranges ``sample`` reads, where the caller chose them (:func:`~tomoseg.io.blocks.sample_slabs`) to
        know in advance which slices ``visit`` will see.

    Raises
    ------
    TomosegError
        On NaN or infinite voxels, or a constant volume (standard deviation 0).
    """
    shape = volume.shape
    method = stats_method(method, int(np.prod(shape, dtype=np.int64)), max_full_voxels)
    chunks = storage_chunks(volume)
    if method == "full":
        regions = block_grid(shape, chunks, max_voxels=slab_voxels, multiple=multiple)
    else:
        if slabs is None:
            slabs = sample_slabs(shape, chunks, sample_fraction)
        regions = slab_blocks(shape, slabs, chunks, max_voxels=slab_voxels, multiple=multiple)
    integer = np.dtype(getattr(volume, "dtype", np.float64)) in (np.dtype(np.uint8), np.dtype(np.uint16))
    summarize = _histogram if integer else _moments

    def read(region):  # on a reader thread: decompressing, the histogram and ``visit`` all run in parallel
        data = np.asarray(volume[region])
        if visit is not None:
            visit(region, data)
        return summarize(volume, region, data)

    threads = stats_threads() if len(regions) > 1 else 0
    parts = (part for _, part in read_ahead(regions, read, threads=threads))
    if integer:
        return _integer_stats(volume, parts, progress, method)
    count, mean, m2 = 0, 0.0, 0.0
    for n, m, v in parts:
        count, mean, m2 = add_moments((count, mean, m2), (n, m, v))
        if progress is not None:
            progress.update(n)
    std = float(np.sqrt(m2 / count)) if count else 0.0
    _check_not_constant(volume, mean, std)
    return Stats(mean=mean, std=std, voxels=count, method=method)


def stats_method(method: str, voxels: int, max_full_voxels: int = MAX_FULL_VOXELS) -> str:
    """What :func:`volume_stats` does for ``method`` on a volume of ``voxels``: "full" (every voxel) or "sample";
    ``auto`` is full up to ``max_full_voxels``."""
    if method == "auto":
        method = "full" if voxels <= max_full_voxels else "sample"
    if method not in ("full", "sample"):
        raise TomosegError(f"statistics method {method!r} must be auto, full or sample")
    return method


def add_moments(a: tuple, b: tuple) -> tuple:
    """``(count, mean, sum of squared deviations)`` of two parts together, from each part's (Chan et al.'s
    pairwise update: exact in float64 whatever the order of the parts)."""
    (count, mean, m2), (n, m, v) = a, b
    total = count + n
    delta = m - mean
    return total, mean + delta * n / total, m2 + v + delta**2 * count * n / total


def _check_not_constant(volume, mean: float, std: float) -> None:
    if not std > 0:
        raise TomosegError(f"{getattr(volume, 'path', 'volume')}: is constant (every voxel = {mean:g}); there is "
                           "nothing to segment")


def stats_threads() -> int:
    """Threads for the statistics pass: one per core, at most 8 (beyond that the disk sets the pace)."""
    return worker_threads(8)


def _histogram(volume, region, data: np.ndarray) -> np.ndarray:
    """The value histogram of an 8- or 16-bit block.

    8 bits: PyTorch's bincount where PyTorch is already loaded (the CUDA and PyTorch backends; 5x NumPy's,
    and it lets other threads run), else NumPy's over pairs of voxels read as 16-bit values (1.4x NumPy's
    plain bincount). The OpenVINO path never loads PyTorch: importing it for this cost 0.8 s, and its idle
    OpenMP threads then slowed OpenVINO by 0.5 s on 2 cores."""
    if data.dtype != np.uint8:
        return _bincount(data.ravel(), 65536)
    flat = np.ascontiguousarray(data).reshape(-1)
    torch = sys.modules.get("torch")
    if torch is not None:
        if not flat.flags.writeable:  # a read-only memory map: PyTorch wants memory it may write
            flat = flat.copy()
        return torch.bincount(torch.from_numpy(flat), minlength=256).numpy()
    even = flat.size - flat.size % 2
    pairs = _bincount(flat[:even].view(np.uint16), 65536).reshape(256, 256)
    hist = pairs.sum(axis=0) + pairs.sum(axis=1)  # one byte of a pair counted by row, the other by column
    if even < flat.size:
        hist[flat[-1]] += 1
    return hist


HISTOGRAM_PIECE = 2**20  # values a histogram or moments take at once: their int64 / float64 copies stay at 8 MiB


def _bincount(values: np.ndarray, bins: int) -> np.ndarray:
    """``np.bincount(values, minlength=bins)`` a piece at a time: its int64 copy of the input stays at
    :data:`HISTOGRAM_PIECE` values (a 16 Mvox block's was 128 MiB on each reader thread). Exact."""
    counts = np.zeros(bins, np.int64)
    for start in range(0, values.size, HISTOGRAM_PIECE):
        counts += np.bincount(values[start:start + HISTOGRAM_PIECE], minlength=bins)
    return counts


def check_finite(data: np.ndarray, where, region) -> None:
    """Refuse a block (``region`` of the volume ``where``, a path or name) that holds NaN or infinities."""
    if np.dtype(data.dtype).kind == "f" and not np.all(np.isfinite(data)):
        _not_finite(where, region, data.shape, int(np.flatnonzero(~np.isfinite(data.reshape(-1)))[0]))


def _not_finite(volume, region, shape, index: int):
    bad = np.unravel_index(index, shape)
    at = ", ".join(str(int(b) + (r.start or 0)) for b, r in zip(bad, region))
    where = volume if isinstance(volume, str) else getattr(volume, "path", "volume")
    raise TomosegError(f"{where}: holds NaN or infinite values (first at z, y, x = {at}); replace them (e.g. with "
                       "the background value) before segmenting")


def _moments(volume, region, data) -> tuple[int, float, float]:
    """Voxels, mean and sum of squared deviations of a float block, a piece of :data:`HISTOGRAM_PIECE` values
    at a time (merged by :func:`add_moments`): the float64 copy and the squared deviations of a whole 16 Mvox
    block were 256 MiB on each reader thread. Refuses NaN and infinities."""
    flat = np.asarray(data).reshape(-1)
    total = (0, 0.0, 0.0)
    for start in range(0, flat.size, HISTOGRAM_PIECE):
        piece = flat[start:start + HISTOGRAM_PIECE].astype(np.float64)
        if not np.all(np.isfinite(piece)):
            _not_finite(volume, region, np.shape(data), start + int(np.flatnonzero(~np.isfinite(piece))[0]))
        m = float(piece.mean())
        total = add_moments(total, (piece.size, m, float(((piece - m) ** 2).sum())))
    return total


def _integer_stats(volume, histograms, progress, method: str) -> Stats:
    """Mean and s.d. of an 8- or 16-bit volume from its histogram: exact, and several times faster than
    the float64 pass."""
    hist = None
    for h in histograms:
        hist = h if hist is None else hist + h
        if progress is not None:
            progress.update(int(h.sum()))
    values = np.arange(len(hist), dtype=np.float64)
    count = int(hist.sum())
    mean = float((hist * values).sum() / count)
    std = float(np.sqrt((hist * (values - mean) ** 2).sum() / count))
    _check_not_constant(volume, mean, std)
    return Stats(mean=mean, std=std, voxels=count, method=method)


def exact_in_float32(dtype) -> bool:
    """Whether float32 holds every value of ``dtype`` (bool, 8- and 16-bit integers, float16 and float32)."""
    dt = np.dtype(dtype)
    return dt.kind == "b" or (dt.kind in "iu" and dt.itemsize <= 2) or (dt.kind == "f" and dt.itemsize <= 4)


def normalize(data: np.ndarray, stats: Stats) -> np.ndarray:
    """``(data - mean) / sd`` as float32. Wider types (float64, 32- and 64-bit integers) take the offset in
    float64 first: cast to float32 before it, a volume of 1e8 ± 1 became a constant."""
    if exact_in_float32(np.asarray(data).dtype):
        out = np.asarray(data, dtype=np.float32) - np.float32(stats.mean)
    else:
        out = (np.asarray(data, dtype=np.float64) - stats.mean).astype(np.float32)
    out *= np.float32(1.0 / stats.std)
    return out
