"""Figures of the objects' sizes and shapes: equivalent-radius histograms (the paper's Fig. 6a) and sphericity
against radius coloured by mean gray value (Fig. 6b, c), with a second axis in nm, µm or mm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_panels import nice_length
from .layout import DOUBLE_COLUMN, SINGLE_COLUMN, centre_legend_over, count_axis
from .style import SERIES, new_figure, no_objects, save_figure, seeded_sample, styled

OVERPLOT = 300            # above this many objects the sphericity scatter's marks are drawn translucent
MAX_SCATTER = 20_000      # the sphericity scatter draws a seeded random sample of at most this many objects a panel
MAX_BINS = 120            # a size histogram's bars at most (0.5 voxel each up to a radius of 60 voxels)
BEYOND_QUANTILE = 0.995   # past 60 voxels, the radius axis ends where this share of the objects is (8 voxels at least)


def _radius_axis(ax, voxel_size, which: str = "x"):
    """A second x axis on top: the radius in nm, µm or mm (the unit that the axis' end reaches, so a 50 µm voxel
    scan's ticks read 50 to 200 µm, not 50000 to 200000 nm); call it after the x limits are set."""
    from ..io.units import readable_unit

    if not voxel_size:
        return
    name, size = readable_unit(max(ax.get_xlim()) * float(np.cbrt(np.prod(voxel_size))))
    v = float(np.cbrt(np.prod(voxel_size))) / size
    if which == "x":
        sec = ax.secondary_xaxis("top", functions=(lambda r: r * v, lambda n: n / v))
        sec.set_xlabel(f"equivalent radius ({name})")


def radius_bins(radii: list) -> tuple[np.ndarray, int, float]:
    """The bins of a size histogram of ``radii`` (arrays of equivalent radii in voxels): ``(edges, beyond, top)``.

    Bins of 0.5 voxel (the paper's Fig. 6a) up to the largest radius while that makes at most :data:`MAX_BINS`
    bars. One large pore (a connected network of radius 500 voxels) made 1,000 bars, the histogram of the small
    objects a sliver at the left, and drawing it took minutes; past 60 voxels the axis ends where
    :data:`BEYOND_QUANTILE` of the objects are (at least 8 voxels), in bins of a round width (0.5, 1, 2, 5 ...)
    of at most :data:`MAX_BINS`; ``beyond`` objects are larger, up to ``top`` voxels (the figure says so).

    >>> edges, beyond, top = radius_bins([np.array([1.0, 2.2, 7.9])])
    >>> float(edges[-1]), len(edges) - 1, beyond
    (8.0, 16, 0)
    >>> edges, beyond, top = radius_bins([np.r_[np.linspace(1, 8, 999), 480.0]])
    >>> float(edges[-1]), beyond, top
    (8.0, 1, 480.0)
    """
    finite = np.concatenate([r[np.isfinite(r)] for r in radii] + [np.zeros(0)])
    top = float(finite.max()) if finite.size else 2.0
    end = float(np.ceil(max(top, 2.0)))
    if end > MAX_BINS * 0.5:
        end = float(np.ceil(max(8.0, np.quantile(finite, BEYOND_QUANTILE))))
    width = max(0.5, nice_length(end / MAX_BINS))  # the 1-2-5 width at or below the one the bars need,
    if end / width > MAX_BINS:  #                      then the next one up (2.5 times a 1-2-5 number: the next)
        width = nice_length(2.5 * width)
    end = np.ceil(end / width) * width
    edges = np.arange(0, end + width / 2, width)
    return edges, int((finite > edges[-1]).sum()), top


@styled
def size_histogram(tables: dict, path, *, voxel_size=None, empty_note: str = "no objects") -> Path:
    """Histogram of equivalent radii, one series per table (e.g. ground truth and prediction); ``empty_note``
    is written on the plot where the tables hold no object (say why: "no objects kept (2 touch the border)").
    Bins: :func:`radius_bins` (0.5 voxel, at most :data:`MAX_BINS`; the few largest objects beyond the axis
    where their radii reach far past the rest, said on the plot and in the caption)."""
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, 2.8))
    radii = [np.asarray(t["equivalent_radius_vox"], float) for t in tables.values()]
    total = sum(len(r) for r in radii)
    bins, beyond, top = radius_bins(radii)
    width = float(bins[1] - bins[0])
    labels = [f"{k} ({len(t['label']):,})" for k, t in tables.items()]
    if total:
        ax.hist(radii, bins=bins, label=labels, color=SERIES[:len(radii)])
        legend = fig.legend(loc="outside upper center", ncol=min(len(radii), 3), frameon=False)
        if beyond:
            ax.text(0.98, 0.95, f"+ {beyond:,} larger\n(up to {top:,.0f} voxels)", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7, bbox=dict(facecolor="white", alpha=0.8, lw=0, pad=1.5))
    else:
        no_objects(ax, empty_note)
        ax.set_xlim(0, bins[-1])
    ax.set_xlabel("equivalent radius (voxels)")
    ax.set_ylabel("objects")
    count_axis(ax.yaxis)
    _radius_axis(ax, voxel_size)
    if total:
        centre_legend_over(fig, legend, ax)
    caption = (f"Equivalent-radius histograms (bins of {width:g} voxel{'s' if width != 1 and width > 0.5 else ''}; "
               "the number of objects in the legend), as the paper's Fig. 6(a).")
    if beyond:
        caption += (f" {beyond:,} object{'s' if beyond != 1 else ''} larger than {bins[-1]:g} voxels (up to "
                    f"{top:,.0f}) {'lie' if beyond != 1 else 'lies'} beyond the axis, which ends where "
                    f"{BEYOND_QUANTILE:.1%} of the objects are.")
    return save_figure(fig, path, caption + ("" if total else f" Empty: {empty_note}."))


