"""Figures a scientist would put in a paper (matplotlib, written as PNG).

Like the paper's Figs. 4–6: a normalized confusion matrix, hit maps (TP white,
TN black, FP red, FN blue), size histograms of prediction and ground truth,
sphericity against radius coloured by mean gray value; and orthogonal slices
with the mask overlaid, and the volume fraction along z.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HIT_COLOURS = {"TP": (1, 1, 1), "TN": (0, 0, 0), "FP": (0.9, 0.1, 0.1), "FN": (0.15, 0.35, 1.0)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def confusion_figure(cm, path) -> Path:
    plt = _plt()
    m = cm.normalized()
    counts = np.array([[cm.tp, cm.fn], [cm.fp, cm.tn]])
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    names = [["TP", "FN"], ["FP", "TN"]]
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{names[i][j]}\n{m[i, j]:.3f}\n({counts[i, j]:,} vox)", ha="center", va="center",
                    color="white" if m[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks([0, 1], ["object", "background"])
    ax.set_yticks([0, 1], ["object", "background"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("normalized confusion matrix")
    return _save(fig, path)


def hit_map(pred_slice: np.ndarray, truth_slice: np.ndarray) -> np.ndarray:
    """RGB image: TP white, TN black, FP red, FN blue (the paper's Fig. 5)."""
    p, t = pred_slice.astype(bool), truth_slice.astype(bool)
    rgb = np.zeros(p.shape + (3,), np.float32)
    for key, sel in (("TP", p & t), ("FP", p & ~t), ("FN", ~p & t)):
        rgb[sel] = HIT_COLOURS[key]
    return rgb


def hit_map_figure(image_slice, pred_slice, truth_slice, path, *, title="") -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    if image_slice is not None:
        axes[0].imshow(image_slice, cmap="gray")
        axes[0].set_title("image")
    axes[0].axis("off")
    axes[1].imshow(hit_map(pred_slice, truth_slice), interpolation="nearest")
    axes[1].set_title("hit map: TP white, FP red, FN blue")
    axes[1].axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def size_histogram(tables: dict, path, *, voxel_size=None) -> Path:
    """Histogram of equivalent radii, one bar series per table (e.g. ground truth and prediction)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    radii = [t["equivalent_radius_vox"] for t in tables.values()]
    top = max([float(r.max()) for r in radii if len(r)] + [2.0])
    bins = np.arange(0, np.ceil(top) + 0.5, 0.5)
    ax.hist(radii, bins=bins, label=[f"{k} ({len(t['label'])})" for k, t in tables.items()])
    ax.set_xlabel("equivalent radius (voxels)")
    ax.set_ylabel("objects")
    if voxel_size:
        v = float(np.cbrt(np.prod(voxel_size)))
        sec = ax.secondary_xaxis("top", functions=(lambda r: r * v, lambda n: n / v))
        sec.set_xlabel("equivalent radius (nm)")
    ax.legend()
    return _save(fig, path)


def sphericity_figure(tables: dict, path, *, column="sphericity_voxel") -> Path:
    """Sphericity against equivalent radius, coloured by mean gray value (the paper's Fig. 6b, c)."""
    plt = _plt()
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    grays = np.concatenate([t["mean_gray"] for t in tables.values()] + [np.zeros(0)])
    finite = grays[np.isfinite(grays)]
    vmin, vmax = (np.percentile(finite, [2, 98]) if len(finite) else (0, 1))
    for ax, (name, t) in zip(axes[0], tables.items()):
        colours = t["mean_gray"] if np.isfinite(t["mean_gray"]).any() else None
        style = dict(c=colours, cmap="viridis", vmin=vmin, vmax=vmax) if colours is not None else {}
        sc = ax.scatter(t["equivalent_radius_vox"], t[column], s=10, **style)
        if column == "sphericity_voxel":
            ax.axhline(2 / 3, color="gray", lw=1.5, label="2/3: voxel-face limit of a sphere")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel("equivalent radius (voxels)")
        ax.set_ylabel("sphericity ψ (" + column.split("_")[1] + ")")
        ax.set_ylim(0, 1.05)
        ax.set_title(name)
        if colours is not None:
            fig.colorbar(sc, ax=ax, label="mean gray value")
    return _save(fig, path)


def orthoslices(image, mask, path, *, centre=None, title="") -> Path:
    """Three orthogonal slices through ``centre`` with the mask outlined in red."""
    plt = _plt()
    from skimage.segmentation import find_boundaries

    shape = image.shape
    centre = centre or tuple(s // 2 for s in shape)
    views = [("z", image[centre[0]], mask[centre[0]]), ("y", image[:, centre[1]], mask[:, centre[1]]),
             ("x", image[:, :, centre[2]], mask[:, :, centre[2]])]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8))
    for ax, (name, img, m) in zip(axes, views):
        ax.imshow(img, cmap="gray")
        edge = find_boundaries(np.asarray(m) > 0, mode="outer")
        overlay = np.zeros(edge.shape + (4,), np.float32)
        overlay[edge] = (1, 0.15, 0.15, 1)
        ax.imshow(overlay, interpolation="nearest")
        ax.set_title(f"{name} = {centre['zyx'.index(name)]}")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def fraction_along_z(fractions: dict, path, *, voxel_size=None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, f in fractions.items():
        ax.plot(np.arange(len(f)), 100 * np.asarray(f), label=name)
    ax.set_xlabel("z (slice)")
    ax.set_ylabel("object volume fraction (%)")
    ax.legend()
    return _save(fig, path)
