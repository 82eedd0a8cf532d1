"""Figures a scientist can put in a paper (matplotlib).

Like the paper's Figs. 4–6: a normalized confusion matrix, hit maps, size
histograms of prediction and ground truth, sphericity against radius coloured by
mean gray value; orthogonal slices with the mask outlined, the volume fraction
along z, and a 3D view of the objects coloured by radius.

Every figure is written three times: PNG at 300 dpi, and SVG and PDF (vector) beside it. It is sized for a
journal column (:data:`SINGLE_COLUMN` 85 mm or :data:`DOUBLE_COLUMN` 175 mm wide) with no text under 7 pt at
that size, drawn under one style (:func:`styled`: fonts, Okabe-Ito colours, SVG text kept as text and PDF
fonts embedded as TrueType, so labels stay editable) from the first artist to the saved file, with
constrained layout (no overlapping labels), physical axes when the voxel size is known (z in µm, radius in nm
beside voxels), scale bars on image panels, and colour-blind-safe colours (Okabe & Ito 2008 for categories,
viridis/cividis for values). Each figure's caption, including why a slice was chosen, goes into
``captions.json`` beside the figures, where the HTML report reads it.

Figures of one mark per object stay bounded in time and size whatever the number of objects: above
:data:`VECTOR_MARKS` marks they are written as PNG only (an SVG holds every mark as a path: 60 MB for 30,000
objects in 3D, 1.3 GB for 666,000; embedding the marks as an image in the SVG instead took longer than the
vector file), and the 3D view draws a seeded random sample of at most :data:`MAX_3D_OBJECTS` objects, its
title saying how many of how many. Captions say both.

Every figure function takes the data as arrays or tables (dicts of columns, as ``objects.csv`` reads back
with :func:`tomoseg.table.read_csv`), so any figure can be drawn again from the saved files
(docs/analysis.md, "Re-plotting the figures").
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..io.result_folders import write_captions
from .layout import (DOUBLE_COLUMN, SINGLE_COLUMN, centre_legend_over, count_axis, inside_figure,
                     legend_under_short_panels, panels_to_one_scale, ticks_for_length, views_layout)

DPI = 300
FORMATS = ("png", "svg", "pdf")  # the first a raster, the others vector (left out above VECTOR_MARKS marks)
MIN_FONT_PT = 7             # the smallest text of any figure, at the width it is made for
# Okabe & Ito: distinguishable with the common colour-vision deficiencies
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
SERIES = [OKABE_ITO[k] for k in ("blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue")]
HIT_COLOURS = {"TP": (1, 1, 1), "TN": (0, 0, 0), "FP": (0.835, 0.369, 0.0), "FN": (0.337, 0.706, 0.914)}
VECTOR_MARKS = 2_000      # figures with more marks than this (about 1.5 MB of SVG): PNG only
MAX_3D_OBJECTS = 10_000   # the 3D view draws a random sample of at most this many objects (three views each)
OVERPLOT = 300            # above this many objects the sphericity scatter's marks are drawn translucent
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "figure.titlesize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
         "axes.linewidth": 0.6, "lines.linewidth": 1.0, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
         "svg.fonttype": "none", "pdf.fonttype": 42, "ps.fonttype": 42}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def styled(draw):
    """Run a figure function under :data:`STYLE` (and the Okabe-Ito cycle) from its first artist to its saved
    files: text sizes are taken when text is made, ``svg.fonttype`` when the file is written, so the style
    must hold for the figure's whole life."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        plt = _plt()
        with plt.rc_context({**STYLE, "axes.prop_cycle": plt.cycler(color=SERIES)}):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(*args, **kwargs):
    """``plt.subplots`` with constrained layout (call it inside a :func:`styled` function)."""
    return _plt().subplots(*args, layout="constrained", **kwargs)