def _stack_identical(r, psi, gray):
    """Objects at the same (radius, sphericity) point (voxel objects of a few voxels: quantized values) as one
    point: the points, the number of objects at each, the mean gray value of each."""
    finite = np.isfinite(r) & np.isfinite(psi)
    r, psi, gray = r[finite], psi[finite], gray[finite]
    if not len(r):
        return r, psi, np.zeros(0, np.int64), gray
    # to 9 decimals: the same object's ψ computed in nm differs in the 16th digit (5.6e-16 on a cement scan), which
    # split 22 of its stacks of like objects when the voxel size was known
    points, inverse, counts = np.unique(np.round(np.stack([r, psi], 1), 9), axis=0, return_inverse=True,
                                        return_counts=True)
    inverse = inverse.ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(gray)
        mean_gray = np.bincount(inverse, np.where(ok, gray, 0), len(points)) / np.bincount(inverse, ok, len(points))
    return points[:, 0], points[:, 1], counts, mean_gray


MARK_AREA = 10.0  # points² of the mark of one object
MARK_CAP = 25     # marks stop growing at this many objects (250 pt²); the legend says so


def mark_areas(counts) -> np.ndarray:
    """Scatter mark areas (points²) for marks that stand for ``counts`` objects each: proportional to the count
    (:data:`MARK_AREA` per object), capped at :data:`MARK_CAP` objects. Before review S6 the area was scaled
    to the largest count, so a point of 2 objects was drawn 25 times the area of one."""
    counts = np.asarray(counts, float)
    return MARK_AREA * np.minimum(counts, MARK_CAP)


def mark_legend_counts(largest: int) -> list[int]:
    """The object counts the size legend shows for marks of up to ``largest`` objects: 1, a round count in
    between where there is room, and the largest (or the cap)."""
    top = min(int(largest), MARK_CAP)
    middle = [k for k in (2, 5, 10) if 1 < k < top and 2 * k <= top + 1]
    return [1] + middle[-1:] + ([top] if top > 1 else [])


def size_handles(largest: int) -> list:
    """Legend entries for marks of up to ``largest`` objects (:func:`mark_legend_counts`): gray discs of the
    scatter's areas, the cap written ≥."""
    from matplotlib.lines import Line2D

    cap = int(largest) > MARK_CAP
    return [Line2D([], [], ls="", marker="o", markersize=float(np.sqrt(mark_areas([k])[0])), color="0.5",
                   markeredgewidth=0, label=(f"≥{k}" if cap and k == MARK_CAP else f"{k}"))
            for k in mark_legend_counts(int(largest))]


