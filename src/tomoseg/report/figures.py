"""Figures a scientist can put in a paper (matplotlib).

Like the paper's Figs. 4–6: a normalized confusion matrix, hit maps, size
histograms of prediction and ground truth, sphericity against radius coloured by
mean gray value; orthogonal slices with the mask outlined, the volume fraction
along z, and a 3D view of the objects coloured by radius.

Every figure is written twice, as PNG at 300 dpi and as SVG (vector) beside it,
with constrained layout (no overlapping labels), physical axes when the voxel
size is known (z in µm, radius in nm beside voxels), scale bars on image panels,
and colour-blind-safe colours (Okabe & Ito 2008 for categories, viridis/cividis
for values). Each figure's caption, including why a slice was chosen, goes into
``captions.json`` beside the figures, where the HTML report reads it.

Figures of one mark per object stay bounded in time and size whatever the number of objects: above
:data:`VECTOR_MARKS` marks they are written as PNG only (an SVG holds every mark as a path: 60 MB for 30,000
objects in 3D, 1.3 GB for 666,000; embedding the marks as an image in the SVG instead took longer than the
vector file), and the 3D view draws a seeded random sample of at most :data:`MAX_3D_OBJECTS` objects, its
title saying how many of how many. Captions say both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DPI = 300
FORMATS = ("png", "svg")
# Okabe & Ito: distinguishable with the common colour-vision deficiencies
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
SERIES = [OKABE_ITO[k] for k in ("blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue")]
HIT_COLOURS = {"TP": (1, 1, 1), "TN": (0, 0, 0), "FP": (0.835, 0.369, 0.0), "FN": (0.337, 0.706, 0.914)}
CAPTIONS_FILE = "captions.json"
VECTOR_MARKS = 2_000      # figures with more marks than this (about 1.5 MB of SVG): PNG only
MAX_3D_OBJECTS = 10_000   # the 3D view draws a random sample of at most this many objects (three views each)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(*args, **kwargs):
    plt = _plt()
    with plt.rc_context({"font.size": 9, "axes.titlesize": 10, "axes.prop_cycle": plt.cycler(color=SERIES),
                         "svg.fonttype": "none"}):
        return plt.subplots(*args, layout="constrained", **kwargs)


def _save(fig, path, caption: str | None = None, *, marks: int = 0) -> Path:
    """PNG (300 dpi) and SVG beside it (PNG only for a figure of more than :data:`VECTOR_MARKS` ``marks``: the
    caption says so, and an SVG of that name from before is removed); the caption into ``captions.json`` of the
    folder."""
    path = Path(path)
    vector = marks <= VECTOR_MARKS
    for fmt in FORMATS if vector else ("png",):
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    if not vector:
        path.with_suffix(".svg").unlink(missing_ok=True)
        caption = (caption or "") + (f" PNG only: an SVG of its {marks:,} marks would be large and slow to "
                                     "open.").lstrip()
    _plt().close(fig)
    if caption:
        store = path.parent / CAPTIONS_FILE
        captions = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
        captions[path.stem] = caption
        store.write_text(json.dumps(captions, indent=1), encoding="utf-8")
    return path


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
    return f"{nm / 1000:g} µm" if nm >= 1000 else f"{nm:g} nm"


def add_scale_bar(ax, pixel_nm: float | None, width_px: int, *, fraction: float = 0.2) -> None:
    """A white bar with its length (nm or µm) in the lower right of an image panel."""
    if not pixel_nm:
        return
    from matplotlib.patches import Rectangle
    import matplotlib.patheffects as pe

    length_nm = nice_length(fraction * width_px * pixel_nm)
    length_px = length_nm / pixel_nm
    y0, y1 = ax.get_ylim()
    u = 0.012 * max(abs(y1 - y0), width_px)  # one unit of bar thickness, the same on wide and tall panels
    x = width_px - length_px - 0.04 * width_px
    y = max(y0, y1) - 2.5 * u
    outline = [pe.withStroke(linewidth=2, foreground="black")]
    ax.add_patch(Rectangle((x, y), length_px, u, color="white", ec="black", lw=0.5))
    ax.text(x + length_px / 2, y - 0.8 * u, _length_label(length_nm), color="white", ha="center", va="bottom",
            fontsize=8, path_effects=outline)


def confusion_figure(cm, path) -> Path:
    m = cm.normalized()
    counts = np.array([[cm.tp, cm.fn], [cm.fp, cm.tn]])
    fig, ax = _figure(figsize=(3.6, 3.2))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    names = [["TP", "FN"], ["FP", "TN"]]
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{names[i][j]}\n{m[i, j]:.3f}\n({counts[i, j]:,} vox)", ha="center", va="center",
                    color="white" if m[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks([0, 1], ["object", "background"])
    ax.set_yticks([0, 1], ["object", "background"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the row")
    return _save(fig, path, "Normalized confusion matrix (rows: ground truth; each row sums to 1), as the paper's "
                            "Fig. 4; counts in voxels.")


def hit_map(pred_slice: np.ndarray, truth_slice: np.ndarray) -> np.ndarray:
    """RGB image: TP white, TN black, FP vermillion, FN sky blue (the paper's Fig. 5, colour-blind safe)."""
    p, t = pred_slice.astype(bool), truth_slice.astype(bool)
    rgb = np.zeros(p.shape + (3,), np.float32)
    for key, sel in (("TP", p & t), ("FP", p & ~t), ("FN", ~p & t)):
        rgb[sel] = HIT_COLOURS[key]
    return rgb


def hit_map_figure(image_slice, pred_slice, truth_slice, path, *, title="", reason: str = "",
                   voxel_size=None) -> Path:
    """Image and hit map of one slice; ``reason`` says why this slice was chosen (in the caption)."""
    from matplotlib.patches import Patch

    fig, axes = _figure(1, 2, figsize=(7.2, 3.8))
    width = pred_slice.shape[-1]
    pixel = float(voxel_size[-1]) if voxel_size else None
    if image_slice is not None:
        axes[0].imshow(image_slice, cmap="gray", interpolation="nearest")
        add_scale_bar(axes[0], pixel, width)
    axes[0].set_title("image")
    axes[1].imshow(hit_map(pred_slice, truth_slice), interpolation="nearest")
    add_scale_bar(axes[1], pixel, width)
    axes[1].set_title("hit map")
    for ax in axes:
        ax.set_axis_off()
    n = {k: int(np.count_nonzero(s)) for k, s in (("TP", pred_slice.astype(bool) & truth_slice.astype(bool)),
                                                   ("FP", pred_slice.astype(bool) & ~truth_slice.astype(bool)),
                                                   ("FN", ~pred_slice.astype(bool) & truth_slice.astype(bool)))}
    handles = [Patch(facecolor=HIT_COLOURS[k], edgecolor="0.5", label=f"{k} ({n[k]:,})") for k in ("TP", "FP", "FN")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    caption = ("Hit map: true positives white, false positives vermillion, false negatives sky blue, true "
               "negatives black (the paper's Fig. 5; voxel counts in the legend).")
    if reason:
        caption += f" {title + ': ' if title else ''}{reason}."
    return _save(fig, path, caption)


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


def hit_map_figures(image, pred_mask, truth, out_dir, *, voxel_size=None, counts: dict | None = None) -> list[Path]:
    """Hit maps of the slices :func:`hit_map_slices` picks, each caption saying why. The volumes may be
    anything indexed by slice (arrays, :class:`~tomoseg.io.Volume`, mask views): with ``counts`` only the
    chosen slices are read."""
    paths = []
    for z, reason in hit_map_slices(pred_mask, truth, counts=counts):
        paths.append(hit_map_figure(None if image is None else np.asarray(image[z]), np.asarray(pred_mask[z]),
                                    np.asarray(truth[z]), Path(out_dir) / f"hit_map_z{z}.png", title=f"z = {z}",
                                    reason=reason, voxel_size=voxel_size))
    return paths


def _radius_axis(ax, voxel_size, which: str = "x"):
    if not voxel_size:
        return
    v = float(np.cbrt(np.prod(voxel_size)))
    if which == "x":
        sec = ax.secondary_xaxis("top", functions=(lambda r: r * v, lambda n: n / v))
        sec.set_xlabel("equivalent radius (nm)")


def size_histogram(tables: dict, path, *, voxel_size=None) -> Path:
    """Histogram of equivalent radii, one series per table (e.g. ground truth and prediction)."""
    fig, ax = _figure(figsize=(4.6, 3.4))
    radii = [t["equivalent_radius_vox"] for t in tables.values()]
    top = max([float(r.max()) for r in radii if len(r)] + [2.0])
    bins = np.arange(0, np.ceil(top) + 0.5, 0.5)
    ax.hist(radii, bins=bins, label=[f"{k} ({len(t['label'])})" for k, t in tables.items()],
            color=SERIES[:len(radii)])
    ax.set_xlabel("equivalent radius (voxels)")
    ax.set_ylabel("objects")
    _radius_axis(ax, voxel_size)
    ax.legend(frameon=False)
    return _save(fig, path, "Equivalent-radius histograms (bins of 0.5 voxel; the number of objects in the "
                            "legend), as the paper's Fig. 6(a).")


def sphericity_figure(tables: dict, path, *, column="sphericity_voxel", voxel_size=None) -> Path:
    """Sphericity against equivalent radius, coloured by mean gray value (the paper's Fig. 6b, c)."""
    n = len(tables)
    fig, axes = _figure(1, n, figsize=(3.8 * n + 0.8, 3.4), squeeze=False)
    grays = np.concatenate([t["mean_gray"] for t in tables.values()] + [np.zeros(0)])
    finite = grays[np.isfinite(grays)]
    vmin, vmax = (np.percentile(finite, [2, 98]) if len(finite) else (0, 1))
    sc = None
    for ax, (name, t) in zip(axes[0], tables.items()):
        colours = t["mean_gray"] if np.isfinite(t["mean_gray"]).any() else None
        style = dict(c=colours, cmap="viridis", vmin=vmin, vmax=vmax) if colours is not None else \
            dict(color=SERIES[0])
        s = ax.scatter(t["equivalent_radius_vox"], t[column], s=8, **style)
        sc = s if colours is not None else sc
        if column == "sphericity_voxel":
            ax.axhline(2 / 3, color="0.4", lw=1, ls="--", label="2/3: voxel-face limit of a sphere")
            ax.legend(loc="lower right", fontsize=7, frameon=False)
        ax.set_xlabel("equivalent radius (voxels)")
        ax.set_ylabel("sphericity ψ (" + column.split("_")[1] + ")")
        ax.set_ylim(0, 1.05)
        ax.set_title(name)
        _radius_axis(ax, voxel_size)
    if sc is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), label="mean gray value")
    coloured = ", coloured by mean gray value," if sc is not None else " (one colour: no gray values measured)"
    return _save(fig, path, f"Sphericity (voxel faces) against equivalent radius{coloured} as the paper's "
                            "Fig. 6(b, c). Voxel faces bias ψ toward 2/3 for large spheres.",
                 marks=sum(len(t["equivalent_radius_vox"]) for t in tables.values()))


