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
from collections import deque
from concurrent.futures import ThreadPoolExecutor

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
                     budget: float = 0.5) -> tuple[int, int]:
    """(tile size, windows per batch) for ``shape`` on ``device``: the largest core whose window fits
    twice into ``budget`` of the GPU's memory, and as many windows per batch as fit.

    The tile size depends on the card, not on what is free at the moment, so a resumed run finds the
    same tiles."""
    _, free = torch.cuda.mem_get_info(torch.device(device))
    per_voxel = BYTES_PER_VOXEL[precision] * max(base_features, 1) / 8
    for tile in TILE_CHOICES:
        vox = _window_voxels(shape, tile, halo, divisor)
        if 2 * vox * per_voxel <= budget * free and 8 * vox * base_features < 2**31:
            batch = int(max(1, min(8, budget * free // (vox * per_voxel))))
            while batch > 1 and batch * vox * base_features >= 2**31:  # cuDNN's 32-bit indexing
                batch -= 1
            return tile, batch
    return TILE_CHOICES[-1], 1


class CudaBackend:
    """The model on one CUDA device. ``backend(x)`` runs a float32 batch (the plain backend call);
    ``backend.run_tiles(...)`` runs the streaming pipeline."""

    def __init__(self, model: torch.nn.Module, device: str = "cuda", precision: str = "f32", *,
                 batch_limit: int = 8, readers: int = 4, writers: int = 4):
        self.device = torch.device(device)
        torch.backends.cudnn.benchmark = True
        self.model = model.to(self.device).eval()
        self.dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.precision = precision
        self.batch, self.batch_limit, self.readers, self.writers = 1, batch_limit, readers, writers
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

    def _quantized(self, raw: list[np.ndarray], mean: float, inv_sd: float) -> torch.Tensor:
        x = torch.stack([torch.from_numpy(r).to(self.device, non_blocking=True) for r in raw])
        x = (x.float() - np.float32(mean)) * np.float32(inv_sd)
        p = torch.sigmoid(self._logits(x[:, None]))
        return torch.round(p.clamp_(0.0, 1.0).mul_(255.0)).to(torch.uint8)[:, 0]

    def run_tiles(self, tiles, read, write, stats, progress=None) -> int:
        """Compute ``tiles``: ``read(tile)`` gives the raw window (NumPy), ``write(tile, core)`` stores the
        uint8 core; ``stats`` holds the normalization's mean and std."""
        inv_sd = float(np.float32(1.0 / stats.std))
        if tiles:
            shape = tuple(s.stop - s.start for s in tiles[0].read)
            free, _ = torch.cuda.mem_get_info(self.device)
            per_window = math.prod(shape) * BYTES_PER_VOXEL[self.precision]
            self.batch = int(max(1, min(self.batch_limit, 0.6 * free // per_window)))
            while self.batch > 1 and self.batch * math.prod(shape) * 8 >= 2**31:  # cuDNN's 32-bit indexing
                self.batch -= 1

        def read_raw(tile):
            data = np.ascontiguousarray(read(tile))
            if data.dtype not in _TORCH_DTYPES:  # uint16, float64, ...: as the CPU path sees them
                data = data.astype(np.float32) if data.dtype.kind == "f" else data.astype(np.int32)
            return data

        depth = max(2 * self.batch, self.readers)
        queue, todo = deque(), iter(tiles)
        count = 0
        with ThreadPoolExecutor(self.readers) as readers, ThreadPoolExecutor(self.writers) as writers:
            def fill():
                while len(queue) < depth:
                    tile = next(todo, None)
                    if tile is None:
                        return
                    queue.append((tile, readers.submit(read_raw, tile)))

            fill()
            writes = deque()
            while queue:
                group = [queue.popleft()]
                shape = tuple(s.stop - s.start for s in group[0][0].read)
                while (queue and len(group) < self.batch
                       and tuple(s.stop - s.start for s in queue[0][0].read) == shape):
                    group.append(queue.popleft())
                raw = [f.result() for _, f in group]
                fill()
                with torch.inference_mode():
                    q = self._quantized(raw, stats.mean, inv_sd)
                    cores = [q[i][t.core_in_read] for i, (t, _) in enumerate(group)]
                    host = [c.to("cpu", non_blocking=False).numpy() for c in cores]
                for (tile, _), core in zip(group, host):
                    writes.append(writers.submit(write, tile, core))
                    count += 1
                while len(writes) > 2 * self.writers:
                    writes.popleft().result()
                if progress is not None:
                    progress.update(int(sum(c.size for c in host)))
            for w in writes:
                w.result()
        return count
