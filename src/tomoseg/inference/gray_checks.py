"""Notes and warnings on what the statistics pass saw in the gray values (review G2, G4, G9).

- voxels without data (NaN, ±inf, the fill value): a note with their count, or a warning where a fill value
  given matches no voxel;
- one value holding a large share of the voxels at an end of the range (a fill outside the reconstructed
  cylinder, padding): a warning naming the value, its share and ``--fill-value``;
- constant slices (zero padding, unreconstructed slices): a warning naming them, with the ``--roi`` that
  leaves them out and the ``--fill-value`` that makes them no data (:class:`SliceRanges` collects each slice's
  range during the same pass).

No PyTorch here.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import note, warn

FILL_SHARE = 0.05  # a constant slices' value that also holds this share of the other slices' voxels: a fill


def check_gray_values(stats, where, fill_value=None, slices: "SliceRanges | None" = None) -> None:
    """Print the notes and warnings that ``stats`` (and ``slices``, where the pass collected them) call for."""
    sampled = " (in the sampled layers)" if stats.method == "sample" else ""
    total = stats.voxels + stats.outliers + stats.nodata
    if stats.nodata:
        what = "NaN or infinite" if fill_value is None else f"NaN, infinite or the fill value {fill_value:g}"
        note(f"{where}: {stats.nodata} voxels{sampled} ({stats.nodata / total:.2%}) are {what}: no data, left out "
             "of the statistics and given probability 0")
    elif fill_value is not None and stats.method == "full":
        warn(f"{where}: no voxel holds the fill value {fill_value:g} (--fill-value); check the value")
    slab_values = {v for _, _, v in slices.constant_runs()} if slices is not None else set()
    if stats.extreme is not None and fill_value is None and stats.extreme[0] not in slab_values:
        value, voxels, end = stats.extreme
        warn(f"{where}: {voxels / total:.1%} of the voxels{sampled} hold the single value {value:g}, the {end} in "
             f"the volume: a fill value (outside the reconstructed cylinder, padded slices)? It is taken as gray "
             f"value and shrinks the objects' contrast; if it means no data, pass --fill-value {value:g} (left "
             "out of the statistics, probability 0)")
    if slices is not None and fill_value is None:
        _check_constant_slices(slices, where, stats, slices.slice_voxels, sampled)


class SliceRanges:
    """Each z slice's lowest and highest value, collected from the blocks of the statistics pass (``visit``);
    blocks may cut a slice along y and arrive on several threads."""

    def __init__(self, depth: int, slice_voxels: int = 0):
        self.slice_voxels = int(slice_voxels)
        self.low = np.full(int(depth), np.inf)
        self.high = np.full(int(depth), -np.inf)
        self._lock = threading.Lock()

    def __call__(self, block, data) -> None:
        data = np.asarray(data)
        if data.size == 0:
            return
        with np.errstate(invalid="ignore"):
            low = data.min(axis=(1, 2)).astype(np.float64)
            high = data.max(axis=(1, 2)).astype(np.float64)
        z = block[0]
        with self._lock:
            self.low[z] = np.fmin(self.low[z], low)
            self.high[z] = np.fmax(self.high[z], high)

    def constant_runs(self) -> list[tuple[int, int, float]]:
        """``(first, stop, value)`` of each run of slices that are seen and constant, all at one value."""
        seen = np.isfinite(self.low) & np.isfinite(self.high)
        flat = seen & (self.low == self.high)
        runs, z = [], 0
        while z < len(flat):
            if flat[z]:
                end = z + 1
                while end < len(flat) and flat[end] and self.low[end] == self.low[z]:
                    end += 1
                runs.append((z, end, float(self.low[z])))
                z = end
            else:
                z += 1
        return runs


def _check_constant_slices(slices: SliceRanges, where, stats=None, slice_voxels: int | None = None,
                           sampled: str = "") -> None:
    """Warn of constant slices. ``--fill-value`` is offered where no other voxel holds their value, or where
    it also fills at least :data:`FILL_SHARE` of the other slices' voxels (the outside of the reconstructed
    cylinder: more no data, review S2); where only a few other voxels hold it (as far as ``stats.extreme``
    tells: dark pores clipped at that value), ``--roi`` is advised."""
    runs = slices.constant_runs()
    if not runs:
        return
    depth = len(slices.low)
    named = ", ".join(f"{a}" if b - a == 1 else f"{a}–{b - 1}" for a, b, _ in runs[:4])
    named += " ..." if len(runs) > 4 else ""
    values = sorted({v for _, _, v in runs})
    value = f"value {values[0]:g}" if len(values) == 1 else "values " + ", ".join(f"{v:g}" for v in values[:3])
    count = sum(b - a for a, b, _ in runs)
    lo = max((b for a, b, _ in runs if a == 0), default=0)
    hi = min((a for a, b, _ in runs if b == depth), default=depth)
    roi = f"--roi {lo}:{'' if hi == depth else hi},:,: or " if (lo or hi < depth) and lo < hi else ""
    subject = f"slice {named}{sampled} is" if count == 1 else f"slices {named}{sampled} are"
    fill = f"--fill-value {values[0]:g} (no data, probability 0)"
    extreme = getattr(stats, "extreme", None)
    others = 0
    if len(values) == 1 and slice_voxels and extreme is not None and extreme[0] == values[0]:
        others = int(extreme[1]) - count * slice_voxels
    total = stats.voxels + stats.outliers + stats.nodata if stats is not None else 0
    rest = total - count * slice_voxels if slice_voxels else 0
    if others > 0 and rest > 0 and others >= FILL_SHARE * rest:
        # the value also fills much of the other slices (outside the reconstructed cylinder, review S2): no
        # data there too, which --roi alone leaves as gray values (0 objects in the review)
        advice = (f"the value also holds {others / rest:.1%} of the other slices' voxels (outside the "
                  f"reconstructed cylinder?): use {fill}, which covers the constant slices too"
                  + (f" (add {roi[:-4]} to skip them)" if roi else ""))
    elif others > 0:  # a few voxels elsewhere (dark pores clipped at the value): --roi keeps them as gray values
        advice = (f"use {roi[:-4]}" if roi else "crop them away") + \
            f" (--fill-value {values[0]:g} would also make the {others} voxels of the other slices that hold " \
            "it no data)"
    else:
        advice = f"use {roi}{fill}"
    warn(f"{where}: {subject} constant ({value}): padding or unreconstructed slices? They shift the statistics "
         f"and the model may flood their edge; {advice}")
