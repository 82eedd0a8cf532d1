"""Figures of an evaluation against a ground truth: the normalized confusion matrix (the paper's Fig. 4) and hit
maps of the slices worth one (Fig. 5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_panels import add_scale_bar, gray_range, pixel_aspect
from .layout import DOUBLE_COLUMN, SINGLE_COLUMN
from .style import MIN_FONT_PT, format_fraction, new_figure, save_figure, styled

HIT_COLOURS = {"TP": (1, 1, 1), "TN": (0, 0, 0), "FP": (0.835, 0.369, 0.0), "FN": (0.337, 0.706, 0.914)}

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

