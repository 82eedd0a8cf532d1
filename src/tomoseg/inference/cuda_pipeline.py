"""The CUDA device pipeline of ``segment``: the GPU never waits for the CPU.

Reader threads read raw windows (uint8 stays uint8: a quarter of float32's bytes on the bus) ahead of
the GPU; windows of one shape are batched; normalization, the network, the sigmoid and quantization
to the 0–255 scale run on the GPU; only each tile's uint8 core comes back, and writer threads store
it while the GPU runs the next batch. The arithmetic is the CPU path's, operation for operation
(float32 ``clip((x - mean) * (sign / sd))``, 0 where no data, round-half-even of ``p * 255``), so tiled output equals a
whole-volume pass.

The tile size is chosen from the GPU's free memory, up to 384: larger cores cut the halo overhead (the
share of voxels the network sees twice). With the BatchNorms folded into the convolutions
(:func:`~tomoseg.model.inference_copy`) the network no longer slows on large windows: on an H100 and the
paper's 256x1024x1024 volume (benchmarks/results/segment_gpu_tiles.md) tile 256 moved the volume through
the GPU at 321 Mvox/s (1.74x halo overhead) and tile 384 at 428 (1.20x); the model as trained did 160 and
152, slowing per voxel on the larger windows.
"""

from __future__ import annotations

import math
import os
from collections import deque

import numpy as np
import torch

from ..errors import TomosegError
from ..model import inference_copy
from .backends import NAN_OUTPUT
from .device_stats import summarize_on
from .device_volume import DeviceVolume, DeviceWindow, holes
from .normalization import exact_in_float32, fill_in_dtype, normalize

# Peak GPU memory per window voxel of the 4-level/base-8 network in inference (bytes; measured on an H200
# with benchmarks/segment_throughput.py, rounded up). Other architectures scale with base_features.
BYTES_PER_VOXEL = {"f32": 340, "bf16": 260, "fp16": 260}
TILE_CHOICES = (384, 256, 192, 128, 64)  # largest first; 512 cuts windows past 32-bit indexing on 256x1024x1024
_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8, np.dtype(np.int16): torch.int16,
                 np.dtype(np.int32): torch.int32, np.dtype(np.float32): torch.float32}


def _window_voxels(shape, tile: int, halo: int, divisor: int) -> int:
    from .tiling import round_up

    t, h = round_up(tile, divisor), round_up(halo, divisor)
    return math.prod(min(round_up(s, divisor), t + 2 * h) for s in shape)


def choose_tile_size(shape, *, device, precision: str, halo: int, divisor: int, base_features: int = 8,
                     budget: float = 0.5) -> int:
    """The tile size for ``shape`` on ``device``: the largest core whose window fits into ``budget`` of the
    GPU's memory (windows per batch: :meth:`CudaBackend.batch_size`). One window, not two: while the next
    batch is queued, the last one's activations are already freed (on an H100, tile 384 with the next window
    queued peaked at 24.5 GiB, 305 bytes per window voxel; benchmarks/results/segment_gpu_tiles.md).

    The tile size depends on the card (its total memory), not on what is free at the moment, so a resumed
    run finds the same tiles."""
    _, total = torch.cuda.mem_get_info(torch.device(device))
    per_voxel = BYTES_PER_VOXEL[precision] * max(base_features, 1) / 8
    for tile in TILE_CHOICES:
        vox = _window_voxels(shape, tile, halo, divisor)
        if vox * per_voxel <= budget * total and vox * 2 * base_features < 2**31:  # 32-bit indexing
            return tile
    return TILE_CHOICES[-1]


