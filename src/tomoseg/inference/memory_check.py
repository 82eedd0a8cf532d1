"""Whether ``segment``'s windows fit in memory: checked before the work, and said in one line where an allocation
fails anyway.

The peak of a CPU run is one window's network (docs/segment.md, Memory): with OpenVINO about 0.085 GB per
million window voxels plus 0.17 GB (3.0 GB at the default windows of up to 320³), with PyTorch about 0.25 GB
per million (4.1 GB at its default 256³, glibc keeping freed memory: :mod:`tomoseg.cpu_memory`), for the
paper's network (8 base features; activations grow with the features). Where that is more than the memory
this process may take (:func:`tomoseg.host_memory.memory_headroom`: psutil's available memory, a cgroup's
limit, ``ulimit -v``), the run is refused before anything is written, naming a ``--tile-size`` that fits.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from ..errors import TomosegError
from .tiling import TilingConfig, padded_shape, round_up

# peak bytes of a CPU segment run: (per window voxel, fixed), measured with the paper's network (8 features)
PEAK = {"openvino": (0.085e3, 0.17e9), "torch": (0.25e3, 0.2e9)}
BASE_FEATURES = 8
# under an address-space limit (ulimit -v) a segment process maps more than its windows touch (Python, the
# libraries, OpenVINO's pools, threads' stacks, malloc's arenas): under `prlimit --as=2.5e9` OpenVINO's tile 128
# (1.1 GB at the peak) ran and 152 (1.5 GB) failed, whether 0.2 or 0.6 GB was mapped at the check
ADDRESS_SPACE_BASE = int(1.3e9)

_OUT_OF_MEMORY = re.compile(r"failed to allocate|can't allocate memory|cannot allocate memory|out of memory|"
                            r"bad_alloc|not enough memory", re.I)


def window_peak(backend: str, window_voxels: int, base_features: int = BASE_FEATURES) -> int:
    """The peak bytes of a CPU run whose windows hold ``window_voxels`` (the module's figures)."""
    per_voxel, fixed = PEAK.get(backend, PEAK["torch"])
    return int(fixed + per_voxel * window_voxels * max(1, base_features) / BASE_FEATURES)


def _window_voxels(shape, tiling: TilingConfig, divisor: int) -> int:
    """The most voxels a window of ``tiling`` holds on ``shape``: the budget, or the (padded) volume if smaller."""
    return int(min(tiling.window_voxels(divisor), np.prod(padded_shape(shape, divisor), dtype=np.int64)))


def fitting_tile(shape, tiling: TilingConfig, divisor: int, backend: str, base_features: int,
                 room: int) -> tuple[int, int] | None:
    """The largest tile size below ``tiling``'s (multiples of ``divisor``, at least 8) whose run peaks within
    ``room`` bytes, with that peak; None where none does."""
    size = round_up(tiling.tile_size, divisor) - divisor
    while size >= max(8, divisor):
        peak = window_peak(backend, _window_voxels(shape, replace(tiling, tile_size=size), divisor), base_features)
        if peak <= room:
            return size, peak
        size -= divisor
    return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _advice(shape, tiling, divisor, backend, base_features, room: int, *, again: bool) -> str:
    fit = fitting_tile(shape, tiling, divisor, backend, base_features, room)
    if fit is None:
        return (f"not even --tile-size {max(8, divisor)} fits; free memory or run on a machine (or job) with more "
                "memory")
    rerun = " and --overwrite (a resume keeps the tile size)" if again else ""
    return f"use --tile-size {fit[0]} (about {_gb(fit[1])} at its peak){rerun}, or free memory"


def check_memory(shape, tiling: TilingConfig, divisor: int, backend: str, base_features: int = BASE_FEATURES,
                 headroom: tuple[int, str] | None = None) -> None:
    """Refuse a CPU run whose windows need more memory than this process may take (``headroom``: bytes and the
    limit that binds; default :func:`~tomoseg.host_memory.memory_headroom`), naming a tile size that fits.

    Examples
    --------
    >>> try:
    ...     check_memory((512, 512, 512), TilingConfig(tile_size=224), 8, "openvino", headroom=(2 * 10**9, "x"))
    ... except TomosegError as exc:
    ...     print(str(exc).split("; ")[-1])
    use --tile-size 176 (about 1.9 GB at its peak), or free memory
    """
    from ..host_memory import memory_headroom

    headroom = memory_headroom() if headroom is None else headroom
    if headroom is None:
        return
    room, which = headroom
    if which == "the address-space limit":  # what is mapped now is part of the base, not beside it
        from ..host_memory import mapped_bytes

        room = max(0, room - max(0, ADDRESS_SPACE_BASE - (mapped_bytes() or 0)))
    voxels = _window_voxels(shape, tiling, divisor)
    need = window_peak(backend, voxels, base_features)
    if need <= room:
        return
    edge = round(voxels ** (1 / 3))
    raise TomosegError(f"not enough memory for segment's windows: {_name(backend)} with tile size "
                       f"{tiling.tile_size} (windows of up to {edge}^3 voxels) needs about {_gb(need)} at its "
                       f"peak, and {_gb(room)} is free ({which}{_allowance(which)}); "
                       + _advice(shape, tiling, divisor, backend, base_features, room, again=False))


def check_local_workers_memory(workers: int, shape, tiling: TilingConfig, divisor: int, backend: str,
                               base_features: int = BASE_FEATURES, total: int | None = None) -> None:
    """Refuse a ``--workers`` CPU run whose windows do not fit in each local worker's share of the memory: Dask
    gives each worker of a local cluster ``total`` (its figure of the machine's memory, a cgroup's limit
    included) divided by their number, and restarts a worker past 95 % of it. Unchecked, such a run ended after
    minutes in "Dask workers died while running the same task" (review DK6), with advice for a cluster of one's
    own (``dask worker --memory-limit``).

    Examples
    --------
    >>> try:
    ...     check_local_workers_memory(2, (512, 512, 512), TilingConfig(tile_size=224), 8, "openvino", total=4 * 10**9)
    ... except TomosegError as exc:
    ...     print(str(exc).split("; ")[-1])
    use fewer --workers, or use --tile-size 176 (about 1.9 GB at its peak), or free memory
    """
    if total is None:
        from distributed.system import MEMORY_LIMIT

        total = MEMORY_LIMIT
    if not total:
        return
    share = int(total) // max(1, int(workers))
    room = int(0.95 * share)
    need = window_peak(backend, _window_voxels(shape, tiling, divisor), base_features)
    if need <= room:
        return
    raise TomosegError(f"--workers {workers}: each local Dask worker gets {_gb(share)} (this machine's "
                       f"{_gb(total)} shared out; Dask restarts a worker past 95 % of it), and {_name(backend)}'s "
                       f"windows of tile size {tiling.tile_size} need about {_gb(need)} at their peak; use fewer "
                       "--workers, or " + _advice(shape, tiling, divisor, backend, base_features, room, again=False))


def _allowance(which: str) -> str:
    return f", of which the process maps about {_gb(ADDRESS_SPACE_BASE)} beside its windows" if which == \
        "the address-space limit" else ""


def _name(backend: str) -> str:
    return {"openvino": "OpenVINO", "torch": "PyTorch"}.get(backend, backend)


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: MemoryError, or the RuntimeError OpenVINO or PyTorch raise for one."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(exc))))


def out_of_memory_error(exc: BaseException, shape, tiling: TilingConfig, divisor: int, backend: str,
                        base_features: int = BASE_FEATURES) -> TomosegError:
    """The one-line error for an allocation that failed while the network ran (``exc``), with a tile size to
    run again with: one of half the estimated peak (what is free just after the failure is no guide: the
    failed attempt still holds its memory)."""
    need = window_peak(backend, _window_voxels(shape, tiling, divisor), base_features)
    first = next((line.strip() for line in str(exc).splitlines() if _OUT_OF_MEMORY.search(line)),
                 type(exc).__name__)
    return TomosegError(f"out of memory while running the network ({_name(backend)}, tile size {tiling.tile_size}: "
                        f"about {_gb(need)} at its peak; {first[:160]}); "
                        + _advice(shape, tiling, divisor, backend, base_features, need // 2, again=True))
