"""A figure of a phantom beside the paper's Fig. 3: a slice, a zoom with label contours, gray-value histograms.

Drawn with the report's helpers (:mod:`tomoseg.report.figures`): full page width (175 mm) with text of 7 pt
or more, PNG at 300 dpi with SVG and PDF beside it, scale bars, Okabe-Ito colours. ``tomoseg phantom ... --figure FILE.png`` draws it for the phantom it writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report.figures import (DOUBLE_COLUMN, OKABE_ITO, add_scale_bar, new_figure, pixel_aspect, save_figure,
                              styled)
from .phantom import Phantom


@styled
def phantom_figure(phantom: Phantom, path, *, z: int | None = None, title: str = "",
                   voxel_size=(29.33, 29.33, 29.33), captions: bool = False) -> Path:
    """The slice ``z`` (default: the one with the most object voxels), a zoom on its objects with the label
    contours, and the gray-value histograms of background and objects; ``voxel_size`` (nm, z y x) for the
    scale bars and the pixels' shape (y over x; None: no scale bars, square pixels). Written as ``path`` (PNG)
    with SVG and PDF beside it; with ``captions`` the caption goes into the folder's ``captions.json`` (off by
    default: the folder may be anyone's)."""
    from matplotlib.patches import Rectangle
    from skimage import measure

    image, labels = phantom.image, phantom.labels
    if z is None:
        z = int(np.argmax(labels.sum(axis=(1, 2))))
    pixel = float(voxel_size[2]) if voxel_size else None
    aspect = pixel_aspect(voxel_size)  # y over x: the slice and the zoom drawn to scale
    fig, axes = new_figure(1, 3, figsize=(DOUBLE_COLUMN, 2.6), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax = axes[0]
    ax.imshow(image[z], cmap="gray", vmin=0, vmax=255, aspect=aspect)
    ax.set_title(f"slice z = {z}")
    # zoom on the area with the most objects
    ys, xs = np.nonzero(labels[z])
    half = max(16, min(image.shape[1:]) // 8)
    half = min(half, min(image.shape[1:]) // 2)
    cy, cx = (int(np.median(ys)), int(np.median(xs))) if len(ys) else (image.shape[1] // 2, image.shape[2] // 2)
    y0 = int(np.clip(cy - half, 0, image.shape[1] - 2 * half))
    x0 = int(np.clip(cx - half, 0, image.shape[2] - 2 * half))
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), 2 * half, 2 * half, fill=False, ec=OKABE_ITO["yellow"], ls="--",
                           lw=0.8))
    ax.axis("off")
    add_scale_bar(ax, pixel, image.shape[2])
    ax = axes[1]
    ax.imshow(image[z, y0:y0 + 2 * half, x0:x0 + 2 * half], cmap="gray", vmin=0, vmax=255, aspect=aspect)
    for contour in measure.find_contours(labels[z, y0:y0 + 2 * half, x0:x0 + 2 * half].astype(float), 0.5):
        ax.plot(contour[:, 1], contour[:, 0], color=OKABE_ITO["orange"], lw=0.8)
    ax.set_title("zoom (dashed box), label contours")
    ax.axis("off")
    add_scale_bar(ax, pixel, 2 * half, fraction=0.3)
    ax = axes[2]
    bins = np.arange(257)
    bg = np.bincount(image[labels == 0].ravel(), minlength=256)
    ob = np.bincount(image[labels == 1].ravel(), minlength=256)
    ax.plot(bins[:-1], bg, color=OKABE_ITO["black"], label=f"background ({bg.sum() / image.size:.2%})")
    ax.set_xlabel("gray value")
    ax.set_ylabel("background voxels")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))
    lines = ax.get_legend_handles_labels()[0]
    if ob.any():
        ax2 = ax.twinx()
        ax2.plot(bins[:-1], ob, color=OKABE_ITO["vermillion"], ls="--",
                 label=f"objects ({ob.sum() / image.size:.2%})")
        ax2.set_ylabel("object voxels", color=OKABE_ITO["vermillion"])
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))
        lines += ax2.get_legend_handles_labels()[0]
    ax.set_xlim(0, 255)
    # the legend in a band of its own above the curves (it lay over the spike at 34 and the objects' curve; review
    # PH10); with no objects, no curve on an axis of its own that would show nothing, but the legend says so
    for axis, counts in ((ax, bg), (ax2, ob)) if ob.any() else ((ax, bg),):
        axis.set_ylim(top=1.5 * max(int(counts.max()), 1))
    ax.legend(lines, [h.get_label() for h in lines], loc="upper right", frameon=False,
              title=None if ob.any() else "no object voxels")
    # above the axes' exponent ("1e5"), which sits at the top corners (review PH10)
    ax.set_title("gray values (own scales, as Fig. 3a)", pad=12)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, f"Phantom slice z = {z} (left), a zoom on its objects with the label contours "
                                  "in orange (middle), and the gray-value histograms of background (solid, left "
                                  "axis) and object voxels (dashed, right axis) of the whole volume, each on its "
                                  "own scale, as the paper's Fig. 3(a).", captions=captions)
