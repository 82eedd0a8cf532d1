"""A figure of a phantom beside the paper's Fig. 3: a slice, a zoom with label contours, gray-value histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .phantom import Phantom


def phantom_figure(phantom: Phantom, path, *, z: int | None = None, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import measure

    image, labels = phantom.image, phantom.labels
    if z is None:
        z = int(np.argmax(labels.sum(axis=(1, 2))))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax = axes[0]
    ax.imshow(image[z], cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"slice z = {z}")
    # zoom on the area with the most objects
    ys, xs = np.nonzero(labels[z])
    half = max(16, min(image.shape[1:]) // 8)
    cy, cx = (int(np.median(ys)), int(np.median(xs))) if len(ys) else (image.shape[1] // 2, image.shape[2] // 2)
    y0 = int(np.clip(cy - half, 0, image.shape[1] - 2 * half))
    x0 = int(np.clip(cx - half, 0, image.shape[2] - 2 * half))
    ax.add_patch(plt.Rectangle((x0, y0), 2 * half, 2 * half, fill=False, ec="yellow", ls="--"))
    ax.axis("off")
    ax = axes[1]
    ax.imshow(image[z, y0:y0 + 2 * half, x0:x0 + 2 * half], cmap="gray", vmin=0, vmax=255)
    for contour in measure.find_contours(labels[z, y0:y0 + 2 * half, x0:x0 + 2 * half].astype(float), 0.5):
        ax.plot(contour[:, 1], contour[:, 0], color="red", lw=1)
    ax.set_title("zoom, label contours in red")
    ax.axis("off")
    ax = axes[2]
    bins = np.arange(257)
    bg = np.bincount(image[labels == 0].ravel(), minlength=256)
    ob = np.bincount(image[labels == 1].ravel(), minlength=256)
    ax.plot(bins[:-1], bg, color="black", label=f"background ({bg.sum() / image.size:.2%} of voxels)")
    ax.set_xlabel("gray value")
    ax.set_ylabel("background voxels")
    ax2 = ax.twinx()
    ax2.plot(bins[:-1], ob, color="red", label=f"objects ({ob.sum() / image.size:.2%})")
    ax2.set_ylabel("object voxels", color="red")
    ax.set_xlim(0, 255)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="upper left", fontsize=8)
    ax.set_title("gray-value histograms (own scales, as the paper's Fig. 3a)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
