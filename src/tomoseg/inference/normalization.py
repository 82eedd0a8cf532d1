"""Z-score normalization with whole-volume statistics, computed in one streaming pass.

The same statistics are applied to every tile (never per tile), as in training.
For very large volumes a documented sample of z slabs (whole layers of storage chunks, one at the centre of each
of n equal strata) can stand in for the full pass (``method="sample"``).

Real scans hold what a plain mean and s.d. have no defence against, so the statistics are robust:

- **outliers** (zingers, saturated or dead pixels): the moments are taken over the voxels within fences at the
  1st and 99th percentiles, each moved out by :data:`FENCE` times the distance between them; voxels beyond them
  (up to 1 % at either end) are left out. A clean scan has none there (tomoseg's phantoms and the real test
  scans: 0 voxels), so its statistics are exactly the plain ones. The normalized values are then clipped to
  ±\\ :data:`CLIP` s.d., so that a hot voxel cannot dominate its window either.
- **no data**: NaN and ±inf always, and the value ``fill`` where the user names one (``--fill-value``: the
  constant outside a reconstructed cylinder, padded slices) are left out of the statistics, normalized to 0
  (the mean) and given probability 0 in the output (:func:`nodata_mask`).
- **bright objects** (``objects="bright"``): the z-score's sign is flipped (a negative scale), since the model
  has learned dark objects.

The percentiles come from histograms built in the one pass: exact values for 8- and 16-bit integers, bins of
1/16 octave (the top 16 bits of the float64 value) with their exact moments for every other type, so the
moments are exact for the voxels kept and the pass stays streaming and order-independent.

One formula on every path: ``z = clip((x - mean) * scale, -clip, clip)``, then 0 where there is no data, with
``scale = sign / sd`` in float32 (:func:`normalize` on the CPU; the CUDA pipeline on the device).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from ..errors import TomosegError
from ..io.blocks import block_grid, read_ahead, sample_slabs, slab_blocks, storage_chunks, worker_threads
from ..io.volume import path_of

FENCE = 2.0        # fences: the 1st / 99th percentiles moved out by this many times the distance between them
PERCENTILE = 0.01  # ... at this share of the voxels from either end
CLIP = 10.0        # normalized values beyond ± this many s.d. are clipped
OBJECTS = ("dark", "bright")


@dataclass(frozen=True)
class Stats:
    """The normalization of a volume: ``z = clip((x - mean) * sign / std, -clip, clip)``, 0 where no data.

    ``clip`` None is the plain z-score of tomoseg before 0.x (no fences, no clipping): how a run started by an
    earlier version (its ``state.json``) is resumed, so that its tiles all share one normalization."""

    mean: float
    std: float
    voxels: int                     # voxels the moments were taken over
    method: str                     # full | sample | sub-volume
    clip: float | None = None       # ± s.d.; None: not clipped (an earlier version's run)
    sign: float = 1.0               # -1: bright objects (the z-score flipped)
    fill: float | None = None       # the value that means "no data" (besides NaN and ±inf)
    limits: list | None = None      # [low, high]: the fences; voxels beyond them were left out of the moments
    outliers: int = 0               # voxels beyond the fences
    nodata: int = 0                 # voxels NaN, ±inf or the fill value (left out; probability 0)
    extreme: list | None = None     # [value, voxels, "lowest"|"highest"]: one value at an end of the range
                                    # held by many voxels (a fill value?), for the warning

    @property
    def scale(self) -> np.float32:
        """``sign / std`` in float32: what the normalized values are multiplied by, on every path."""
        return np.float32(self.sign / self.std)

    @property
    def objects(self) -> str:
        return "bright" if self.sign < 0 else "dark"

    def to_dict(self) -> dict:
        out = {"mean": self.mean, "std": self.std, "voxels": self.voxels, "method": self.method}
        if self.clip is not None:  # an earlier version's run keeps its record as it was
            out.update(clip=self.clip, sign=self.sign, fill=self.fill, limits=self.limits, outliers=self.outliers,
                       nodata=self.nodata, extreme=self.extreme)
        return out


def check_objects(objects) -> None:
    """Refuse ``objects`` other than dark, bright or None (what the model was trained for)."""
    if objects not in (None, *OBJECTS):
        raise TomosegError(f"objects {objects!r} must be dark or bright")


def check_fill_value(fill_value) -> None:
    """Refuse a fill value (a gray value meaning "no data") that is not a finite number."""
    if fill_value is not None and not (isinstance(fill_value, (int, float, np.number)) and np.isfinite(fill_value)):
        raise TomosegError(f"--fill-value {fill_value}: give a finite gray value (NaN and infinities "
                           "are always treated as no data)")


def model_objects(model) -> str:
    """The objects a model was trained to find, from its metadata (``normalization.objects``): dark or bright;
    dark for models that record none (every model trained before the key existed, the shipped one too)."""
    meta = getattr(model, "metadata", None) or {}
    norm = meta.get("normalization") if isinstance(meta, dict) else None
    objects = norm.get("objects", "dark") if isinstance(norm, dict) else "dark"
    return objects if objects in OBJECTS else "dark"


MAX_FULL_VOXELS = 2**31  # above this, --stats auto reads a stratified sample of the chunk layers
SAMPLE_FRACTION = 0.05   # the share of the layers of storage chunks along z that --stats sample reads (at least 8)


def volume_stats(volume, *, method: str = "auto", sample_fraction: float = SAMPLE_FRACTION,
                 max_full_voxels: int = MAX_FULL_VOXELS, slab_voxels: int = 2**24, progress=None, visit=None,
                 multiple: int = 1, slabs: list | None = None, fill: float | None = None,
                 objects: str = "dark", summarize=None) -> Stats:
    """Robust mean and standard deviation of a volume, in float64, reading it block by block.

    Blocks follow the storage chunks (:mod:`tomoseg.io.blocks`): each chunk is decompressed once. The moments
    leave out NaN, ±inf, the ``fill`` value and the outliers beyond the fences (module docstring).

    Parameters
    ----------
    method : {"auto", "full", "sample"}
        ``full`` reads every voxel; ``sample`` reads ``sample_fraction`` of the layers of storage chunks along
        z (whole slices where the data is not chunked in z), at least 8, one at the centre of each of as many
        equal strata (:func:`tomoseg.io.blocks.sample_slabs`); ``auto`` is full up to ``max_full_voxels``.
    visit : callable, optional
        Called with ``(block, data)`` for every block read, so that another computation over the whole
        volume (the sample mask's low-resolution copy) shares this read instead of reading again.
    multiple : int
        Block edges along z and y fall on multiples of this (what ``visit`` may need).
    slabs : list of slice, optional
        The z ranges ``sample`` reads, where the caller chose them (:func:`~tomoseg.io.blocks.sample_slabs`) to
        know in advance which slices ``visit`` will see.
    fill : float, optional
        A gray value that means "no data" (besides NaN and ±inf).
    objects : {"dark", "bright"}
        Bright: the z-score's sign is flipped.
    summarize : callable, optional
        ``summarize(binning, data, region)``: another implementation of ``binning.summarize(data)`` (the same
        bins, the same summary) for the block ``data`` read at ``region``, e.g. on a GPU
        (:func:`tomoseg.inference.device_stats.summarize_on`); None: NumPy's.

    Raises
    ------
    TomosegError
        A volume with no data at all, or a constant one (standard deviation 0).

    Examples
    --------
    >>> v = np.full((4, 10, 10), 100, np.uint8); v[:, :, :5] = 50; v[0, 0, 0] = 255  # one hot voxel
    >>> s = volume_stats(v)
    >>> round(s.mean, 2), round(s.std, 2), s.outliers, s.limits, round(float(v.std()), 2)
    (75.06, 25.0, 1, [-50.0, 200.0], 26.54)
    """
    if objects not in OBJECTS:
        raise TomosegError(f"objects {objects!r} must be dark or bright")
    shape = volume.shape
    method = stats_method(method, int(np.prod(shape, dtype=np.int64)), max_full_voxels)
    chunks = storage_chunks(volume)
    if method == "full":
        regions = block_grid(shape, chunks, max_voxels=slab_voxels, multiple=multiple)
    else:
        if slabs is None:
            slabs = sample_slabs(shape, chunks, sample_fraction)
        regions = slab_blocks(shape, slabs, chunks, max_voxels=slab_voxels, multiple=multiple)
    dtype = np.dtype(getattr(volume, "dtype", np.float64))
    binning = _Binning.for_dtype(dtype, fill)

    def read(region):  # on a reader thread: decompressing, the histogram and ``visit`` all run in parallel
        data = np.asarray(volume[region])
        if visit is not None:
            visit(region, data)
        return binning.summarize(data) if summarize is None else summarize(binning, data, region)

    threads = stats_threads() if len(regions) > 1 else 0
    total = None
    for _, part in read_ahead(regions, read, threads=threads):
        total = part if total is None else total.add(part)
        if progress is not None:
            progress.update(part.voxels)
    return binning.stats(volume, total, method, fill=fill, sign=-1.0 if objects == "bright" else 1.0)


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


def stats_threads() -> int:
    """Threads for the statistics pass: one per core, at most 8 (beyond that the disk sets the pace)."""
    return worker_threads(8)


EXTREME_SHARE = 0.05  # one value at an end of the range held by this share of the voxels: a fill value, probably
_EXACT = {np.dtype(np.uint8): (256, 0), np.dtype(np.uint16): (65536, 0), np.dtype(np.int8): (256, -128),
          np.dtype(np.int16): (65536, -32768)}  # dtypes binned by value: (bins, value of bin 0)
_FLOAT_BITS = {np.dtype(np.float16): 16, np.dtype(np.float32): 32}  # binned by their own bits; others as float64
MANTISSA_BITS = {16: 10, 32: 23, 64: 52}


def _bin_keys(x: np.ndarray, bits: int) -> np.ndarray:
    """The bin of each value of ``x`` (a float of ``bits`` bits, native order): its sign, exponent and top 4
    bits of mantissa (bins of 1/16 octave), from its bit pattern."""
    unsigned = {16: np.uint16, 32: np.uint32, 64: np.uint64}[bits]
    return (x.view(unsigned) >> unsigned(MANTISSA_BITS[bits] - 4)).astype(np.intp)


@dataclass
class _Summary:
    """What the pass keeps of the blocks read: voxels per bin (and for bins of value ranges, their mean and sum
    of squared deviations), and the voxels without data (NaN, ±inf, the fill value) left out."""

    counts: np.ndarray
    means: np.ndarray | None = None
    m2: np.ndarray | None = None
    nodata: int = 0
    voxels: int = 0

    @classmethod
    def of_sums(cls, counts, sums, squares, ref: float, nodata: int = 0) -> "_Summary":
        """A part's summary from its voxels per bin and, per bin, the sums of ``x - ref`` and of its squares."""
        counts = np.asarray(counts, np.int64)
        shifted = sums / np.maximum(counts, 1)
        m2 = np.maximum(squares - sums * shifted, 0.0)
        means = np.where(counts > 0, ref + shifted, 0.0)
        return cls(counts, means, m2, int(nodata))

    def add(self, other: "_Summary") -> "_Summary":
        """Both parts together; bin means and squared deviations by Chan et al.'s pairwise update (bin by bin:
        well conditioned where a bin's values lie far from 0, as 1e8 ± 100 in float64)."""
        counts = self.counts + other.counts
        if self.means is None:
            return _Summary(counts, nodata=self.nodata + other.nodata, voxels=self.voxels + other.voxels)
        share = np.divide(other.counts, counts, out=np.zeros(len(counts)), where=counts > 0)
        delta = other.means - self.means
        means = self.means + delta * share
        m2 = self.m2 + other.m2 + delta**2 * self.counts * share
        return _Summary(counts, means, m2, self.nodata + other.nodata, self.voxels + other.voxels)


@dataclass
class _Binning:
    """How the pass bins a dtype's values: by value (8- and 16-bit integers: ``bins`` values from ``offset``)
    or by float64 bit pattern (every other type; ``exact`` False), with the fill value left out where given."""

    dtype: np.dtype
    exact: bool
    bins: int
    offset: int = 0
    fill: object = field(default=None)  # the fill value in the volume's dtype, or None
    bits: int = 0                       # float16/32: binned by their own bits; 0: as float64

    @classmethod
    def for_dtype(cls, dtype, fill=None) -> "_Binning":
        dtype = np.dtype(dtype)
        fill = fill_in_dtype(dtype, fill)
        if dtype.newbyteorder("=") in _EXACT:
            bins, offset = _EXACT[dtype.newbyteorder("=")]
            return cls(dtype, True, bins, offset, fill)
        bits = _FLOAT_BITS.get(dtype.newbyteorder("="), 0) if dtype.isnative else 0
        return cls(dtype, False, 1 << ((bits or 64) - MANTISSA_BITS[bits or 64] + 4), 0, fill, bits)

    def summarize(self, data) -> _Summary:
        data = np.asarray(data)
        if self.exact:
            if self.offset == 0:
                counts = _histogram(data)
            else:
                counts = _bincount(data.reshape(-1), self.bins, self.offset)
            return _Summary(counts, voxels=int(data.size))
        total = _Summary(np.zeros(self.bins, np.int64), np.zeros(self.bins), np.zeros(self.bins))
        flat = data.reshape(-1)
        for start in range(0, flat.size, HISTOGRAM_PIECE):
            piece = flat[start:start + HISTOGRAM_PIECE]
            keep = np.isfinite(piece) if piece.dtype.kind == "f" else None
            if self.fill is not None:
                other = piece != self.fill
                keep = other if keep is None else keep & other
            nodata = 0
            if keep is not None and not keep.all():
                nodata = int(keep.size - np.count_nonzero(keep))
                piece = piece[keep]
            x = piece.astype(np.float64)
            key = _bin_keys(piece if self.bits else x, self.bits or 64)
            counts = np.bincount(key, minlength=self.bins)
            ref = float(x.mean()) if x.size else 0.0  # sums of x - ref: no digits lost where all x lie far from 0
            d = x - ref
            sums = np.bincount(key, weights=d, minlength=self.bins)
            d *= d
            squares = np.bincount(key, weights=d, minlength=self.bins)
            total = total.add(_Summary.of_sums(counts, sums, squares, ref, nodata))
        total.voxels = int(data.size)
        return total

    def stats(self, volume, summary: _Summary, method: str, *, fill, sign: float) -> Stats:
        """The robust statistics of the voxels ``summary`` holds (see the module docstring)."""
        where = path_of(volume) or "volume"
        counts = summary.counts.copy()
        nodata = summary.nodata
        if self.exact:
            if self.fill is not None:
                index = int(self.fill) - self.offset
                nodata += int(counts[index])
                counts[index] = 0
            used = np.flatnonzero(counts)
            n = counts[used]
            m = (used + self.offset).astype(np.float64)
            m2 = np.zeros(len(used))
        else:
            used = np.flatnonzero(counts)
            n, m, m2 = counts[used], summary.means[used], summary.m2[used]
            order = np.argsort(m, kind="stable")
            n, m, m2 = n[order], m[order], m2[order]
        total = int(n.sum())
        if total == 0:
            what = "NaN or infinite" + (f", or the fill value {fill:g}" if fill is not None else "")
            raise TomosegError(f"{where}: holds no data: every voxel read is {what}")
        extreme = _extreme(n, m, m2, total, self.exact)
        cum = np.cumsum(n)
        q_lo = m[int(np.searchsorted(cum, PERCENTILE * total))]
        q_hi = m[min(int(np.searchsorted(cum, (1 - PERCENTILE) * total)), len(m) - 1)]
        spread = q_hi - q_lo
        if spread > 0:
            limits = [float(q_lo - FENCE * spread), float(q_hi + FENCE * spread)]
            keep = (m >= limits[0]) & (m <= limits[1])
        else:  # over 98 % of the voxels hold one value: no scale to judge outliers by; all are kept
            limits, keep = None, np.ones(len(m), bool)
        n, m, m2 = n[keep], m[keep], m2[keep]
        count = int(n.sum())
        mean = float((n * m).sum() / count)
        std = float(np.sqrt((m2.sum() + (n * (m - mean) ** 2).sum()) / count))
        if not (np.isfinite(mean) and np.isfinite(std)):  # squares beyond float64 (values near 1e302)
            raise TomosegError(f"{where}: gray values are too large to process (their squares overflow); rescale "
                               "the volume, e.g. to float32 or uint16")
        if not std > 0:
            raise TomosegError(f"{where}: is constant (every voxel = {mean:g}); there is nothing to segment")
        return Stats(mean=mean, std=std, voxels=count, method=method, clip=CLIP, sign=float(sign),
                     fill=None if fill is None else float(fill), limits=limits, outliers=total - count,
                     nodata=int(nodata), extreme=extreme)


def _extreme(n, m, m2, total: int, exact: bool) -> list | None:
    """``[value, voxels, "lowest"|"highest"]`` where one single value at an end of the range holds at least
    :data:`EXTREME_SHARE` of the voxels (the larger end where both do); else None."""
    found = []
    for i, end in ((0, "lowest"), (len(n) - 1, "highest")):
        single = exact or m2[i] == 0
        if single and n[i] >= EXTREME_SHARE * total and len(n) > 1:
            found.append([float(m[i]), int(n[i]), end])
    return max(found, key=lambda f: f[1]) if found else None


def fill_in_dtype(dtype, fill):
    """``fill`` as a value of ``dtype`` (what a voxel equal to it holds), or None where no voxel of that dtype
    can hold it (0.5 in an integer volume) or none is given."""
    if fill is None:
        return None
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if float(fill) != int(fill) or not info.min <= int(fill) <= info.max:
            return None
        return dtype.type(int(fill))
    if dtype.kind == "f":
        return dtype.type(fill)
    return None


def _loaded_torch():
    """PyTorch where this process has already imported it (the CUDA and PyTorch backends), else None: its
    bincount counts 8- and 16-bit values faster than NumPy's (benchmarks/results/stats_pass.md), but importing it
    only for this would cost the OpenVINO path 0.8 s and slow OpenVINO (see :func:`_histogram`)."""
    return sys.modules.get("torch")


def _histogram(data: np.ndarray) -> np.ndarray:
    """The value histogram of an 8- or 16-bit block.

    8 bits: PyTorch's bincount where PyTorch is already loaded (the CUDA and PyTorch backends; 5x NumPy's,
    and it lets other threads run), else NumPy's over pairs of voxels read as 16-bit values (1.4x NumPy's
    plain bincount). The OpenVINO path never loads PyTorch: importing it for this cost 0.8 s, and its idle
    OpenMP threads then slowed OpenVINO by 0.5 s on 2 cores."""
    if data.dtype != np.uint8:
        return _bincount(data.ravel(), 65536)
    flat = np.ascontiguousarray(data).reshape(-1)
    torch = _loaded_torch()
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


def _bincount(values: np.ndarray, bins: int, offset: int = 0) -> np.ndarray:
    """``np.bincount(values - offset, minlength=bins)`` a piece at a time: its int64 copy of the input stays at
    :data:`HISTOGRAM_PIECE` values (a 16 Mvox block's was 128 MiB on each reader thread). Exact."""
    counts = np.zeros(bins, np.int64)
    torch = _loaded_torch()
    for start in range(0, values.size, HISTOGRAM_PIECE):
        piece = values[start:start + HISTOGRAM_PIECE]
        if offset or (torch is not None and piece.dtype != np.uint8):
            piece = piece.astype(np.int32) - np.int32(offset)  # (PyTorch's bincount takes no uint16)
        if torch is not None:
            counts += torch.bincount(torch.from_numpy(piece), minlength=bins).numpy()
        else:
            counts += np.bincount(piece, minlength=bins)
    return counts


def exact_in_float32(dtype) -> bool:
    """Whether float32 holds every value of ``dtype`` (bool, 8- and 16-bit integers, float16 and float32)."""
    dt = np.dtype(dtype)
    return dt.kind == "b" or (dt.kind in "iu" and dt.itemsize <= 2) or (dt.kind == "f" and dt.itemsize <= 4)


def normalize(data: np.ndarray, stats: Stats) -> np.ndarray:
    """``clip((data - mean) * scale, -clip, clip)`` as float32, 0 where there is no data (:func:`nodata_mask`);
    ``scale`` is ``sign / sd`` in float32 (:attr:`Stats.scale`). Wider types (float64, 32- and 64-bit integers)
    take the offset in float64 first: cast to float32 before it, a volume of 1e8 ± 1 became a constant.

    >>> s = Stats(mean=100.0, std=10.0, voxels=1, method="full", clip=10.0, fill=0.0)
    >>> normalize(np.array([90.0, 130.0, 1e6, np.nan, 0.0]), s).tolist()
    [-1.0, 3.0, 10.0, 0.0, 0.0]
    """
    data = np.asarray(data)
    if exact_in_float32(data.dtype):
        out = np.asarray(data, dtype=np.float32) - np.float32(stats.mean)
    else:
        out = (np.asarray(data, dtype=np.float64) - stats.mean).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, inf * 0: no data, set to 0 below
        out *= stats.scale
    if stats.clip is not None:
        np.clip(out, -stats.clip, stats.clip, out=out)
    holes = nodata_mask(data, stats)
    if holes is not None:
        out[holes] = 0
    return out


def nodata_mask(data: np.ndarray, stats: Stats) -> np.ndarray | None:
    """Where ``data`` holds no data (bool, its shape): NaN, ±inf and the fill value ``stats.fill``; None where
    every voxel holds data (the common case: no array made)."""
    data = np.asarray(data)
    holes = None
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            holes = ~finite
    fill = fill_in_dtype(data.dtype, stats.fill)
    if fill is not None:
        same = data == fill
        if same.any():
            holes = same if holes is None else holes | same
    return holes
