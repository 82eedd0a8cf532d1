"""The volume held in GPU memory for ``segment``'s windows: filled by the statistics pass as it reads, so that
the tiles stage slices its windows on the GPU instead of copying each one from the host.

The CUDA backend asked the statistics pass for a copy of the volume in host memory
(:class:`~tomoseg.io.blocks.BlockCopy`): on an H200's host the tiles stage of ``segment`` without the network
then took 0.13 s instead of 0.29 s reading the file (256x1024x1024 uint8). Each window still went through a
pinned host buffer to the GPU, about 1.2x the volume's bytes at tile 384 (the halos), and a float32 volume's
tiles stage took 0.75-0.95 s against 0.58 s for uint8 (benchmarks/results/segment_throughput.md). Here each
block the pass reads is copied to the GPU once, in the type the network's input is made from (the CUDA
pipeline's: uint16 as int32, float16 as float32, the others as they are), and the windows are views of it.

Windows that reach past the volume (a volume whose size is not a multiple of the network's divisor) are padded
as :func:`~.tiling.read_padded` pads them, on the host (a few windows at the far faces). Where a window holds no
data (NaN, ±inf, the fill value), the CUDA pipeline finds it on the GPU (:func:`holes`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .normalization import exact_in_float32
from .tiling import read_padded

DEVICE_SHARE = 4  # the volume may take at most this fraction (1/4) of the GPU's memory: the windows need the rest
FREE_SHARE = 3    # ... and a third of what is free now (another process on the same GPU holds the rest)

# how a raw window of each type reaches the network on the GPU (cuda_pipeline.CudaBackend.run_windows)
_STORED = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8, np.dtype(np.int16): torch.int16,
           np.dtype(np.uint16): torch.int32, np.dtype(np.float16): torch.float32, np.dtype(np.float32): torch.float32,
           np.dtype(np.bool_): torch.int32}
_HOST = {torch.uint8: np.uint8, torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32,
         torch.float32: np.float32}


def stored_type(dtype) -> torch.dtype | None:
    """The type a volume of ``dtype`` is kept in on the GPU; None where the CUDA pipeline normalizes it on the
    host first (types float32 does not hold exactly: float64, 32- and 64-bit integers)."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if not exact_in_float32(dtype):
        return None
    return _STORED.get(dtype)


@dataclass(frozen=True)
class DeviceWindow:
    """A window of a :class:`DeviceVolume`: ``tensor`` on the GPU, ``dtype`` the volume's (what the
    normalization and the fill value are taken in)."""

    tensor: torch.Tensor
    dtype: np.dtype

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)


def fits(nbytes: int, free: int, total: int) -> bool:
    """Whether a volume of ``nbytes`` is kept on a GPU with ``free`` of ``total`` bytes: at most
    1/:data:`DEVICE_SHARE` of its memory (one window of the largest tile takes up to half: cuda_pipeline's
    ``choose_tile_size``) and 1/:data:`FREE_SHARE` of what is free (memory other processes hold is not ours).

    >>> fits(20 << 30, 79 << 30, 80 << 30), fits(21 << 30, 79 << 30, 80 << 30), fits(4 << 30, 9 << 30, 80 << 30)
    (True, False, False)
    """
    return nbytes <= total // DEVICE_SHARE and nbytes <= free // FREE_SHARE


class DeviceVolume:
    """The volume on ``device``, assembled from the blocks a pass reads (``visit`` of
    :func:`~.normalization.volume_stats`, on its reader threads; blocks must not overlap). ``complete`` once
    every voxel has arrived."""

    def __init__(self, shape, dtype, device):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.device = torch.device(device)
        self.tensor = torch.empty(self.shape, dtype=stored_type(self.dtype), device=self.device)
        self._voxels = 0
        self._lock = threading.Lock()

    @classmethod
    def fitting(cls, shape, dtype, device) -> DeviceVolume | None:
        """A volume for ``device`` where its type suits (:func:`stored_type`) and it :func:`fits` the GPU's memory;
        else None (the host copy or the file serves the windows)."""
        kind = stored_type(dtype)
        if kind is None:
            return None
        device = torch.device(device)
        nbytes = math.prod(int(s) for s in shape) * torch.empty((), dtype=kind).element_size()
        if device.type == "cuda" and not fits(nbytes, *torch.cuda.mem_get_info(device)):
            return None
        try:
            return cls(shape, dtype, device)
        except torch.cuda.OutOfMemoryError:  # another process holds the memory: the host path instead
            torch.cuda.empty_cache()
            return None

    def __call__(self, block, data) -> None:
        data = np.asarray(data)
        host = _HOST[self.tensor.dtype]
        if data.dtype != host or not data.flags.c_contiguous or not data.flags.writeable:
            # uint16 -> int32, float16 -> float32: exact; a read-only block (a memory-mapped file) copied, as
            # PyTorch takes only memory it may write
            data = np.array(data, dtype=host, order="C")
        self.tensor[block].copy_(torch.from_numpy(data))
        with self._lock:
            self._voxels += int(data.size)

    @property
    def complete(self) -> bool:
        return self._voxels == math.prod(self.shape)

    def window(self, region, mode: str = "reflect") -> DeviceWindow:
        """The window ``region`` of the volume padded at its far faces as :func:`~.tiling.read_padded` pads it
        (``mode``): a view where it lies inside the volume."""
        if all(r.stop <= s for r, s in zip(region, self.shape)):
            return DeviceWindow(self.tensor[tuple(region)], self.dtype)
        # past the far faces of a volume not a multiple of the divisor: padded on the host, by read_padded itself
        host = read_padded(_OnHost(self.tensor), region, self.shape, mode)
        return DeviceWindow(torch.from_numpy(host).to(self.device), self.dtype)


class _OnHost:
    """A tensor read (a region of it) to the host, as :func:`~.tiling.read_padded` reads a volume."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __getitem__(self, region) -> np.ndarray:
        return self.tensor[region].cpu().numpy()


def holes(raw: torch.Tensor, fill) -> torch.Tensor | None:
    """Where a batch, window or core ``raw`` holds no data: NaN and ±inf (a floating type) and ``fill`` (already in
    the volume's type, :func:`~.normalization.fill_in_dtype`; None: none), as
    :func:`~.normalization.nodata_mask` finds them on the host; None where its type holds neither (integers without
    a fill value). The CUDA pipeline's one test for no data: the input normalized to 0 there, the output 0."""
    found = ~torch.isfinite(raw) if raw.is_floating_point() else None
    if fill is not None:
        same = raw == fill
        found = same if found is None else found | same
    return found
