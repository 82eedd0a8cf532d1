"""The CUDA device pipeline of ``segment``: the GPU never waits for the CPU.

Reader threads read raw windows (uint8 stays uint8: a quarter of float32's bytes on the bus) ahead of
the GPU; windows of one shape are batched; normalization, the network, the sigmoid and quantization
to the 0–255 scale run on the GPU; only each tile's uint8 core comes back, and writer threads store
it while the GPU runs the next batch. The arithmetic is the CPU path's, operation for operation
(float32 ``(x - mean) * (1 / sd)``, round-half-even of ``p * 255``), so tiled output equals a
whole-volume pass.

The tile size is chosen from the GPU's free memory: large cores cut the halo overhead (the share of
voxels the network sees twice) from 5.4x at 128 to 2.6x at 256 and 2.0x at 384.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

# Peak GPU memory per window voxel of the 4-level/base-8 network in inference (bytes; measured on an H200
# with benchmarks/segment_throughput.py, rounded up). Other architectures scale with base_features.
BYTES_PER_VOXEL = {"f32": 340, "bf16": 260, "fp16": 260}
TILE_CHOICES = (384, 320, 256, 192, 128, 64)
_TORCH_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.float32)}


def _window_voxels(shape, tile: int, halo: int, divisor: int) -> int:
    from .tiling import round_up

    t, h = round_up(tile, divisor), round_up(halo, divisor)
    return math.prod(min(round_up(s, divisor), t + 2 * h) for s in shape)


def choose_tile_size(shape, *, device, precision: str, halo: int, divisor: int, base_features: int = 8,
                     budget: float = 0.5) -> int:
    """The tile size for ``shape`` on ``device``: the largest core whose window fits twice into ``budget``
    of the GPU's memory (windows per batch: :meth:`CudaBackend.batch_size`).

    The tile size depends on the card, not on what is free at the moment, so a resumed run finds the
    same tiles."""
    _, free = torch.cuda.mem_get_info(torch.device(device))
    per_voxel = BYTES_PER_VOXEL[precision] * max(base_features, 1) / 8
    for tile in TILE_CHOICES:
        vox = _window_voxels(shape, tile, halo, divisor)
        if 2 * vox * per_voxel <= budget * free and vox * 2 * base_features < 2**31:  # 32-bit indexing
            return tile
    return TILE_CHOICES[-1]


def balanced_batch(windows: int, limit: int) -> int:
    """Windows per batch so that ``windows`` of one shape split into batches of one size (the fewest batches
    of at most ``limit``): every batch then has the same shape, and cuDNN tunes its kernels once, not again
    for a smaller last batch.

    Examples
    --------
    >>> balanced_batch(10, 8), balanced_batch(16, 8), balanced_batch(3, 8), balanced_batch(9, 4)
    (5, 8, 3, 3)
    """
    if windows < 1 or limit < 1:
        return max(1, limit)
    return -(-windows // -(-windows // limit))


class CudaBackend:
    """The model on one CUDA device. ``backend(x)`` runs a float32 batch (the plain backend call);
    ``backend.run_windows(windows, stats)`` is the streaming pipeline of ``segment`` (the seam of
    :mod:`.backends`): raw windows in, uint8 cores out."""

    def __init__(self, model, device: str = "cuda", precision: str = "f32", *, batch_limit: int = 8,
                 readers: int = 6):
        if not hasattr(model, "state_dict"):  # a ModelFile
            model = model.load()
        self.device = torch.device(device)
        # cuDNN tries its kernels for each new shape (seconds) and then runs the fastest: worth it for a large
        # volume; TOMOSEG_CUDNN_BENCHMARK=0 skips the trial (benchmarks/segment_throughput.py measures both)
        torch.backends.cudnn.benchmark = os.environ.get("TOMOSEG_CUDNN_BENCHMARK", "1") != "0"
        self.model = model.to(self.device).eval()
        self.dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.precision = precision
        self.batch_limit = batch_limit
        self.readers = readers           # the engine reads this many windows ahead, in threads
        self.name = f"torch-cuda-{precision}"

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.model(x).float()
        with torch.autocast("cuda", dtype=self.dtype):
            return self.model(x).float()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return torch.sigmoid(self._logits(t)).cpu().numpy()

    def batch_size(self, window_shape) -> int:
        """Windows per batch: as many as fit in 60 % of the free memory (at most ``batch_limit``), and fewer
        than cuDNN's 32-bit index limit."""
        free, _ = torch.cuda.mem_get_info(self.device)
        vox = math.prod(window_shape)
        n = int(max(1, min(self.batch_limit, 0.6 * free // (vox * BYTES_PER_VOXEL[self.precision]))))
        while n > 1 and n * vox * 16 >= 2**31:  # the decoder's widest tensor (2 x base channels) < 2^31 elements
            n -= 1
        return n

    def _cores(self, group, mean: float, inv_sd: float) -> list[np.ndarray]:
        """uint8 cores of a batch; on running out of GPU memory, the batch in halves (down to one window)."""
        try:
            return self._run(group, mean, inv_sd)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(group) == 1:
                from ..errors import TomosegError

                shape = tuple(s.stop - s.start for s in group[0][0].read)
                raise TomosegError(f"one window of {shape} voxels does not fit in the GPU's memory; "
                                   "pass a smaller --tile-size") from None
            half = len(group) // 2
            self.batch_limit = max(1, half)
            return self._cores(group[:half], mean, inv_sd) + self._cores(group[half:], mean, inv_sd)

    def _run(self, group, mean: float, inv_sd: float) -> list[np.ndarray]:
        with torch.inference_mode():
            x = torch.stack([torch.from_numpy(raw).to(self.device, non_blocking=True) for _, raw in group])
            x = (x.float() - np.float32(mean)) * np.float32(inv_sd)
            p = torch.sigmoid(self._logits(x[:, None]))
            q = torch.round(p.clamp_(0.0, 1.0).mul_(255.0)).to(torch.uint8)[:, 0]
            return [q[i][tile.core_in_read].cpu().numpy() for i, (tile, _) in enumerate(group)]

    def run_windows(self, windows, stats):
        """Batches of same-shape windows through the GPU; yields ``(tile, uint8 core)``. Where ``windows`` has a
        length (the engine's stream does), batches are balanced so that all have one size."""
        inv_sd = float(np.float32(1.0 / stats.std))
        total = len(windows) if hasattr(windows, "__len__") else 0
        group, shape, limit = [], None, 1
        for tile, raw in windows:
            raw = np.ascontiguousarray(raw)
            if not raw.flags.writeable:  # a read-only memory map: PyTorch wants memory it may write
                raw = raw.copy()
            if raw.dtype not in _TORCH_DTYPES:  # uint16, float64, ...: as the CPU path sees them
                raw = raw.astype(np.float32) if raw.dtype.kind == "f" else raw.astype(np.int32)
            if group and (raw.shape != shape or len(group) >= limit):
                yield from zip([t for t, _ in group], self._cores(group, stats.mean, inv_sd))
                group = []
            if not group:
                shape = raw.shape
                limit = self.batch_size(shape)
                if total:
                    limit = balanced_batch(total, limit)
            group.append((tile, raw))
        if group:
            yield from zip([t for t, _ in group], self._cores(group, stats.mean, inv_sd))
