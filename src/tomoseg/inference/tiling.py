"""Where the tiles are: a grid of cubic cores, each read with a halo of context.

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
    """Tile cores of ``tile_size`` voxels (a cube), each read with ``halo`` voxels of context on every side.

    Both are rounded up to multiples of the model's divisor. The halo trades speed for exactness:
    see docs/segment.md for measurements.
    """

    tile_size: int | None = None   # None: chosen for the device (resolve_tiling)
    halo: int = 48   # covers the 4-level network's receptive field: tiled == whole-volume (docs/segment.md)
    pad_mode: str = "reflect"

    def __post_init__(self):
        if self.tile_size is not None and (not isinstance(self.tile_size, int) or self.tile_size < 8):
            raise TomosegError(f"tile size {self.tile_size!r} must be an integer of at least 8")
        if not isinstance(self.halo, int) or self.halo < 0:
            raise TomosegError(f"halo {self.halo!r} must be a non-negative integer")
        if self.pad_mode not in ("reflect", "edge", "constant"):
            raise TomosegError(f"pad mode {self.pad_mode!r} must be reflect, edge or constant")


@dataclass(frozen=True)
class Tile:
    index: int
    core: tuple[slice, slice, slice]   # where the result goes (in the volume, clipped)
    read: tuple[slice, slice, slice]   # what the model sees (in the padded volume)

    @property
    def core_in_read(self) -> tuple[slice, slice, slice]:
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read))


CPU_TILE_SIZE = 128


def resolve_tiling(config: TilingConfig, shape, divisor: int, *, device: str = "cpu", precision: str = "f32",
                   base_features: int = 8) -> TilingConfig:
    """``config`` with its tile size fixed for ``device`` (from the free memory on CUDA) and rounded up to
    the divisor, so that output chunks always equal tile cores."""
    from dataclasses import replace

    size = config.tile_size
    if size is None:
        if str(device).startswith("cuda"):
            from .cuda_pipeline import choose_tile_size

            size, _ = choose_tile_size(shape, device=device, precision=precision, halo=config.halo,
                                       divisor=divisor, base_features=base_features)
        else:
            size = CPU_TILE_SIZE
    return replace(config, tile_size=round_up(size, divisor))


def round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def padded_shape(shape, divisor: int) -> tuple[int, int, int]:
    return tuple(round_up(s, divisor) for s in shape)


def tile_grid(shape, config: TilingConfig, divisor: int) -> list[Tile]:
    """All tiles covering ``shape``, in z, y, x order.

    Every read window has the same shape, ``tile_size + 2 * halo`` per axis (or the whole padded axis
    where that is smaller): windows at the volume's faces shift inwards instead of shrinking, so a
    compiled model serves every tile and each core keeps at least ``halo`` of context inside the volume.

    Examples
    --------
    >>> tiles = tile_grid((100, 64, 64), TilingConfig(tile_size=64, halo=8), 8)
    >>> len(tiles), tiles[1].core[0], tiles[1].read[0]
    (2, slice(64, 100, None), slice(24, 104, None))
    """
    size = round_up(config.tile_size or CPU_TILE_SIZE, divisor)
    halo = round_up(config.halo, divisor)
    window = size + 2 * halo
    padded = padded_shape(shape, divisor)
    starts = [range(0, s, size) for s in shape]

    def read_axis(start: int, p: int) -> slice:
        if p <= window:
            return slice(0, p)
        lo = min(max(start - halo, 0), p - window)
        return slice(lo, lo + window)

    tiles = []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                core = tuple(slice(a, min(a + size, s)) for a, s in zip((z, y, x), shape))
                read = tuple(read_axis(a, p) for a, p in zip((z, y, x), padded))
                tiles.append(Tile(len(tiles), core, read))
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