def save_figure(fig, path, caption: str | None = None, *, marks: int = 0, captions: bool = True) -> Path:
    """PNG (300 dpi) and the vector files beside it (:data:`FORMATS`; PNG only for a figure of more than
    :data:`VECTOR_MARKS` ``marks``: the caption says so, and vector files of that name from before are
    removed); the caption into ``captions.json`` of the folder (with ``captions``: a results folder's)."""
    from ..io.result_stamps import stamp_results

    path = Path(path)
    vector = marks <= VECTOR_MARKS
    for fmt in FORMATS if vector else FORMATS[:1]:
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    if not vector:
        for fmt in FORMATS[1:]:
            path.with_suffix(f".{fmt}").unlink(missing_ok=True)
        caption = (caption or "") + (f" PNG only: a vector file of its {marks:,} marks would be large and slow "
                                     "to open.").lstrip()
    _plt().close(fig)
    if caption and captions:  # written and stamped as the figures: an edited captions.json is never replaced
        write_captions(path.parent, {path.stem: caption})
    # size and time of each file noted: one edited later (a paper's retouched SVG) is never replaced
    stamp_results([path.with_suffix(f".{fmt}") for fmt in FORMATS])
    return path


def no_objects(ax, note: str) -> None:
    """An empty plot that says why it is empty (``note``), with non-negative axes."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.5, 0.5, _wrap(note), transform=ax.transAxes, ha="center", va="center",
            bbox=dict(boxstyle="round", fc="white", ec="0.6", lw=0.6))


def _wrap(note: str, width: int = 38) -> str:
    """A note in lines that fit a single-column panel (text in the axes counts in the layout)."""
    import textwrap

    return textwrap.fill(note, width)


def format_fraction(v: float) -> str:
    """A fraction in [0, 1] with its digits: 3 decimals, or scientific below 0.001 (0 stays 0).

    >>> format_fraction(0.25), format_fraction(0.000159), format_fraction(0.0)
    ('0.250', '1.59e-04', '0')
    """
    if v == 0:
        return "0"
    return f"{v:.3f}" if abs(v) >= 1e-3 else f"{v:.2e}"


def nice_length(target: float) -> float:
    """The 1-2-5 number nearest below ``target`` (for scale bars).

    >>> nice_length(730), nice_length(2900)
    (500.0, 2000.0)
    """
    if target <= 0:
        return 0.0
    exp = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** exp <= target:
            return float(m * 10 ** exp)
    return float(10 ** exp)


def _length_label(nm: float) -> str:
    from ..io.units import readable_unit

    name, size = readable_unit(nm)
    return f"{nm / size:g} {name}"


def pixel_aspect(voxel_size, rows: int = 1, columns: int = 2) -> float:
    """Height over width of one pixel of a slice whose rows run along axis ``rows`` and columns along axis
    ``columns`` of ``voxel_size`` (z, y, x; default: a z slice, y over x), as imshow's ``aspect`` wants it so
    that the slice is drawn to scale; 1 without a voxel size.

    >>> pixel_aspect((100.0, 30.0, 60.0)), pixel_aspect((100.0, 30.0, 60.0), 0, 2), pixel_aspect(None)
    (0.5, 1.6666666666666667, 1.0)
    """
    if not voxel_size:
        return 1.0
    return float(voxel_size[rows]) / float(voxel_size[columns])


def _display_aspect(ax) -> float:
    """The height on screen of one y data unit over that of one x data unit (1 where the axes are 'auto')."""
    aspect = ax.get_aspect()
    return float(aspect) if not isinstance(aspect, str) else 1.0


def add_scale_bar(ax, pixel_nm: float | None, width_px: int, *, fraction: float = 0.2,
                  thickness: float | None = None, outside: bool = False) -> None:
    """A white bar with its length (nm or µm) in the lower right of an image panel; ``pixel_nm``: a column's
    width (the bar lies along the rows). Call it after the image is drawn with its aspect: the bar's thickness is
    the same on screen whatever the pixels' height over width. ``thickness``: the bar's, in rows, where the
    panel's size on paper is known (by default 1.2 % of the panel's longer side: on a tall, narrow panel that
    was a bar thicker than long). ``outside``: the bar centred under the image, its label (black) under the bar,
    for a panel too narrow for the label (take a longer ``fraction``: nothing is hidden under it)."""
    if not pixel_nm:
        return
    from matplotlib.patches import Rectangle

    length_nm = nice_length(fraction * width_px * pixel_nm)
    length_px = length_nm / pixel_nm
    y0, y1 = ax.get_ylim()
    a = _display_aspect(ax)
    # one unit of bar thickness (in rows), the same on wide and tall panels and on non-square pixels
    u = thickness if thickness else 0.012 * max(abs(y1 - y0) * a, width_px) / a
    if outside:  # under the image (rows grow downwards: the image's bottom edge is the larger y limit)
        x, y = (width_px - length_px) / 2 - 0.5, max(y0, y1) + 1.5 * u
        ax.add_patch(Rectangle((x, y), length_px, u, color="black", lw=0, clip_on=False))
        ax.text(x + length_px / 2, y + 1.8 * u, _length_label(length_nm), color="black", ha="center", va="top",
                fontsize=MIN_FONT_PT, clip_on=False)
        return
    x = width_px - length_px - 0.04 * width_px
    y = max(y0, y1) - 2.5 * u
    ax.add_patch(Rectangle((x, y), length_px, u, color="white", ec="black", lw=0.5))
    ax.text(x + length_px / 2, y - 0.8 * u, _length_label(length_nm), color="white", ha="center", va="bottom",
            fontsize=MIN_FONT_PT, bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, ec="none"))
    # (a dark box behind the label rather than a stroke around it: a stroked label is saved as paths, not as
    # text that can be edited in the SVG)


CONFUSION_CAPTION = ("Normalized confusion matrix (rows: ground truth; each row sums to 1), as the paper's Fig. 4; "
                     "counts in voxels, fractions below 0.001 in scientific notation.")


@styled
def confusion_figure(cm, path, caption: str | None = None) -> Path:
    """The normalized confusion matrix with its counts (the paper's Fig. 4); ``caption``: instead of the usual one."""
    m = cm.normalized()
    counts = np.array([[cm.tp, cm.fn], [cm.fp, cm.tn]])
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, 2.9))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    names = [["TP", "FN"], ["FP", "TN"]]
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{names[i][j]}\n{format_fraction(m[i, j])}\n({counts[i, j]:,} vox)", ha="center",
                    va="center", color="white" if m[i, j] > 0.5 else "black", fontsize=MIN_FONT_PT)
    ax.set_xticks([0, 1], ["object", "background"])
    ax.set_yticks([0, 1], ["object", "background"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the row")
    return save_figure(fig, path, caption or CONFUSION_CAPTION)


def hit_map(pred_slice: np.ndarray, truth_slice: np.ndarray) -> np.ndarray:
    """RGB image: TP white, TN black, FP vermillion, FN sky blue (the paper's Fig. 5, colour-blind safe)."""
    p, t = pred_slice.astype(bool), truth_slice.astype(bool)
    rgb = np.zeros(p.shape + (3,), np.float32)
    for key, sel in (("TP", p & t), ("FP", p & ~t), ("FN", ~p & t)):
        rgb[sel] = HIT_COLOURS[key]
    return rgb


def gray_range(*planes) -> tuple[float, float]:
    """One gray range (the 1st to 99th percentile of the planes' finite values together) for image panels
    that are to be compared: the same gray value the same shade in each."""
    values = np.concatenate([np.asarray(p, np.float64).ravel() for p in planes])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


@styled
def hit_map_figure(image_slice, pred_slice, truth_slice, path, *, title="", reason: str = "",
                   voxel_size=None) -> Path:
    """Image and hit map of one slice (the hit map alone where there is no image); ``reason`` says why this
    slice was chosen (in the caption). ``voxel_size`` (z, y, x in nm): the slice drawn to scale (a pixel as
    tall as its y size over its x size) with a scale bar."""
    from matplotlib.patches import Patch

    panels = 1 if image_slice is None else 2
    fig, axes = new_figure(1, panels, figsize=(SINGLE_COLUMN if panels == 1 else DOUBLE_COLUMN, 3.6),
                           squeeze=False)
    axes = list(axes[0])
    width = pred_slice.shape[-1]
    pixel = float(voxel_size[-1]) if voxel_size else None
    aspect = pixel_aspect(voxel_size)  # y over x: drawn to scale where the y and x voxel sizes differ
    if image_slice is not None:
        lo, hi = gray_range(image_slice)
        axes[0].imshow(image_slice, cmap="gray", interpolation="nearest", aspect=aspect, vmin=lo, vmax=hi)
        add_scale_bar(axes[0], pixel, width)
        axes[0].set_title("image")
    axes[-1].imshow(hit_map(pred_slice, truth_slice), interpolation="nearest", aspect=aspect)
    add_scale_bar(axes[-1], pixel, width)
    axes[-1].set_title("hit map")
    for ax in axes:
        ax.set_axis_off()
    n = {k: int(np.count_nonzero(s)) for k, s in (("TP", pred_slice.astype(bool) & truth_slice.astype(bool)),
                                                   ("FP", pred_slice.astype(bool) & ~truth_slice.astype(bool)),
                                                   ("FN", ~pred_slice.astype(bool) & truth_slice.astype(bool)))}
    handles = [Patch(facecolor=HIT_COLOURS[k], edgecolor="0.5", label=f"{k} ({n[k]:,})") for k in ("TP", "FP", "FN")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    if title:
        fig.suptitle(title)
    caption = ("Hit map: true positives white, false positives vermillion, false negatives sky blue, true "
               "negatives black (the paper's Fig. 5; voxel counts in the legend).")
    if image_slice is not None:
        caption += " Left: the image (gray range: its 1st to 99th percentile)."
    if reason:
        caption += f" {title + ': ' if title else ''}{reason}."
    return save_figure(fig, path, caption)


def hit_map_slices(pred_mask=None, truth=None, *, counts: dict | None = None) -> list[tuple[int, str]]:
    """The slices worth a hit map, with the reason: most true object voxels, most errors (FP + FN). From the
    masks in memory, or from ``counts`` (per z slice: ``objects``, ``errors``; as
    :func:`tomoseg.evaluation.voxel_scores` counts them)."""
    if counts is None:
        counts = {"objects": truth.sum(axis=(1, 2)), "errors": (pred_mask != truth).sum(axis=(1, 2))}
    objects, errors = np.asarray(counts["objects"]), np.asarray(counts["errors"])
    zo, ze = int(np.argmax(objects)), int(np.argmax(errors))
    if zo == ze:
        return [(zo, f"chosen as the slice with the most object voxels ({int(objects[zo]):,}) and the most "
                     f"errors ({int(errors[ze]):,} FP + FN voxels)")]
    return sorted([(zo, f"chosen as the slice with the most object voxels ({int(objects[zo]):,} in the ground "
                        "truth)"),
                   (ze, f"chosen as the slice with the most errors ({int(errors[ze]):,} FP + FN voxels)")])


def hit_map_figures(image, pred_mask, truth, out_dir, *, voxel_size=None, counts: dict | None = None,
                    box=None) -> list[Path]:
    """Hit maps of the slices :func:`hit_map_slices` picks, each caption saying why. The volumes may be
    anything indexed by slice (arrays, :class:`~tomoseg.io.Volume`, mask views): with ``counts`` only the
    chosen slices are read. ``box``: where the volumes lie in the scan (three (start, stop) pairs, z, y, x; a
    ``segment --roi`` box): the slices are named by the scan's z and the titles say the box."""
    z0 = int(box[0][0]) if box else 0
    inside = f", in the box y {box[1][0]}:{box[1][1]}, x {box[2][0]}:{box[2][1]}" if box else ""
    paths = []
    for z, reason in hit_map_slices(pred_mask, truth, counts=counts):
        paths.append(hit_map_figure(None if image is None else np.asarray(image[z]), np.asarray(pred_mask[z]),
                                    np.asarray(truth[z]), Path(out_dir) / f"hit_map_z{z + z0}.png",
                                    title=f"z = {z + z0}{inside}", reason=reason, voxel_size=voxel_size))
    return paths


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


@styled
def size_histogram(tables: dict, path, *, voxel_size=None, empty_note: str = "no objects") -> Path:
    """Histogram of equivalent radii, one series per table (e.g. ground truth and prediction); ``empty_note``
    is written on the plot where the tables hold no object (say why: "no objects kept (2 touch the border)")."""
    fig, ax = new_figure(figsize=(SINGLE_COLUMN, 2.8))
    radii = [np.asarray(t["equivalent_radius_vox"], float) for t in tables.values()]
    total = sum(len(r) for r in radii)
    top = max([float(np.nanmax(r)) for r in radii if len(r)] + [2.0])
    bins = np.arange(0, np.ceil(top) + 0.5, 0.5)
    labels = [f"{k} ({len(t['label']):,})" for k, t in tables.items()]
    if total:
        ax.hist(radii, bins=bins, label=labels, color=SERIES[:len(radii)])
        legend = fig.legend(loc="outside upper center", ncol=min(len(radii), 3), frameon=False)
    else:
        no_objects(ax, empty_note)
        ax.set_xlim(0, bins[-1])
    ax.set_xlabel("equivalent radius (voxels)")
    ax.set_ylabel("objects")
    count_axis(ax.yaxis)
    _radius_axis(ax, voxel_size)
    if total:
        centre_legend_over(fig, legend, ax)
    return save_figure(fig, path, "Equivalent-radius histograms (bins of 0.5 voxel; the number of objects in "
                                  "the legend), as the paper's Fig. 6(a)." + ("" if total else f" Empty: {empty_note}."))


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
                      empty_note: str = "no objects") -> Path:
    """Sphericity against equivalent radius, coloured by mean gray value (the paper's Fig. 6b, c).

    Objects at the same point (radius, sphericity) are drawn as one mark whose area is proportional to their
    number (:func:`mark_areas`, capped; a legend of sizes), and above :data:`OVERPLOT` objects the marks are translucent, so a dense
    cloud shows as one."""
    n = len(tables)
    fig, axes = new_figure(1, n, figsize=(SINGLE_COLUMN if n == 1 else DOUBLE_COLUMN, 2.9), squeeze=False)
    grays = np.concatenate([np.asarray(t["mean_gray"], float) for t in tables.values()] + [np.zeros(0)])
    finite = grays[np.isfinite(grays)]
    vmin, vmax = (np.percentile(finite, [2, 98]) if len(finite) else (0, 1))
    sc = None
    marks = 0
    stacked = 1
    for ax, (name, t) in zip(axes[0], tables.items()):
        r, psi, counts, gray = _stack_identical(np.asarray(t["equivalent_radius_vox"], float),
                                                np.asarray(t[column], float), np.asarray(t["mean_gray"], float))
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
        ax.set_title(f"{name} ({len(t['label']):,})")
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
    if not marks:
        caption += f" Empty: {empty_note}."
    return save_figure(fig, path, caption, marks=marks)


PLANE_LINE = dict(color="white", gapcolor="black", lw=0.6, ls=(0, (4, 4)), alpha=0.7)  # orthoslices' other planes


@styled
def orthoslices(image, mask, path, *, centre=None, title="", reason: str = "", voxel_size=None,
                excluded=None) -> Path:
    """Three orthogonal slices through ``centre`` with the mask outlined (Okabe-Ito orange), in one gray
    range (:func:`gray_range` of the three planes), the other two planes marked by dashed lines.

    ``excluded``: a function ``(axis, index, mask_plane) -> bool plane`` giving the part of a plane's mask that
    belongs to objects the analysis does not count (border, small, outside the sample mask; outlined in sky
    blue),
    e.g. :func:`tomoseg.report.slices.excluded_in_plane`."""
    from matplotlib.lines import Line2D
    from skimage.segmentation import find_boundaries

    shape = image.shape
    centre = tuple(int(c) for c in (centre or tuple(s // 2 for s in shape)))
    planes = [(0, "z", np.asarray(image[centre[0]]), np.asarray(mask[centre[0]]), 2),
              (1, "y", np.asarray(image[:, centre[1]]), np.asarray(mask[:, centre[1]]), 2),
              (2, "x", np.asarray(image[:, :, centre[2]]), np.asarray(mask[:, :, centre[2]]), 1)]
    vs = np.asarray(voxel_size if voxel_size else (1.0, 1.0, 1.0), float)
    widths = [shape[2] * vs[2], shape[2] * vs[2], shape[1] * vs[1]]  # in nm: the panels to one scale
    heights = [shape[1] * vs[1], shape[0] * vs[0], shape[0] * vs[0]]
    names = [f"{name} = {centre[axis]}" for axis, name, *_ in planes]
    fig, axes, scale = panels_to_one_scale(_plt().figure(), widths, heights, names, suptitle=bool(title))
    lo, hi = gray_range(*(p[2] for p in planes))
    colours = {"kept": np.array([0.902, 0.624, 0.0, 1.0], np.float32),
               "excluded": np.array([0.337, 0.706, 0.914, 1.0], np.float32)}
    any_excluded = any_kept = False
    # the other planes' lines: in the z plane (rows y, columns x); y plane (z, x); x plane (z, y)
    cross = {"z": (centre[1], centre[2]), "y": (centre[0], centre[2]), "x": (centre[0], centre[1])}
    for ax, (axis, name, img, m, horiz) in zip(axes, planes):
        # the image's rows over its columns, in nm: z over x or y, y over x in the z plane
        aspect = pixel_aspect(voxel_size, 1 if name == "z" else 0, horiz)
        ax.imshow(img, cmap="gray", interpolation="nearest", aspect=aspect, vmin=lo, vmax=hi)
        objects = np.asarray(m) > 0
        left_out = excluded(axis, centre[axis], objects) if excluded is not None else np.zeros_like(objects)
        overlay = np.zeros(objects.shape + (4,), np.float32)
        counted = objects & ~left_out
        any_kept |= bool(counted.any())
        overlay[find_boundaries(counted, mode="outer")] = colours["kept"]
        if left_out.any():
            any_excluded = True
            overlay[find_boundaries(left_out, mode="outer")] = colours["excluded"]
        ax.imshow(overlay, interpolation="nearest", aspect=aspect)
        row, col = cross[name]
        for line in (ax.axhline, ax.axvline):  # white dashes with black gaps: seen on the bright sample too (white
            line(row if line == ax.axhline else col, **PLANE_LINE)  # alone vanished on it)
        ax.set_title(f"{name} = {centre[axis]}")
        ax.set_axis_off()
    # one scale bar: the three share one scale (a bar on each, on a thin volume's 3-slice strips, lay over the
    # strip and the titles); on the widest panel, or, where its label is wider than that panel's room for it (a
    # tall volume's 32-pixel panels), under the widest panel with white below it
    k, outside = _scale_bar_panel(fig, widths, heights, scale, labelled=bool(voxel_size))
    row_nm = float(vs[1] if planes[k][1] == "z" else vs[0])  # the panel's rows: y in the z plane, else z
    add_scale_bar(axes[k], float(voxel_size[planes[k][4]]) if voxel_size else None, planes[k][2].shape[1],
                  thickness=(2.0 / 72) / scale / row_nm, outside=outside,  # 2 points thick on paper
                  fraction=0.6 if outside else 0.2)
    handles = [Line2D([], [], color=colours["kept"], lw=2, label="objects counted")] if any_kept or not any_excluded \
        else []
    if any_excluded:
        handles.append(Line2D([], [], color=colours["excluded"], lw=2, label="objects not counted"))
    handles.append(Line2D([], [], **{**PLANE_LINE, "lw": 1.0, "ls": (0, (2.4, 2.4))}, label="the other two planes"))
    legend = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                        frameon=False, borderaxespad=0.2)
    legend_under_short_panels(fig, axes, legend)  # a flat volume's: under its y and x strips, not a row below
    if title:
        fig.suptitle(title, y=1 - 0.04 / fig.get_size_inches()[1], va="top")  # (the layout's margin)
    caption = ("Orthogonal slices with the counted objects outlined in orange"
               + (" and the objects not counted (touching the border, under the minimum size, or outside the sample "
                  "mask) in sky blue"
                  if any_excluded else "")
               + "; dashed lines: where the other two planes cut. All three panels share one gray range (1st to "
                 "99th percentile of their values)" + (" and one scale (the scale bar)." if voxel_size else
                                                       " and one scale."))
    if reason:
        caption += f" {reason}."
    return save_figure(fig, path, caption)


def _scale_bar_panel(fig, widths, heights, scale, *, labelled: bool = True) -> tuple[int, bool]:
    """Which orthoslice panel (``widths``, ``heights`` in nm at ``scale`` inches per nm; ``labelled``: whether a
    bar is drawn, the voxel size known) takes the scale bar, and whether outside its image: the widest (then
    tallest) panel, inside where the label of a bar of a fifth of its width fits across it, else under the
    widest panel with room below (0.3 inch) for the bar and its label; inside the widest where none has."""
    w = [float(v) * scale for v in widths]
    h = [float(v) * scale for v in heights]
    k = max(range(len(w)), key=lambda i: (w[i], h[i]))
    if not labelled:
        return k, False
    length = nice_length(0.2 * widths[k])
    text = fig.text(0, 0, _length_label(length), fontsize=MIN_FONT_PT)
    label = text.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.04  # + its box's pad
    text.remove()
    bar_centre = w[k] * 0.96 - length * scale / 2  # as add_scale_bar places it
    if bar_centre - label / 2 >= 0 and bar_centre + label / 2 <= w[k]:
        return k, False
    room = [i for i in range(len(w)) if max(h) - h[i] >= 0.3]
    if not room:
        return k, False
    return max(room, key=lambda i: (w[i], max(h) - h[i])), True


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


def colour_scale(values, *, percentiles=(2, 98)):
    """One :class:`~matplotlib.colors.Normalize` from the ``percentiles`` of ``values`` for every panel of a
    figure; widened around the value where they coincide (objects all of one radius: a one-value scale left
    panels that did not share it at the bottom of the colormap)."""
    from matplotlib.colors import Normalize

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo, hi = (np.percentile(v, percentiles) if len(v) else (0.0, 1.0))
    if hi <= lo:
        half = max(0.05 * abs(lo), 0.5)
        lo, hi = lo - half, lo + half
    return Normalize(vmin=float(lo), vmax=float(hi))


@styled
def objects_3d(table: dict, shape, path, *, voxel_size=None, column: str = "equivalent_radius_nm",
               max_objects: int = MAX_3D_OBJECTS, rng=0, empty_note: str = "no objects") -> Path:
    """A 3D view of the objects: each a dot at its centroid coloured by its equivalent radius (one colour
    scale for the three views), inside the analysed volume's box: oblique (3D), from the top (along z, y down,
    as the slices and napari) and from the side (along x, z up); the top and side views are plain 2D plots
    (an orthographic view is one), drawn to scale with each axis labelled in its unit.

    The dots are of one size: marker sizes in screen points cannot be to scale in a 3D projection, and dots
    grown with the radius hid the gaps between objects. Of more than ``max_objects`` objects, a random sample
    of ``max_objects`` (``rng``: a seed or a NumPy Generator) is drawn, and the title and caption say so; the
    colour scale spans all of them."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import MaxNLocator, NullLocator

    vs = np.asarray(voxel_size if voxel_size else (1.0, 1.0, 1.0), float)
    unit = 1000.0 if voxel_size else 1.0
    label = "µm" if voxel_size else "voxels"
    if voxel_size and max(np.asarray(shape, float) * vs) >= 1e6:  # a lab scan: 0 to 5 mm, not 0 to 5000 µm
        unit, label = 1e6, "mm"
    if column not in table or not voxel_size:
        column = "equivalent_radius_vox"
    values = np.asarray(table[column], float)
    radius_unit = "voxels"
    if column.endswith("_nm"):  # the colour bar in nm, µm or mm: a 50 µm voxel scan's read 180000 nm
        from ..io.units import readable_unit

        radius_unit, size = readable_unit(float(np.nanmax(values, initial=0.0)))
        values = values / size
    total = len(values)
    norm = colour_scale(values)
    pick = slice(None)
    if total > max_objects:
        pick = np.sort(np.random.default_rng(rng).choice(total, size=max_objects, replace=False))
        values = values[pick]
    c = np.stack([np.asarray(table[f"centroid_{a}"], float)[pick] for a in "zyx"], 1).reshape(-1, 3) * vs / unit
    lower = -0.5 * vs / unit  # the volume's outer faces: voxel centres at 0 .. n-1 (as the centroids, napari)
    extent = (np.asarray(shape, float) - 0.5) * vs / unit
    dz, dy, dx = extent - lower
    widths, height = views_layout(float(dz), float(dy), float(dx))
    plt = _plt()
    fig = plt.figure(figsize=(DOUBLE_COLUMN, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, wspace=0.04)
    grid = fig.add_gridspec(1, 3, width_ratios=widths)
    dot = 4.0 if len(values) > 2000 else 9.0  # points²: fixed, not to scale
    scatter = dict(c=values, cmap="viridis", norm=norm, s=dot, edgecolors="none")
    # oblique: a 3D axes, its box to scale
    ax3 = fig.add_subplot(grid[0], projection="3d")
    _box(ax3, lower, extent)
    if len(values):
        ax3.scatter(c[:, 2], c[:, 1], c[:, 0], depthshade=False, **scatter)
    ax3.set_box_aspect((dx, dy, dz), zoom=1.0)
    ax3.view_init(elev=25, azim=-55)
    ax3.tick_params(labelsize=MIN_FONT_PT, pad=-2)
    longest = max(dz, dy, dx)
    for axis, length in zip("xyz", (dx, dy, dz)):
        # fewer ticks along a short side (a flat box's z: six ticks one on the other); none below a tenth
        # (and no label: the names of a tall box's x and y ran into each other; the 2D views show those sides)
        n = 3 if length > 0.5 * longest else 2 if length > 0.25 * longest else 1
        getattr(ax3, f"{axis}axis").set_major_locator(MaxNLocator(n) if length > 0.1 * longest else NullLocator())
        if length > 0.1 * longest:
            getattr(ax3, f"set_{axis}label")(f"{axis} ({label})", labelpad=-6)
    # z on the left: on the right its ticks and label ran into the top view's y label
    ax3.zaxis.set_ticks_position("lower")
    ax3.zaxis.set_label_position("lower")
    ax3.zaxis.set_rotate_label(False)
    ax3.zaxis.label.set_rotation(90)
    ax3.set_title("oblique (z up)")
    # top and side: 2D, one scale each, the box's faces as the axes' limits
    top = fig.add_subplot(grid[1])
    side = fig.add_subplot(grid[2])
    for ax, (h, v), (name, hl, vl) in ((top, (2, 1), ("along z (top, y down)", "x", "y")),
                                       (side, (1, 0), ("side (along x, z up)", "y", "z"))):
        if len(values):
            ax.scatter(c[:, h], c[:, v], **scatter)
        ax.set_xlim(lower[h], extent[h])
        ax.set_ylim(lower[v], extent[v])
        ax.set_aspect("equal")
        ax.set_anchor("N")  # the titles in one line
        ax.set_xlabel(f"{hl} ({label})", labelpad=1)
        ax.set_ylabel(f"{vl} ({label})", labelpad=1)
        ax.set_title(name)
    top.invert_yaxis()  # y down, as in the slices, hit maps and napari
    if not total:
        top.text(0.5, 0.5, _wrap(empty_note), transform=top.transAxes, ha="center", va="center",
                 bbox=dict(boxstyle="round", fc="white", ec="0.6", lw=0.6))
    if total:
        fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=[ax3, top, side], shrink=0.85, aspect=25,
                     pad=0.02, label=f"equivalent radius ({radius_unit})")
    drawn = len(values)
    sample = ""
    if drawn < total:
        fig.suptitle(f"{drawn:,} of {total:,} objects drawn (a random sample)")
        sample = (" The sample is seeded (the same on every run) and keeps the figure readable and small; the "
                  "colour scale spans all the objects, and every object is in the objects table and the "
                  "histograms.")
    inside_figure(fig, ax3)
    for ax in (top, side):  # ticks for the 2D views' sizes on paper
        box = ax.get_window_extent()
        for axis, inches in ((ax.xaxis, box.width / fig.dpi), (ax.yaxis, box.height / fig.dpi)):
            ticks_for_length(axis, inches)
    what = f"a random sample of {drawn:,} of the {total:,} objects" if sample else \
        f"the {total:,} object{'' if total == 1 else 's'}"
    caption = (f"3D view of {what}: each a dot at its centroid (dots of one size, not to scale) coloured by its "
               "equivalent radius, in the box of the analysed volume (oblique; from the top, along z with y "
               "down; from the side, along x), so their spatial distribution shows." + sample
               + ("" if total else f" Empty: {empty_note}."))
    return save_figure(fig, path, caption, marks=3 * drawn)


def _box(ax, lower, upper):
    """The edges of the box from ``lower`` to ``upper`` (z, y, x), drawn as x, y, z."""
    import itertools

    lo, hi = np.asarray(lower, float)[::-1], np.asarray(upper, float)[::-1]
    corners = list(itertools.product(*zip(lo, hi)))
    for a, b in itertools.combinations(corners, 2):
        if sum(p != q for p, q in zip(a, b)) == 1:  # an edge: the corners differ along one axis
            ax.plot(*zip(a, b), color="0.6", lw=0.6)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