def balanced_batch(windows: int, limit: int) -> int:
    """Windows per batch so that ``windows`` of one shape split into batches of one size (the fewest batches
    of at most ``limit``): every batch then has the same shape, and cuDNN tunes its kernels once, not again
    for a smaller last batch.

    Examples
    --------
    >>> balanced_batch(10, 8), balanced_batch(16, 8), balanced_batch(3, 8), balanced_batch(9, 4), balanced_batch(10, 3)
    (5, 8, 3, 3, 2)
    """
    if windows < 1 or limit < 1:
        return max(1, limit)
    exact = next((b for b in range(min(limit, windows), 0, -1) if windows % b == 0), 1)
    if 2 * exact >= limit:  # batches of one size, at worst half as large as they may be
        return exact
    return -(-windows // -(-windows // limit))


def device_terms(stats, dtype) -> tuple:
    """``(mean, scale, clip, fill)`` for :func:`normalize_on_device` on raw windows of ``dtype``: those of
    :func:`~.normalization.normalize`. Types it normalizes in float64 on the host (not exact in float32) come
    to the device normalized: the identity, clipped again (a no-op), no fill to look for."""
    if not exact_in_float32(dtype):
        return 0.0, np.float32(1.0), stats.clip, None
    fill = fill_in_dtype(dtype, stats.fill)
    return np.float32(stats.mean), stats.scale, stats.clip, None if fill is None else float(fill)


def normalize_on_device(x: torch.Tensor, mean, scale, clip, fill) -> torch.Tensor:
    """:func:`~.normalization.normalize` on a batch of raw windows (uint8, int8, int16, int32 or float32):
    ``clip((x - mean) * scale)`` in float32, 0 where ``x`` is NaN, ±inf or ``fill``."""
    missing = holes(x, fill)
    x = (x.float() - mean) * scale
    if clip is not None:
        x = x.clamp_(-clip, clip)
    return x if missing is None else x.masked_fill_(missing, 0.0)


class CudaBackend:
    """The model on one CUDA device. ``backend(x)`` runs a float32 batch (the plain backend call);
    ``backend.run_windows(windows, stats)`` is the streaming pipeline of ``segment`` (the seam of
    :mod:`.backends`): raw windows in, uint8 cores out."""

    def __init__(self, model, device: str = "cuda", precision: str = "f32", *, batch_limit: int = 8,
                 readers: int = 6, channels_last: bool | None = None, rewrite: bool = True,
                 resident_input: bool = True, device_stats: bool = True, device_input: bool = True):
        if not hasattr(model, "state_dict"):  # a ModelFile
            model = model.load()
        self.device = torch.device(device)
        # cuDNN's autotuning (trying its kernels on each new window shape, then running the fastest) is off:
        # on an H200 it cost about 5 s per run and gained nothing per window (111.9 Mvox/s tuned, 113.0 not,
        # benchmarks/results/segment_throughput.md). TOMOSEG_CUDNN_BENCHMARK=1 turns it on for other cards.
        # The flag is PyTorch's, process-wide: it is set only around this backend's forward passes (_logits), so
        # that a training run in the same process (its cudnn_benchmark setting) or other code keeps its own.
        self.cudnn_benchmark = os.environ.get("TOMOSEG_CUDNN_BENCHMARK", "0") == "1"
        # BatchNorms folded into the convolutions: one pass over the activations less per layer (2x the GPU side
        # on an H100). The memory order: channels-last where it keeps bf16/fp16 3D convolutions on cuDNN; f32 ran
        # as fast in either order (memory_order.channels_last_pays; benchmarks/results/segment_gpu_tiles.md).
        # The decoder rewritten (inference_graph: a quarter fewer multiply-adds, no up-sampled or concatenated
        # tensors): on an H200 the pipeline from memory ran at 531 Mvox/s of volume against 449 for the plain graph
        # at tile 384 (370 against 343 at 256), at about half the GPU memory (13.2 against 24.5 GiB);
        # benchmarks/results/segment_gpu_tiles.md. Within one level of the plain graph (the gpu tests).
        self.model = inference_copy(model, self.device, channels_last=channels_last, precision=precision,
                                    rewrite=rewrite)
        self.dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.precision = precision
        self.batch_limit = batch_limit
        self.readers = readers           # the engine reads this many windows ahead, in threads
        # Windows sliced from a copy of the volume the statistics pass keeps in memory (engine.resident_copy, where
        # the volume takes at most 1/8 of the memory and 16 GiB): no file read or decompression during the tiles.
        # On an H200's host (16 cores, segment without the network, 256x1024x1024 Zarr) the tiles stage took 0.13 s
        # from the copy against 0.29 s reading the file with 6 threads (0.40 with 12), for 0.03 s more in the
        # statistics pass (benchmarks/results/segment_pipeline.md).
        self.resident_input = resident_input
        # ... and that copy kept in this GPU's memory where it takes at most a quarter of it (device_volume): the
        # windows are views of it, no window crosses the bus (not yet measured on a GPU).
        self.device_input = device_input
        # The statistics pass bins 16-bit and float blocks on this GPU (device_stats: on an H200's host that pass
        # took 2.1-2.4 s of a float32 run's 3.6-3.8 s on the paper's volume, binned by NumPy).
        self.device_stats = device_stats
        self.name = f"torch-cuda-{precision}"

    def resident_on_device(self, shape, dtype) -> DeviceVolume | None:
        """The copy of the volume the statistics pass fills, on this GPU (see ``device_input``), where it fits."""
        return DeviceVolume.fitting(shape, dtype, self.device) if self.device_input else None

    def summarize_for(self, copy=None):
        """The statistics pass's binning on this GPU (:func:`.device_stats.summarize_on`), reading its blocks from
        ``copy`` where that is the volume on this GPU; None where ``device_stats`` is off (NumPy bins)."""
        if not self.device_stats:
            return None
        return summarize_on(self.device, copy if isinstance(copy, DeviceVolume) else None)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            if self.dtype is None:
                return self.model(x).float()
            with torch.autocast("cuda", dtype=self.dtype):
                return self.model(x).float()
        finally:
            torch.backends.cudnn.benchmark = before

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return torch.sigmoid(self._logits(t)).cpu().numpy()

    def batch_size(self, window_shape) -> int:
        """Windows per batch: as many as fit in 60 % of the free memory (at most ``batch_limit``), and fewer
        than cuDNN's 32-bit index limit. What PyTorch caches but no tensor uses (the statistics pass's pieces,
        an earlier window shape's activations) is given back first, so that it counts as free."""
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(self.device)
        vox = math.prod(window_shape)
        n = int(max(1, min(self.batch_limit, 0.6 * free // (vox * BYTES_PER_VOXEL[self.precision]))))
        while n > 1 and n * vox * 16 >= 2**31:  # the decoder's widest tensor (2 x base channels) < 2^31 elements
            n -= 1
        return n

    def _launch(self, group, terms: tuple) -> list:
        """Start a batch on the GPU (see :meth:`_start`); on running out of GPU memory, the batch in halves (down
        to one window)."""
        try:
            return [self._start(group, terms)]
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(group) == 1:
                shape = tuple(s.stop - s.start for s in group[0][0].read)
                raise TomosegError(f"one window of {shape} voxels does not fit in the GPU's memory; "
                                   "pass a smaller --tile-size") from None
            half = len(group) // 2
            self.batch_limit = max(1, half)
            return self._launch(group[:half], terms) + self._launch(group[half:], terms)

    def _start(self, group, terms: tuple):
        """Queue one batch on the GPU and return at once: ``(tiles, host cores, done event)``. ``terms``:
        ``(mean, scale, clip, fill)`` of :func:`device_terms`, the normalization of the CPU path
        (:func:`~.normalization.normalize`) operation for operation.

        The raw windows go through one pinned buffer to the GPU without blocking; the uint8 cores come back
        into pinned buffers, also without blocking, so the next batch is queued while this one runs."""
        pin = self.device.type == "cuda"
        raw0 = group[0][1]
        on_device = isinstance(raw0, DeviceWindow)  # views of the volume kept on this GPU
        if not on_device:
            host = torch.empty((len(group),) + raw0.shape, dtype=_TORCH_DTYPES[raw0.dtype], pin_memory=pin)
            for i, (_, raw) in enumerate(group):
                np.copyto(host[i].numpy(), raw)
        with torch.inference_mode():
            if on_device:
                x = torch.stack([raw.tensor for _, raw in group])
            else:
                x = host.to(self.device, non_blocking=True)
            x = normalize_on_device(x, *terms)
            p = torch.sigmoid(self._logits(x[:, None]))
            # NaN (an fp16 overflow, a model that diverged) would be cast to 0, an empty map without a word: a flag
            # comes back with the cores, checked when they arrive (one reduction on the GPU, no extra wait)
            nan = torch.empty((), dtype=torch.bool, pin_memory=pin).copy_(torch.isnan(p).any(), non_blocking=pin)
            q = torch.round(p.clamp_(0.0, 1.0).mul_(255.0)).to(torch.uint8)[:, 0]
            cores = []
            for i, (tile, raw) in enumerate(group):
                core = q[i][tile.core_in_read]
                if on_device:  # probability 0 where the input holds no data (the host path: engine.core_as_written)
                    missing = holes(raw.tensor[tile.core_in_read], terms[3])
                    if missing is not None:
                        core = core.masked_fill(missing, 0)
                cores.append(torch.empty(core.shape, dtype=torch.uint8, pin_memory=pin).copy_(core, non_blocking=pin))
        done = None
        if pin:
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(self.device))
        return [tile for tile, _ in group], cores, done, nan

    @staticmethod
    def _finish(pending):
        tiles, cores, done, nan = pending
        if done is not None:
            done.synchronize()  # waits without holding the GIL: readers and writers go on
        if bool(nan):
            raise TomosegError(NAN_OUTPUT)
        return zip(tiles, (c.numpy() for c in cores))

    def prepare(self, window) -> None:
        """cuDNN's libraries loaded and its kernels chosen once, on one small window (0.19 s of a fresh process
        on an H100, benchmarks/results/segment_start.md), so the first real batch does not wait for them.
        Runs on another thread while ``segment`` reads (``backends.prepare_meanwhile``)."""
        d = self.model.config.divisor
        x = torch.zeros((1, 1) + tuple(min(int(w), 2 * d) for w in window), device=self.device)
        with torch.inference_mode():
            self._logits(x)
        if self.device.type == "cuda":  # (the CPU device: the tests of this pipeline's logic)
            torch.cuda.synchronize(self.device)

    def run_windows(self, windows, stats):
        """Batches of same-shape windows through the GPU; yields ``(tile, uint8 core)``, one batch behind the
        one the GPU is running. Where ``windows`` has a length (the engine's stream does), batches are balanced
        so that all have one size."""
        total = len(windows) if hasattr(windows, "__len__") else 0
        group, shape, limit = [], None, 1
        in_flight: deque = deque()
        terms = None
        for tile, raw in windows:
            if terms is None:
                terms = device_terms(stats, raw.dtype)
            if isinstance(raw, DeviceWindow):  # on this GPU already, in the types below (device_volume)
                pass
            elif not exact_in_float32(raw.dtype):  # float64, 32- and 64-bit integers: normalized here, in float64
                raw = normalize(raw, stats)        # as the CPU path does; the GPU keeps it (clipping again: a no-op)
            elif raw.dtype not in _TORCH_DTYPES:  # uint16, float16, bool: as the CPU path sees them
                raw = raw.astype(np.float32) if raw.dtype.kind == "f" else raw.astype(np.int32)
            if group and (raw.shape != shape or len(group) >= limit):
                in_flight.extend(self._launch(group, terms))
                group = []
                while len(in_flight) > 1:
                    yield from self._finish(in_flight.popleft())
            if not group:
                shape = raw.shape
                limit = self.batch_limit_for(shape, total)
            group.append((tile, raw))
        if group:
            in_flight.extend(self._launch(group, terms))
        while in_flight:
            yield from self._finish(in_flight.popleft())

    def batch_limit_for(self, shape, total: int) -> int:
        limit = self.batch_size(shape)
        return balanced_batch(total, limit) if total else limit
