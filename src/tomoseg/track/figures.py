"""Figures of a tracking: radius before vs after, volume change, and where objects appeared or vanished."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tracking import group_totals

COLOURS = {"persisting": "#4c72b0", "appeared": "#2ca02c", "vanished": "#d62728", "merged": "#9467bd",
           "split": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _kept(table) -> np.ndarray:
    return (table["edge"] == 0) & (table["small"] == 0)


def radius_figure(table: dict, path, *, unit: str = "nm") -> Path:
    """Equivalent radius after against before: persisting objects one by one, merges and splits by group."""
    plt = _plt()
    col = "radius_nm" if unit == "nm" else "radius_vox"
    keep = _kept(table)
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    hi = 1.0
    for status in ("persisting", "merged", "split"):
        sel = keep & (table["status"] == status)
        if not sel.any():
            continue
        if status == "persisting":
            rb, ra = table[f"before_{col}"][sel], table[f"after_{col}"][sel]
        else:  # one point per group: radius of a sphere of the group's total volume
            _, vb, va = group_totals(table, sel, "volume_nm3" if unit == "nm" else "volume_vox")
            rb, ra = np.cbrt(3 * vb / (4 * np.pi)), np.cbrt(3 * va / (4 * np.pi))
        ax.scatter(rb, ra, s=14, alpha=0.75, color=COLOURS[status], label=f"{status} ({len(rb)})")
        hi = max(hi, float(np.nanmax(rb)), float(np.nanmax(ra)))
    ax.plot([0, hi * 1.05], [0, hi * 1.05], color="gray", lw=1, ls="--", label="no change")
    ax.set_xlim(0, hi * 1.05)
    ax.set_ylim(0, hi * 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel(f"equivalent radius before ({unit})")
    ax.set_ylabel(f"equivalent radius after ({unit})")
    ax.set_title("Radius after vs before\n(merges and splits: one point per group, total volume)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def volume_change_histogram(table: dict, path) -> Path:
    """Histogram of the relative volume change of persisting objects (%)."""
    plt = _plt()
    sel = _kept(table) & (table["status"] == "persisting")
    dv = 100 * table["delta_volume_rel"][sel]
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(dv):
        lo, hi = np.floor(np.nanmin(dv) / 10) * 10, np.ceil(np.nanmax(dv) / 10) * 10
        ax.hist(dv, bins=np.arange(min(lo, -10), max(hi, 10) + 5, 5), color=COLOURS["persisting"], edgecolor="white")
    ax.axvline(0, color="gray", ls="--", lw=1)
    ax.set_xlabel("volume change of persisting objects (%)")
    ax.set_ylabel("objects")
    ax.set_title(f"Volume change, {int(sel.sum())} persisting objects (off the edge, >= min voxels)", fontsize=10)
    return _save(fig, path)


def view_aspects(voxel_size=None) -> tuple[float, float]:
    """Height over width of one voxel in the top view (y over x) and the side view (z over x), so that both
    views are drawn to scale in nm."""
    vz, vy, vx = (float(v) for v in voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    return vy / vx, vz / vx


def change_map(table: dict, path, *, shape=None, matrix=None, image=None, voxel_size=None) -> Path:
    """Where objects appeared, vanished, merged and split: top view (y, x) and side view (z, x) of the
    pillar in the AFTER frame (vanished objects carried there through the transform); behind them, the
    AFTER ``image``'s middle slices when given. ``shape``: the AFTER scan's (the extent drawn);
    ``voxel_size``: to draw the views to scale."""
    from .registration import apply

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), gridspec_kw={"width_ratios": [1, 1]})
    m = np.eye(4) if matrix is None else np.asarray(matrix, float)
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
        edge = table["edge"][sel] == 1
        pts[status] = (p, edge)
    markers = {"persisting": ".", "appeared": "P", "vanished": "X", "merged": "D", "split": "^"}
    if image is not None:
        z, y = image.shape[0] // 2, image.shape[1] // 2
        axes[0].imshow(np.asarray(image[z]), cmap="gray", alpha=0.45)
        axes[1].imshow(np.asarray(image[:, y]), cmap="gray", alpha=0.45)
    aspects = view_aspects(voxel_size)
    for ax, (i, j), title, aspect in ((axes[0], (2, 1), "top view (x, y)", aspects[0]),
                                      (axes[1], (2, 0), "side view (x, z)", aspects[1])):
        for status, (p, edge) in pts.items():
            size = 10 if status == "persisting" else 46
            alpha = 0.6 if status == "persisting" else 0.9
            ax.scatter(p[~edge, i], p[~edge, j], s=size, marker=markers[status], color=COLOURS[status], alpha=alpha,
                       label=f"{status} ({int((~edge).sum())})")
            if edge.any():
                ax.scatter(p[edge, i], p[edge, j], s=size, marker=markers[status], facecolor="none",
                           edgecolor=COLOURS[status], alpha=0.5, lw=0.6)
        if shape is not None:
            ax.set_xlim(0, shape[2])
            ax.set_ylim(shape[j], 0) if j == 1 else ax.set_ylim(shape[0], 0)
        ax.set_aspect(aspect)
        ax.set_xlabel("x (voxels)")
        ax.set_ylabel("y (voxels)" if j == 1 else "z (voxels)")
        ax.set_title(title, fontsize=10)
    if pts:
        axes[0].legend(fontsize=8, loc="upper right", framealpha=0.8)
    else:
        axes[0].text(0.5, 0.5, "no objects", transform=axes[0].transAxes, ha="center")
    fig.suptitle("Changes in the pillar, all objects projected (AFTER frame; hollow markers: at the edge of a field "
                 "of view)" + ("; behind: the AFTER scan's middle slices" if image is not None else ""), fontsize=10)
    return _save(fig, path)
