"""Where the tiles are: cores shaped to the volume, each read with a halo of context.

No PyTorch here. Coordinates are in the volume padded at its far end to a
multiple of the model's divisor ``d = 2**(levels-1)``. Core starts, halos and
read regions are multiples of ``d``, so every max-pooling window of a tile lines
up with the same window of whole-volume inference: with a halo as large as the
receptive field, tiled output equals whole-volume output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TomosegError


@dataclass(frozen=True)
class TilingConfig:
    """Windows of at most ``(tile_size + 2 * halo)**3`` voxels, each core read with ``halo`` voxels of context.

    ``tile_size`` bounds the memory (one window's voxels), not the shape: the cores are shaped to fit the volume
    (see :func:`tile_grid`). Both are rounded up to multiples of the model's divisor. The halo trades speed for
    exactness: see docs/segment.md for measurements.
    """

    tile_size: int | None = None   # None: chosen for the backend (resolve_tiling): 224 OpenVINO, 160 PyTorch CPU,
    #                                 from the free memory on CUDA
    halo: int = 48   # covers the 4-level network's receptive field: tiled == whole-volume (docs/segment.md)
    pad_mode: str = "reflect"

    def __post_init__(self):
        if self.tile_size is not None and (not isinstance(self.tile_size, int) or self.tile_size < 8):
            raise TomosegError(f"tile size {self.tile_size!r} must be an integer of at least 8")
        if not isinstance(self.halo, int) or self.halo < 0:
            raise TomosegError(f"halo {self.halo!r} must be a non-negative integer")
        if self.pad_mode not in ("reflect", "edge", "constant"):
            raise TomosegError(f"pad mode {self.pad_mode!r} must be reflect, edge or constant")

    def window_voxels(self, divisor: int) -> int:
        """The most voxels one read window may hold."""
        return (round_up(self.tile_size or CPU_TILE_SIZE, divisor) + 2 * round_up(self.halo, divisor)) ** 3

    def chunk(self, divisor: int) -> int:
        """Edge of the output chunks: cores are unions of whole chunks, so no two tiles write one chunk.

        64, or 128 for tiles of 256 and more (a GPU's): Zarr's cost per chunk then halves the time to write
        a sparse probability map (benchmarks/results/segment_pipeline.md)."""
        tile = self.tile_size or CPU_TILE_SIZE
        return round_up(128 if tile >= 256 else min(64, tile), divisor)


@dataclass(frozen=True)
class Tile:
    index: int
    core: tuple[slice, slice, slice]   # where the result goes (in the volume, clipped)
    read: tuple[slice, slice, slice]   # what the model sees (in the padded volume)

    @property
    def core_in_read(self) -> tuple[slice, slice, slice]:
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read))

    @property
    def voxels(self) -> int:
        return int(np.prod([c.stop - c.start for c in self.core]))


# The CPU's default tile sizes (docs/segment.md, Tile size): about 3-4 GB at peak.
CPU_TILE_SIZE = 160        # PyTorch: windows of at most 256^3 voxels, 4.1 GB peak on 320x512x512 (cpu_memory)
OPENVINO_TILE_SIZE = 224   # OpenVINO: windows of at most 320^3, 3.0 GB; 1.5x as fast as 160 on 320x512x512


def resolve_tiling(config: TilingConfig, shape, divisor: int, *, device: str = "cpu", precision: str = "f32",
                   base_features: int = 8, backend: str = "torch") -> TilingConfig:
    """``config`` with its tile size fixed for ``backend`` ("openvino" or "torch") on ``device`` (from the free
    memory on CUDA) and rounded up to the divisor, so that output chunks always equal tile cores."""
    from dataclasses import replace

    size = config.tile_size
    if size is None:
        if str(device).startswith("cuda"):
            from .cuda_pipeline import choose_tile_size

            size = choose_tile_size(shape, device=device, precision=precision, halo=config.halo,
                                       divisor=divisor, base_features=base_features)
        else:
            size = OPENVINO_TILE_SIZE if backend == "openvino" else CPU_TILE_SIZE
    return replace(config, tile_size=round_up(size, divisor))


def round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def padded_shape(shape, divisor: int) -> tuple[int, int, int]:
    return tuple(round_up(s, divisor) for s in shape)


def _axis_options(lo: int, hi: int, p: int, grid: int, halo: int, step: int) -> list[tuple[int, list[int]]]:
    """Ways to cut the cores' range [lo, hi) of a padded axis of length p into cores on the chunk grid:
    (window length, core boundaries), for each number of cores the shortest window (in steps of ``step``)."""
    options: dict[int, tuple[int, list[int]]] = {}
    for window in range(step, p + step, step):
        window = min(window, p)
        bounds, a = [lo], lo
        while a < hi:
            b = hi if min(p, hi + halo) - max(0, a - halo) <= window else (max(0, a - halo) + window - halo) // grid * grid
            if b <= a:
                break
            bounds.append(b)
            a = b
        if a >= hi and len(bounds) - 1 not in options:
            options[len(bounds) - 1] = (window, bounds)
    return list(options.values())


def tile_grid(shape, config: TilingConfig, divisor: int, region=None) -> list[Tile]:
    """Tiles whose cores partition ``shape`` (or the box ``region`` of it), in z, y, x order.

    The cores lie on a grid of output chunks (:meth:`TilingConfig.chunk`) and are shaped to the volume:
    of all ways to cut each axis, the one that sends the fewest voxels through the network while a window
    holds at most :meth:`TilingConfig.window_voxels`. A volume that fits in one window is one pass; an axis
    shorter than its window is read whole (thin volumes are not padded to a cube). Every window has the same
    shape, so one compiled model serves every tile; windows at the volume's faces shift inwards instead of
    shrinking. Each core is read with ``halo`` voxels of context wherever the (padded) volume has them, and
    windows start at multiples of ``divisor``, so every max-pooling window lines up with whole-volume
    inference.

    Examples
    --------
    >>> tiles = tile_grid((100, 64, 64), TilingConfig(tile_size=64, halo=8), 8)
    >>> len(tiles), tiles[0].read[0]
    (1, slice(0, 104, None))
    >>> tiles = tile_grid((128, 512, 512), TilingConfig(tile_size=128, halo=48), 8)
    >>> len(tiles), tuple(r.stop - r.start for r in tiles[0].read)
    (6, (128, 240, 304))
    """
    halo = round_up(config.halo, divisor)
    grid = config.chunk(divisor)
    padded = padded_shape(shape, divisor)
    if region is None:
        region = tuple(slice(0, s) for s in shape)
    box = []
    for r, s, p in zip(region, shape, padded):
        lo, hi = max(0, r.start or 0), min(s, s if r.stop is None else r.stop)
        if hi <= lo:
            return []
        box.append((lo // grid * grid, p if hi >= s else min(p, round_up(hi, grid))))
    per_axis = [_axis_options(lo, hi, p, grid, halo, divisor) for (lo, hi), p in zip(box, padded)]
    budget = config.window_voxels(divisor)
    best = None
    for oz in per_axis[0]:
        for oy in per_axis[1]:
            for ox in per_axis[2]:
                window = oz[0] * oy[0] * ox[0]
                fits = window <= budget
                n = (len(oz[1]) - 1) * (len(oy[1]) - 1) * (len(ox[1]) - 1)
                key = (not fits, window * n if fits else window, window)  # ties: the smaller window (memory)
                if best is None or key < best[0]:
                    best = (key, (oz, oy, ox))
    choice = best[1]
    axes = []
    for (window, bounds), s, p in zip(choice, shape, padded):
        cuts = []
        for a, b in zip(bounds, bounds[1:]):
            start = min(max(a - halo, 0), p - window)
            cuts.append((slice(a, min(b, s)), slice(start, start + window)))
        axes.append(cuts)
    tiles = []
    for cz, rz in axes[0]:
        for cy, ry in axes[1]:
            for cx, rx in axes[2]:
                tiles.append(Tile(len(tiles), (cz, cy, cx), (rz, ry, rx)))
    return tiles


def read_padded(volume, region: tuple[slice, slice, slice], shape, mode: str = "reflect") -> np.ndarray:
    """Read ``region`` of the padded volume: the part inside ``shape`` from ``volume``, the rest padded
    at the far end as whole-volume inference pads it."""
    inner = tuple(slice(r.start, min(r.stop, s)) for r, s in zip(region, shape))
    data = np.asarray(volume[inner])
    pad = [(0, r.stop - i.stop) for r, i in zip(region, inner)]
    if any(p[1] for p in pad):
        data = np.pad(data, pad, mode=mode)
    return data


def pad_to_divisor(array: np.ndarray, divisor: int, mode: str = "reflect") -> np.ndarray:
    """Pad an in-memory volume at its far end to multiples of ``divisor`` (the whole-volume reference)."""
    pad = [(0, round_up(s, divisor) - s) for s in array.shape]
    return np.pad(array, pad, mode=mode) if any(p[1] for p in pad) else array
