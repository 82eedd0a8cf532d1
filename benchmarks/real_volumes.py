"""A model on real CT volumes without labels: recall of a label-free dark-blob reference, flooding, overlays.

The two volumes the default-model issue names can be fetched by anyone (not committed: their licences
differ), e.g.::

    pip download --no-deps qim3d==1.5.3 spam==0.9.1 -d /tmp/real
    unzip -j /tmp/real/qim3d-*.whl qim3d/examples/cement_128x128x128.tif -d /tmp/real
    unzip -j /tmp/real/spam-*.whl spam/data/concrete/concrete_x-ray-bin16.tif -d /tmp/real
    python benchmarks/real_volumes.py /tmp/real/cement_128x128x128.tif /tmp/real/concrete_x-ray-bin16.tif \
        --model v1=default --figures docs/figures

**Reference ("visible dark pores")**: voxels darker than their neighbourhood (Gaussian σ = 1 smoothing
minus a σ = 10 background) by more than ``k`` robust noise s.d. (MAD of the image minus its smoothing),
grouped into 3D components of at least ``min_voxels``. It is what an observer would call a visible dark
blob, not ground truth: it misses faint objects and counts dark texture. Reported per model: the share of
reference blobs the mask touches (recall of visible pores), the share of the model's objects that hold no
reference voxel (detections without a dark voxel), the mask's share of the volume, and its largest share
of any of the 3 first or last slices (flooded end slices).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from _report import emit

import numpy as np
from scipy import ndimage


def dark_blobs(image: np.ndarray, *, k: float = 3.0, min_voxels: int = 4) -> tuple[np.ndarray, int]:
    """Labels of the label-free reference blobs, and their number."""
    img = image.astype(np.float32)
    smooth = ndimage.gaussian_filter(img, 1.0)
    background = ndimage.gaussian_filter(img, 10.0)
    noise = 1.4826 * float(np.median(np.abs(img - smooth - np.median(img - smooth))))
    dark = (background - smooth) > k * max(noise, 1e-6)
    labels, n = ndimage.label(dark)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1)
    return relabel[labels], int(keep.sum())


def interior(image: np.ndarray, erode: int = 4) -> np.ndarray:
    """The sample's cross-section as a prism along z: Otsu on the mean projection, the largest component,
    holes filled, eroded by ``erode`` voxels (the dark edge of the surroundings is not a pore)."""
    from skimage.filters import threshold_otsu

    proj = image.astype(np.float32).mean(axis=0)
    inside = proj > threshold_otsu(proj)
    lab, n = ndimage.label(inside)
    if n:
        inside = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    if not inside.any() or proj[~inside].mean() > 0.8 * proj[inside].mean():
        return np.ones(image.shape, bool)  # no clear surroundings (the sample fills the field)
    inside = ndimage.binary_erosion(ndimage.binary_fill_holes(inside), iterations=erode)
    return np.broadcast_to(inside, image.shape)


def score(mask: np.ndarray, ref: np.ndarray, n_ref: int) -> dict:
    hit = np.unique(ref[mask & (ref > 0)])
    objects, n_obj = ndimage.label(mask)
    with_dark = np.unique(objects[(ref > 0) & (objects > 0)])
    ends = [mask[i].mean() for i in (0, 1, 2, -3, -2, -1)]
    return {"reference_blobs": n_ref, "recall_visible": len(hit) / max(n_ref, 1), "objects": n_obj,
            "objects_without_dark_voxel": (n_obj - len(with_dark)) / max(n_obj, 1),
            "mask_share": float(mask.mean()), "max_end_slice_share": float(max(ends))}


def overlay(image, mask, ref, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = [image.shape[0] // 2, 0]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2), layout="constrained")
    for ax, z in zip(axes, zs):
        ax.imshow(image[z], cmap="gray")
        ax.contour(mask[z], levels=[0.5], colors="#E69F00", linewidths=0.8)  # model: orange
        ax.contour(ref[z] > 0, levels=[0.5], colors="#56B4E9", linewidths=0.6)  # reference: sky blue
        ax.set_title(f"z = {z}" + (" (middle)" if z else " (first slice: flooding shows here)"), fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{title}: model mask (orange) and dark-blob reference (blue)", fontsize=10)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("volumes", nargs="+", help="real CT volumes (any format tomoseg reads)")
    ap.add_argument("--model", action="append", metavar="NAME=PATH", help="model (repeat); default: v1=default")
    ap.add_argument("--k", type=float, default=3.0, help="reference contrast in noise s.d. (default 3)")
    ap.add_argument("--figures", help="write overlays (PNG) into this folder")
    ap.add_argument("--out", default="benchmarks/results/real_volumes.md")
    args = ap.parse_args(argv)
    import tomoseg
    from tomoseg.inference import predict
    from tomoseg.inference.engine import to_uint8

    models = {}
    for entry in args.model or ["v1=default"]:
        name, _, path = entry.rpartition("=")
        models[name or path] = tomoseg.load_model(None if path == "default" else path)
    rows = []
    for vol_path in args.volumes:
        image = tomoseg.read_volume(vol_path)
        inside = interior(image)
        ref, _ = dark_blobs(image, k=args.k)
        ref, n_ref = ndimage.label((ref > 0) & inside)
        for name, model in models.items():
            full = to_uint8(predict(image, model)) > 127
            mask = full & inside
            row = score(mask, ref, n_ref)
            row["max_end_slice_share"] = float(max(full[i].mean() for i in (0, 1, 2, -3, -2, -1)))
            rows.append({"volume": Path(vol_path).name, "model": name, **row})
            if args.figures:
                Path(args.figures).mkdir(parents=True, exist_ok=True)
                overlay(image, mask, ref, Path(args.figures) / f"real_{Path(vol_path).stem}_{name}.png",
                        f"{Path(vol_path).name}, {name}")
            print(rows[-1], file=sys.stderr)
    table = ("| volume | model | reference blobs (>= 4 vox) | recall of visible pores | model objects | "
             "objects without a dark voxel | mask share | largest end-slice share |\n"
             "|---|---|---:|---:|---:|---:|---:|---:|\n")
    table += "".join(f"| {r['volume']} | {r['model']} | {r['reference_blobs']} | {r['recall_visible']:.2f} | "
                     f"{r['objects']} | {r['objects_without_dark_voxel']:.2f} | {r['mask_share']:.3f} | "
                     f"{r['max_end_slice_share']:.2f} |\n" for r in rows)
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