def orthoslices(image, mask, path, *, centre=None, title="", reason: str = "", voxel_size=None) -> Path:
    """Three orthogonal slices through ``centre`` with the mask outlined (Okabe-Ito orange)."""
    from skimage.segmentation import find_boundaries

    shape = image.shape
    centre = centre or tuple(s // 2 for s in shape)
    views = [("z", image[centre[0]], mask[centre[0]], 2), ("y", image[:, centre[1]], mask[:, centre[1]], 2),
             ("x", image[:, :, centre[2]], mask[:, :, centre[2]], 1)]
    widths = [shape[2], shape[2], shape[1]]
    fig, axes = _figure(1, 3, figsize=(10, 3.9), gridspec_kw={"width_ratios": widths})
    edge_rgba = np.array([0.902, 0.624, 0.0, 1.0], np.float32)
    for ax, (name, img, m, horiz) in zip(axes, views):
        aspect = 1.0  # the image's rows over its columns, in nm: z over x or y, y over x in the z plane
        if voxel_size:
            aspect = float(voxel_size[1 if name == "z" else 0]) / float(voxel_size[horiz])
        ax.imshow(img, cmap="gray", interpolation="nearest", aspect=aspect)
        edge = find_boundaries(np.asarray(m) > 0, mode="outer")
        overlay = np.zeros(edge.shape + (4,), np.float32)
        overlay[edge] = edge_rgba
        ax.imshow(overlay, interpolation="nearest", aspect=aspect)
        ax.set_title(f"{name} = {centre['zyx'.index(name)]}")
        ax.set_axis_off()
        add_scale_bar(ax, float(voxel_size[horiz]) if voxel_size else None, img.shape[1])
    if title:
        fig.suptitle(title)
    caption = "Orthogonal slices with the segmentation outlined in orange."
    if reason:
        caption += f" {reason}."
    return _save(fig, path, caption)


def fraction_along_z(fractions: dict, path, *, voxel_size=None, inside_sample: bool = False) -> Path:
    """The object volume fraction of each z slice; ``inside_sample``: the fractions are of the sample mask's
    voxels in each slice (axis label and caption say so)."""
    fig, ax = _figure(figsize=(5, 3.0))
    for name, f in fractions.items():
        z = np.arange(len(f))
        x = z * voxel_size[0] / 1000 if voxel_size else z
        ax.plot(x, 100 * np.asarray(f), label=name)
    if voxel_size:
        ax.set_xlabel("z (µm)")
        vz = float(voxel_size[0]) / 1000
        sec = ax.secondary_xaxis("top", functions=(lambda u: u / vz, lambda s: s * vz))
        sec.set_xlabel("z (slice)")
    else:
        ax.set_xlabel("z (slice)")
    ax.set_ylabel("object volume fraction in the sample (%)" if inside_sample else "object volume fraction (%)")
    ax.legend(frameon=False)
    where = "of the sample mask's voxels in each z slice" if inside_sample else "of each z slice (whole slice)"
    return _save(fig, path, f"Object volume fraction {where} along the pillar axis; every object voxel counts, "
                            "objects excluded from the table (border, small) included.")


def objects_3d(table: dict, shape, path, *, voxel_size=None, column: str = "equivalent_radius_nm",
               max_objects: int = MAX_3D_OBJECTS, rng=0) -> Path:
    """A 3D view of the objects: each a sphere of its equivalent radius at its centroid, coloured by radius,
    inside the analysed volume's box (three views: oblique, along z, from the side).

    Of more than ``max_objects`` objects, a random sample of ``max_objects`` (``rng``: a seed or a NumPy
    Generator) is drawn, and the title and caption say so; the colour scale spans all of them."""
    vs = np.asarray(voxel_size if voxel_size else (1.0, 1.0, 1.0), float)
    unit = 1000.0 if voxel_size else 1.0
    label = "µm" if voxel_size else "voxels"
    if column not in table or not voxel_size:
        column = "equivalent_radius_vox"
    values = np.asarray(table[column], float)
    total = len(values)
    scale = (np.nanpercentile(values, 2), np.nanpercentile(values, 98)) if total else (0.0, 1.0)
    pick = slice(None)
    if total > max_objects:
        pick = np.sort(np.random.default_rng(rng).choice(total, size=max_objects, replace=False))
        values = values[pick]
    c = np.stack([np.asarray(table[f"centroid_{a}"], float)[pick] for a in "zyx"], 1).reshape(-1, 3) * vs / unit
    r_vox = np.asarray(table["equivalent_radius_vox"], float)[pick]
    lower = -0.5 * vs / unit  # the volume's outer faces: voxel centres at 0 .. n-1 (as the centroids, napari)
    extent = (np.asarray(shape, float) - 0.5) * vs / unit
    plt = _plt()
    fig = plt.figure(figsize=(10.5, 3.8), layout="constrained")
    views = [(f"oblique (z up, {label})", 25, -55), ("along z (top, y down)", 90, -90),
             (f"side (y across, z up, {label})", 0, 0)]
    sc = None
    for i, (name, elev, azim) in enumerate(views):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        _box(ax, lower, extent)
        if len(values):
            # marker area ~ radius^2 in screen points, scaled to the box
            size = (r_vox / max(np.max(shape), 1) * 600) ** 2
            sc = ax.scatter(c[:, 2], c[:, 1], c[:, 0], c=values, cmap="viridis", s=np.maximum(size, 2),
                            depthshade=True, edgecolors="none", vmin=scale[0], vmax=scale[1])
        ax.tick_params(labelsize=6, pad=0)
        side, top = name.startswith("side"), name.startswith("along")
        for axis, hidden, labelled in (("x", side, not side), ("y", False, not side), ("z", top, side)):
            if hidden:  # the axis that points at the viewer: no ticks, no label
                getattr(ax, f"set_{axis}ticks")([])
            elif labelled:  # (3D axis labels that would collide with ticks are said in the title instead)
                getattr(ax, f"set_{axis}label")(f"{axis} ({label})", labelpad=2)
        ax.set_box_aspect(tuple((extent - lower)[::-1]), zoom=0.8)
        ax.view_init(elev=elev, azim=azim)
        if top:  # y down, as in the slices, hit maps and napari
            ax.invert_yaxis()
        ax.set_title(name)
    if sc is not None:
        fig.colorbar(sc, ax=fig.axes, shrink=0.7,
                     label="equivalent radius (nm)" if column.endswith("_nm") else "equivalent radius (voxels)")
    drawn = len(values)
    sample = ""
    if drawn < total:
        fig.suptitle(f"{drawn:,} of {total:,} objects drawn (a random sample)")
        sample = (" The sample is seeded (the same on every run) and keeps the figure readable and small; the "
                  "colour scale spans all the objects, and every object is in the objects table and the "
                  "histograms.")
    what = f"a random sample of {drawn:,} of the {total:,} objects" if sample else f"the {total:,} objects"
    return _save(fig, path, f"3D view of {what}: each drawn at its centroid with a size growing with its "
                            "equivalent radius and coloured by it, in the box of the analysed volume (oblique, top "
                            "and side views), so their spatial distribution shows." + sample, marks=3 * drawn)


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
