"""Figures of a tracking: radius before vs after, volume change, and where objects appeared or vanished.

Drawn with the report's helpers (:mod:`tomoseg.report.figures`): column widths with text of 7 pt or more,
PNG at 300 dpi with SVG and PDF beside it, Okabe-Ito colours (told apart by marker shape too), positions and
radii in nm, µm or mm (the unit the values reach) where the voxel size is known, and each caption in the
folder's ``captions.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.units import readable_unit
from ..report.figures import (DOUBLE_COLUMN, OKABE_ITO, SINGLE_COLUMN, add_scale_bar, gray_range, new_figure,
                              no_objects, save_figure, styled)
from ..report.layout import unit_ticks
from .tracking import EVENT_NAMES, count_label, counted, group_totals, links_not_counted, status_counts

COLOURS = {"persisting": OKABE_ITO["blue"], "appeared": OKABE_ITO["bluish green"],
           "vanished": OKABE_ITO["vermillion"], "merged": OKABE_ITO["reddish purple"], "split": OKABE_ITO["orange"]}
MARKERS = {"persisting": "o", "appeared": "P", "vanished": "X", "merged": "D", "split": "^"}


@styled
def radius_figure(table: dict, path, *, unit: str = "nm") -> Path:
    """Equivalent radius after against before: persisting objects one by one, merges and splits by group (the
    legend counts the pairs and groups drawn, as the stdout line counts them: :func:`~.tracking.count_label`)."""
    col = "radius_nm" if unit == "nm" else "radius_vox"
    keep = counted(table)
    counts = status_counts(table)
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, SINGLE_COLUMN + 0.6))  # + the legend's rows under the axes
    hi = 1.0
    drawn = 0
    for status in ("persisting", "merged", "split"):
        sel = keep & (table["status"] == status)
        if not sel.any():
            continue
        if status == "persisting":
            rb, ra = table[f"before_{col}"][sel], table[f"after_{col}"][sel]
        else:  # one point per group: radius of a sphere of the group's total volume
            _, vb, va = group_totals(table, sel, "volume_nm3" if unit == "nm" else "volume_vox")
            rb, ra = np.cbrt(3 * vb / (4 * np.pi)), np.cbrt(3 * va / (4 * np.pi))
        ax.scatter(rb, ra, s=10, alpha=0.75, color=COLOURS[status], marker=MARKERS[status], edgecolors="none",
                   label=count_label(status, counts[status]))
        drawn += len(rb)
        hi = max(hi, float(np.nanmax(rb)), float(np.nanmax(ra)))
    ax.plot([0, hi * 1.05], [0, hi * 1.05], color="0.4", lw=0.8, ls="--", label="no change")
    if not drawn:
        no_objects(ax, "no persisting, merged or split objects")
    ax.set_xlim(0, hi * 1.05)
    ax.set_ylim(0, hi * 1.05)
    ax.set_aspect("equal")
    name = "voxels"
    if unit == "nm":  # ticks in nm, µm or mm (a lab scan's radii read 200000 nm)
        from matplotlib.ticker import FuncFormatter

        name, size = readable_unit(hi)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / size:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / size:g}"))
    ax.set_xlabel(f"equivalent radius before ({name})")
    ax.set_ylabel(f"equivalent radius after ({name})")
    # under the axes: in the upper left its translucent box hid the objects that grew most
    fig.legend(loc="outside lower center", ncol=1, frameon=False)  # (two columns ran past a column's width)
    return save_figure(fig, path, "Equivalent radius after against before (dashed: no change); persisting "
                                  "objects one by one, merges and splits one point per group (the radius of a "
                                  "sphere of the group's total volume); objects off the edge of both fields of "
                                  "view and of at least the minimum size.", marks=drawn)


@styled
def volume_change_histogram(table: dict, path) -> Path:
    """Histogram of the relative volume change of persisting objects (%)."""
    from matplotlib.ticker import MaxNLocator

    sel = counted(table) & (table["status"] == "persisting")
    dv = 100 * table["delta_volume_rel"][sel]
    dv = dv[np.isfinite(dv)]
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, 2.5))
    if len(dv):
        lo, hi = np.floor(np.min(dv) / 10) * 10, np.ceil(np.max(dv) / 10) * 10
        ax.hist(dv, bins=np.arange(min(lo, -10), max(hi, 10) + 5, 5), color=COLOURS["persisting"],
                edgecolor="white", lw=0.4)
    else:
        no_objects(ax, "no persisting objects")
        ax.set_xlim(-10, 10)
    ax.axvline(0, color="0.4", ls="--", lw=0.8)
    ax.set_xlabel("volume change of persisting objects (%)")
    ax.set_ylabel("objects")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return save_figure(fig, path, f"Relative volume change of the {int(sel.sum()):,} persisting objects (off the "
                                  "edge of both fields of view, of at least the minimum size), in bins of 5 %; "
                                  "dashed: no change.")


def view_aspects(voxel_size=None) -> tuple[float, float]:
    """Height over width of one voxel in the top view (y over x) and the side view (z over x), so that both
    views are drawn to scale in nm."""
    vz, vy, vx = (float(v) for v in voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    return vy / vx, vz / vx


def _not_counted(table: dict, status: str) -> str:
    """The legend's entry for ``status``'s hollow marks: its links at an edge or below the minimum size, which the
    counts leave out (``split, not counted (edge or small): 1 group``)."""
    n = links_not_counted(table, status)
    return f"{status}, not counted (edge or small): {n:,} {EVENT_NAMES[status][n != 1]}"


@styled
def change_map(table: dict, path, *, shape=None, matrix=None, image=None, voxel_size=None) -> Path:
    """Where objects appeared, vanished, merged and split: top view (y, x) and side view (z, x) of the
    pillar in the AFTER frame (vanished objects carried there through the transform); behind them, the
    AFTER ``image``'s middle slices when given. ``shape``: the AFTER scan's (the extent drawn);
    ``voxel_size``: the axes in nm, µm or mm (the unit the views' extent reaches), drawn to scale, with a scale
    bar. One marker per object (a merge's at its
    AFTER object); objects at an edge or below the minimum size are hollow and not counted. The legend counts
    as the stdout line does (:func:`~.tracking.count_label`): pairs, objects, groups."""
    from .registration import apply

    fig, axes = new_figure(1, 2, figsize=(DOUBLE_COLUMN, 4.0))
    m = np.eye(4) if matrix is None else np.asarray(matrix, float)
    counts = status_counts(table)
    pts = {}
    for status in COLOURS:
        sel = table["status"] == status
        if not sel.any():
            continue
        if status == "vanished":
            p = np.stack([table[f"before_centroid_{a}"][sel] for a in "zyx"], 1)
            p = apply(m, p)
        else:
            p = np.stack([table[f"after_centroid_{a}"][sel] for a in "zyx"], 1)
        edge = ~counted(table)[sel]  # at an edge or small: hollow, not counted
        pts[status] = (p, edge)
    if image is not None:
        z, y = image.shape[0] // 2, image.shape[1] // 2
        planes = np.asarray(image[z]), np.asarray(image[:, y])
        lo, hi = gray_range(*planes)
        axes[0].imshow(planes[0], cmap="gray", alpha=0.45, vmin=lo, vmax=hi)
        axes[1].imshow(planes[1], cmap="gray", alpha=0.45, vmin=lo, vmax=hi)
    aspects = view_aspects(voxel_size)
    vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), float)
    unit, per_unit = "voxels", 1.0
    if voxel_size is not None:  # nm, µm or mm, as far as the views reach (a lab scan's read 0 to 50000 µm)
        reach = (np.asarray(shape, float) if shape is not None else
                 np.nanmax(np.abs(np.concatenate([p for p, _ in pts.values()] or [np.zeros((1, 3))])), axis=0) + 1)
        unit, per_unit = readable_unit(float(np.max(reach * vs)))
    for ax, (i, j), title, aspect in ((axes[0], (2, 1), "top view (x, y)", aspects[0]),
                                      (axes[1], (2, 0), "side view (x, z)", aspects[1])):
        for status, (p, edge) in pts.items():
            size = 6 if status == "persisting" else 24
            alpha = 0.6 if status == "persisting" else 0.9
            if (~edge).any():
                ax.scatter(p[~edge, i], p[~edge, j], s=size, marker=MARKERS[status], color=COLOURS[status],
                           alpha=alpha, edgecolors="none", label=count_label(status, counts[status]))
            if edge.any():  # in the legend too: hollow marks beside "split: 0 groups" read as a contradiction
                ax.scatter(p[edge, i], p[edge, j], s=size, marker=MARKERS[status], facecolor="none",
                           edgecolor=COLOURS[status], alpha=0.5, lw=0.6, label=_not_counted(table, status))
        if shape is not None:
            ax.set_xlim(-0.5, shape[2] - 0.5)
            ax.set_ylim(shape[j] - 0.5, -0.5)
        ax.set_aspect(aspect)
        if voxel_size is not None:  # the axes in that unit (the data stay in voxels: the image behind them)
            for axis, a in ((ax.xaxis, i), (ax.yaxis, j)):
                unit_ticks(axis, vs[a] / per_unit)  # round values of the unit, as many as the view's size holds
            if shape is not None:
                add_scale_bar(ax, float(vs[2]), int(shape[2]))
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})" if j == 1 else f"z ({unit})")
        ax.set_title(title)
    if pts:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
    else:
        no_objects(axes[0], "no objects")
    return save_figure(fig, path, "Where objects appeared, vanished, merged and split, all objects projected onto "
                                  "the top and side views in the AFTER frame (vanished objects carried there "
                                  "through the transform), one marker per object (a merge's at its AFTER object); "
                                  "hollow markers: at the edge of a field of view or smaller than the minimum "
                                  "size, not counted in the legend"
                       + ("; behind: the AFTER scan's middle slices" if image is not None else "") + ".",
                       marks=sum(len(p) for p, _ in pts.values()))