@styled
def sphericity_figure(tables: dict, path, *, column="sphericity_voxel", voxel_size=None,
                      empty_note: str = "no objects", max_objects: int = MAX_SCATTER, rng=0) -> Path:
    """Sphericity against equivalent radius, coloured by mean gray value (the paper's Fig. 6b, c).

    Objects at the same point (radius, sphericity) are drawn as one mark whose area is proportional to their
    number (:func:`mark_areas`, capped; a legend of sizes), and above :data:`OVERPLOT` objects the marks are
    translucent, so a dense cloud shows as one. Of more than ``max_objects`` objects in a panel a random sample
    of ``max_objects`` is drawn (``rng``: a seed; the title and caption say so): 400,000 objects made one solid
    block of marks, drawn in 11 s."""
    n = len(tables)
    fig, axes = new_figure(1, n, figsize=(SINGLE_COLUMN if n == 1 else DOUBLE_COLUMN, 2.9), squeeze=False)
    grays = np.concatenate([np.asarray(t["mean_gray"], float) for t in tables.values()] + [np.zeros(0)])
    finite = grays[np.isfinite(grays)]
    vmin, vmax = (np.percentile(finite, [2, 98]) if len(finite) else (0, 1))
    sc = None
    marks = 0
    stacked = 1
    sampled = []
    for ax, (name, t) in zip(axes[0], tables.items()):
        columns = [np.asarray(t[c], float) for c in ("equivalent_radius_vox", column, "mean_gray")]
        total = len(columns[0])
        if total > max_objects:  # seeded: the same sample on every run
            columns = [c[seeded_sample(total, max_objects, rng)] for c in columns]
            sampled.append(name)
        r, psi, counts, gray = _stack_identical(*columns)
        marks += len(r)
        if len(r):
            stacked = max(stacked, int(counts.max()))
            coloured = bool(np.isfinite(gray).any())
            style = dict(c=gray, cmap="viridis", vmin=vmin, vmax=vmax) if coloured else dict(color=SERIES[0])
            size = mark_areas(counts)
            s = ax.scatter(r, psi, s=size, alpha=0.5 if len(t["label"]) > OVERPLOT else 1.0, edgecolors="none",
                           plotnonfinite=True, **style)
            sc = s if coloured else sc
        else:
            no_objects(ax, empty_note)
            ax.set_xlim(0, 2)
        if column == "sphericity_voxel":
            ax.axhline(2 / 3, color="0.4", lw=0.8, ls="--")
        ax.set_xlabel("equivalent radius (voxels)")
        ax.set_ylabel("sphericity ψ (" + column.split("_")[1] + ")")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{name} ({len(t['label']):,}" + (f"; {max_objects:,} drawn)" if name in sampled else ")"))
        _radius_axis(ax, voxel_size)
    if sc is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), label="mean gray value")
    # the legends under the axes, not on them: inside they hid the densest marks (a translucent box over the
    # cloud near ψ = 2/3), and the line's legend listed the size marks a second time
    if stacked > 1:  # a size legend: the area is proportional to the objects at the point
        fig.legend(handles=size_handles(stacked), title="objects at a point", loc="outside lower left",
                   ncol=len(mark_legend_counts(stacked)), frameon=False, columnspacing=0.8, handletextpad=0.2)
    if column == "sphericity_voxel":
        from matplotlib.lines import Line2D

        fig.legend(handles=[Line2D([], [], color="0.4", lw=0.8, ls="--", label="ψ = 2/3: voxel-face limit\nof a sphere")],
                   loc="outside lower right", frameon=False)
    coloured = ", coloured by mean gray value," if sc is not None else " (one colour: no gray values measured)"
    caption = (f"Sphericity (voxel faces) against equivalent radius{coloured} as the paper's Fig. 6(b, c). "
               "Voxel faces bias ψ toward 2/3 for large spheres.")
    if stacked > 1:
        caption += (f" Objects with the same radius and sphericity (small objects have few possible values) are "
                    f"one mark whose area is proportional to their number (legend; at most {MARK_CAP} objects' area), "
                    f"up to {stacked:,} objects at one point.")
    if any(len(t["label"]) > OVERPLOT for t in tables.values()):
        caption += " Marks are translucent: dense regions are darker."
    if sampled:
        caption += (f" Of more than {max_objects:,} objects a panel, a random sample of {max_objects:,} is drawn "
                    "(seeded: the same on every run; the title gives both numbers); the colour scale is the "
                    "objects' whole range.")
    if not marks:
        caption += f" Empty: {empty_note}."
    return save_figure(fig, path, caption, marks=marks)

