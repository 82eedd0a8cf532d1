"""The object volume fraction along z (the pillar axis): its figure and its table (``fraction_along_z.csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import SINGLE_COLUMN
from .style import _wrap, new_figure, save_figure, styled


@styled
def fraction_along_z(fractions: dict, path, *, voxel_size=None, inside_sample: bool = False,
                     note: str = "") -> Path:
    """The volume fraction of each z slice of the objects counted (those the summary covers: kept after the
    border and size exclusions, and inside the sample mask where one is given), as ``Analysis.fraction_along_z``
    holds it; ``inside_sample``: the fractions are of the sample mask's voxels in each slice (axis label and
    caption say so); ``note`` is written on the plot (e.g. that no object was kept)."""
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, 2.5))
    unit, size = "µm", 1000.0
    if voxel_size and max(len(f) for f in fractions.values()) * float(voxel_size[0]) >= 1e6:
        unit, size = "mm", 1e6  # a lab scan: 0 to 5 mm, not 0 to 5000 µm (as the 3D view)
    for name, f in fractions.items():
        z = np.arange(len(f))
        x = z * voxel_size[0] / size if voxel_size else z
        ax.plot(x, 100 * np.asarray(f), label=name)
    if voxel_size:
        ax.set_xlabel(f"z ({unit})")
        vz = float(voxel_size[0]) / size
        sec = ax.secondary_xaxis("top", functions=(lambda u: u / vz, lambda s: s * vz))
        sec.set_xlabel("z (slice)")
    else:
        ax.set_xlabel("z (slice)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("object volume fraction\nin the sample (%)" if inside_sample else "object volume fraction (%)")
    if len(fractions) > 1:
        ax.legend(frameon=False)
    if note:
        ax.text(0.5, 0.95, _wrap(note), transform=ax.transAxes, ha="center", va="top",
                bbox=dict(boxstyle="round", fc="white", ec="0.6", lw=0.6))
    where = ("the counted objects' voxels in each z slice over the sample mask's voxels in it (an object counted "
             "by its centroid inside the sample counts whole)" if inside_sample else
             "the counted objects' voxels in each z slice over the slice's voxels")
    return save_figure(fig, path, f"Object volume fraction along the pillar axis: {where}. The objects counted "
                                  "are the summary's (those of its volume_fraction), after the border and size "
                                  "exclusions: objects left out are not in the curve (fraction_along_z.csv's "
                                  "fraction_all_objects counts every object voxel)." + (f" {note}." if note else ""))


def fraction_along_z_table(fraction, voxel_size=None, fraction_all=None) -> dict:
    """The curve of :func:`fraction_along_z` as a table (``fraction_along_z.csv``): z index, z in µm (NaN
    without a voxel size), the counted objects' fraction (0-1; NaN where a sample mask holds none of the slice)
    and, where given (``fraction_all``), every object's (excluded objects included) as
    ``fraction_all_objects``."""
    f = np.asarray(fraction, np.float64)
    z = np.arange(len(f))
    table = {"z": z, "z_um": z * float(voxel_size[0]) / 1000 if voxel_size else np.full(len(f), np.nan),
             "fraction": f}
    if fraction_all is not None:
        table["fraction_all_objects"] = np.asarray(fraction_all, np.float64)
    return table

