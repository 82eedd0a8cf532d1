"""The statistics pass's binning on a PyTorch device (a GPU): the bins and the summary of
:class:`~.normalization._Binning` (``summarize``), computed where the network runs.

On an H200's host the statistics pass took 2.1-2.4 s of a 3.6-3.8 s ``segment`` run on the paper's
256x1024x1024 volume stored as float32, and 0.7-0.9 s as uint16 (0.18 s as uint8): binning a float value costs
a cast, a key and three ``np.bincount`` per voxel, and on that 16-core host the pass ran no faster than one
thread (benchmarks/results/stats_pass.md). Here each block the reader threads decompress goes to the device
as it is (a float32 block of 16 Mvox is 64 MiB on the bus), and the keys, counts and per-bin sums are taken
there; only the summary (8192 bins for float32) comes back.

What is computed is what NumPy computes: the same keys (the sign, the exponent and the top 4 bits of the
mantissa of each value's own bit pattern), the same voxels left out (NaN, ±inf, the fill value); integer
counts are exact, so 8- and 16-bit inputs get the statistics of the CPU path to the bit. Float sums are float64
on both, added in another order (the GPU's atomics): the mean and s.d. agree to about 1e-15 of the s.d.
8-bit blocks stay on the host (PyTorch's bincount there counts them about as fast as they cross the bus:
:func:`wants`), as do the types the device has no arithmetic for (unsigned 32- and 64-bit, byte-swapped
data): NumPy bins those.
"""

from __future__ import annotations

import numpy as np
import torch

from .normalization import MANTISSA_BITS, _Binning, _Summary

PIECE = 2**22  # voxels binned at once: the float64 copies of a piece take 32 MiB of GPU memory each

_SIGNED = {np.dtype(np.uint16): np.int16, np.dtype(np.int16): np.int16}
_FLOATS = {16: (np.float16, torch.int16), 32: (np.float32, torch.int32), 0: (np.float64, torch.int64)}


def wants(binning: _Binning) -> bool:
    """Whether a block of ``binning``'s dtype is binned on the device: 16-bit integers, float16, float32 and
    float64 in native byte order; not 8-bit values (see the module's notes) nor unsigned 32/64-bit integers."""
    dtype = binning.dtype
    if not dtype.isnative:
        return False
    if binning.exact:
        return dtype.itemsize == 2
    return dtype == np.dtype(np.float64) if binning.bits == 0 else True


def summarize_on(device, resident=None):
    """``summarize(binning, data, region)`` for :func:`~.normalization.volume_stats`: on ``device`` where
    :func:`wants` says so, else NumPy's ``binning.summarize(data)``. ``resident``: the
    :class:`~.device_volume.DeviceVolume` the same pass fills (its ``visit`` runs before this), whose copy of the
    block is binned instead of copying the block to the device again."""
    device = torch.device(device)

    def summarize(binning: _Binning, data, region=None) -> _Summary:
        data = np.asarray(data)
        if not wants(binning):
            return binning.summarize(data)
        with torch.inference_mode():
            if resident is not None and region is not None:
                x = resident.tensor[tuple(region)].reshape(-1)  # uint16 kept as int32, float16 as float32
                if binning.bits == 16:
                    x = x.to(torch.float16)  # exact: the values were float16
            else:
                kind = _SIGNED[binning.dtype] if binning.exact else _FLOATS[binning.bits][0]
                flat = np.ascontiguousarray(data, dtype=None if binning.exact else kind).reshape(-1)
                if not flat.flags.writeable:  # a memory-mapped file's block: PyTorch takes only writable memory
                    flat = flat.copy()
                x = torch.from_numpy(flat.view(kind) if binning.exact else flat).to(device)
            summary = _counts(binning, x) if binning.exact else _moments(binning, x)
        summary.voxels = int(data.size)
        return summary

    return summarize


def _counts(binning: _Binning, x: torch.Tensor) -> _Summary:
    """Exact value counts of a 16-bit block on the device (``binning.bins`` values from ``binning.offset``):
    ``x`` its values as int16 (the bits of uint16 values; torch has no uint16 arithmetic) or int32."""
    x = x.to(torch.int32)
    x = x & 0xFFFF if binning.offset == 0 else x - binning.offset
    counts = torch.bincount(x, minlength=binning.bins)
    return _Summary(counts.cpu().numpy().astype(np.int64))


def _moments(binning: _Binning, flat: torch.Tensor) -> _Summary:
    """Counts, means and squared deviations per bin of a float block on the device, a piece at a time."""
    _, int_type = _FLOATS[binning.bits]
    total = _Summary(np.zeros(binning.bins, np.int64), np.zeros(binning.bins), np.zeros(binning.bins))
    bits = binning.bits or 64
    shift, low = MANTISSA_BITS[bits] - 4, (1 << (bits - MANTISSA_BITS[bits] + 4)) - 1
    for start in range(0, flat.numel(), PIECE):
        piece = flat[start:start + PIECE]
        keep = torch.isfinite(piece)
        if binning.fill is not None:
            keep &= piece != float(binning.fill)
        kept = int(keep.sum())
        nodata = piece.numel() - kept
        if nodata:
            piece = piece[keep]
        if kept == 0:
            total = total.add(_Summary(np.zeros(binning.bins, np.int64), np.zeros(binning.bins),
                                       np.zeros(binning.bins), nodata))
            continue
        # the key of _bin_keys: the top bits of the unsigned bit pattern (arithmetic shift, then the sign's
        # copies masked off)
        key = ((piece.view(int_type).to(torch.int64) >> shift) & low)
        x = piece.double()
        ref = x.mean()
        d = x - ref
        counts = torch.bincount(key, minlength=binning.bins)
        sums = torch.bincount(key, weights=d, minlength=binning.bins)
        squares = torch.bincount(key, weights=d * d, minlength=binning.bins)
        total = total.add(_Summary.of_sums(counts.cpu().numpy(), sums.cpu().numpy(), squares.cpu().numpy(),
                                           float(ref), nodata))
    return total
