"""Dark regions much larger than the model's objects that hold several of them: a large pore found in pieces.

The network finds objects of 1-8 voxels in radius. A pore of 14 voxels with texture inside (cement, review S8)
comes out as several small, round objects, each counted and measured: the count rises, the mean radius falls,
and nothing in the table shows it. With the gray image, :func:`large_dark_regions` finds the regions of the
scan as dark as the objects (the gray value half way between the objects' and the matrix's around them, on the
low-resolution copy the automatic sample mask uses: one slice in ``f``, ``f`` x ``f`` block means) whose
equivalent radius exceeds :data:`R_MIN_VOX`, away from the volume's border (the surroundings of a pillar touch
it), and lists those that hold two or more kept objects, or one covering less than half of the region.

A heuristic, for a warning: it does not change the table. No PyTorch here.
"""

from __future__ import annotations

import numpy as np

R_MIN_VOX = 10.0  # equivalent radius (voxels) beyond the model's objects (1-8 voxels)
SHOWN = 5         # regions described in the record (the largest share of objects first)


def large_dark_regions(intensity, table: dict, *, r_min: float = R_MIN_VOX, chunks=None) -> dict | None:
    """The large dark regions of ``intensity`` (a volume or array: the gray image) that hold kept objects of
    ``table`` (columns ``centroid_*``, ``equivalent_radius_vox``, ``mean_gray``, ``volume_vox``, ``label``)
    found in pieces; None where the table has no objects or no gray values. The record: ``regions`` (how many),
    ``objects`` (the kept objects inside them), ``largest`` (up to :data:`SHOWN` regions: equivalent radius and
    centre in voxels, objects, their labels, the share of the region's voxels the objects cover), the
    ``threshold`` gray value and the ``factor`` of the low-resolution copy."""
    from scipy import ndimage

    from ..sample_mask import downsample, mask_factor

    gray = np.asarray(table.get("mean_gray", []), np.float64)
    if not len(gray) or not np.isfinite(gray).any():
        return None
    shape = tuple(int(s) for s in intensity.shape)
    f = mask_factor(shape)
    low = downsample(intensity, f, chunks)
    cells = np.array(low.shape)
    centres = np.stack([np.asarray(table[f"centroid_{a}"], np.float64) for a in "zyx"], 1)
    radius = np.asarray(table["equivalent_radius_vox"], np.float64)

    def at(points):  # the low-resolution cell of each point (voxels), clipped to the copy
        return tuple(np.clip((points // f).astype(np.int64), 0, cells - 1).T)

    # the matrix around the objects: six points at twice their radius and 3 voxels more from each centroid
    steps = np.concatenate([np.eye(3), -np.eye(3)])
    around = (centres[:, None, :] + steps[None] * (2 * radius + 3)[:, None, None]).reshape(-1, 3)
    matrix = float(np.median(low[at(around)]))
    objects = float(np.nanmedian(gray))
    threshold = (objects + matrix) / 2
    dark = low < threshold if objects < matrix else low > threshold
    regions, _ = ndimage.label(dark)
    voxels = np.bincount(regions.ravel()).astype(np.float64) * f**3
    large = (3 * voxels / (4 * np.pi)) ** (1 / 3) > r_min
    large[0] = False
    for axis in range(3):  # the surroundings touch the border; a pore cut by it is measured as cut anyway
        for end in (0, -1):
            large[np.take(regions, end, axis=axis)] = False
    region_of = regions[at(centres)]
    rows = np.flatnonzero(large[region_of])  # the objects in a large region, grouped by region
    rows = rows[np.argsort(region_of[rows], kind="stable")]
    ids, starts, counts = np.unique(region_of[rows], return_index=True, return_counts=True)
    volume = np.asarray(table["volume_vox"], np.float64)
    share = np.add.reduceat(volume[rows], starts) / voxels[ids] if len(rows) else np.zeros(0)
    pieces = (counts >= 2) | (share < 0.5)
    radii = (3 * voxels[ids] / (4 * np.pi)) ** (1 / 3)
    order = np.flatnonzero(pieces)[np.lexsort((-radii[pieces], -counts[pieces]))]  # most objects first
    shown = order[:SHOWN]
    middles = ndimage.center_of_mass(dark, regions, ids[shown]) if len(shown) else []
    labels = np.asarray(table["label"])
    largest = [{"equivalent_radius_vox": round(float(radii[k]), 1),
                "centre_vox": [round(float(c) * f + (f - 1) / 2) for c in middle], "objects": int(counts[k]),
                "labels": [int(v) for v in labels[rows[starts[k]:starts[k] + counts[k]]]],
                "segmented_share": round(float(share[k]), 2)} for k, middle in zip(shown, middles)]
    return {"regions": int(pieces.sum()), "objects": int(counts[pieces].sum()), "largest": largest,
            "threshold": threshold, "objects_gray": objects, "matrix_gray": matrix, "factor": f,
            "min_radius_vox": r_min}


def large_regions_warning(record: dict | None, kept: int) -> str | None:
    """The warning for :func:`large_dark_regions`' record, or None where it found nothing."""
    if not record or not record["regions"]:
        return None
    top = record["largest"][0]
    where = ", ".join(str(c) for c in top["centre_vox"])
    return (f"{record['objects']} of the {kept} kept objects lie in {record['regions']} dark region(s) larger than "
            f"the objects the model finds (equivalent radius over {record['min_radius_vox']:g} voxels; the first, "
            f"of radius {top['equivalent_radius_vox']:g} voxels at z, y, x = {where}, holds {top['objects']} objects "
            f"covering {top['segmented_share']:.0%} of it): a large pore found in pieces? They raise the count and "
            "lower the mean radius. Look at those regions (summary.json's large_dark_regions lists them and the "
            "objects' labels); if they are large pores, measure them by a gray threshold, or fine-tune on them")
