"""Which planes the orthoslice figure shows, and which outlines in them belong to objects not counted.

The z plane is the one crossed by the most kept objects' volume, the y and x planes go through the centroid
of the largest kept object in it (planes through the volume's centre often held no object at all), and an
object cut by a plane is told kept or not counted from the objects table alone (no label image is needed):
a connected piece of the mask in a plane belongs to the one object whose bounding box holds it.
"""

from __future__ import annotations

import numpy as np


def _kept(objects: dict, kept_labels) -> np.ndarray:
    return np.isin(np.asarray(objects["label"]), np.asarray(kept_labels))


def choose_planes(kept: dict, shape, fraction_along_z=None) -> tuple[tuple[int, int, int], str]:
    """The centre ``(z, y, x)`` of the orthoslices and the sentence that says why (for the caption).

    ``kept``: the table of the objects counted. z: the slice crossed by the most of their volume (each
    object's volume spread evenly over the slices its bounding box spans); y and x: the centroid of the
    largest of them that z crosses. Without kept objects, z is the slice with the most object voxels in
    ``fraction_along_z`` (objects not counted) and y, x the volume's centre.

    >>> t = {"label": np.array([1, 2]), "volume_vox": np.array([8, 100]), "bbox_z0": np.array([0, 4]),
    ...      "bbox_z1": np.array([2, 8]), "centroid_y": np.array([3.0, 10.2]), "centroid_x": np.array([3.0, 7.6])}
    >>> choose_planes(t, (10, 20, 20))[0]
    (4, 10, 8)
    """
    nz = int(shape[0])
    n = len(kept["label"])
    if not n:
        if fraction_along_z is not None and np.isfinite(fraction_along_z).any() and np.nanmax(fraction_along_z) > 0:
            z = int(np.nanargmax(fraction_along_z))
            why = f"no object is counted; z = {z} is the slice with the most voxels of the objects not counted"
        else:
            z, why = nz // 2, "no object is counted; the planes go through the volume's centre"
        return (z, int(shape[1]) // 2, int(shape[2]) // 2), why
    z0 = np.asarray(kept["bbox_z0"], np.int64)
    z1 = np.asarray(kept["bbox_z1"], np.int64)
    volume = np.asarray(kept["volume_vox"], np.float64)
    per_slice = np.zeros(nz + 1)
    np.add.at(per_slice, z0, volume / np.maximum(z1 - z0, 1))
    np.add.at(per_slice, z1, -volume / np.maximum(z1 - z0, 1))
    z = int(np.argmax(np.cumsum(per_slice)[:nz]))
    crossing = np.flatnonzero((z0 <= z) & (z < z1))
    i = crossing[np.argmax(volume[crossing])]
    y = int(np.clip(round(float(kept["centroid_y"][i])), 0, shape[1] - 1))
    x = int(np.clip(round(float(kept["centroid_x"][i])), 0, shape[2] - 1))
    label = int(kept["label"][i])
    return (z, y, x), (f"z = {z} is the slice crossed by the most volume of the counted objects ({len(crossing):,} "
                       f"of them); y and x go through the centroid of the largest of them (label {label}, "
                       f"{int(volume[i]):,} voxels)")


def excluded_in_plane(objects: dict, kept_labels, *, connectivity: int = 26):
    """A function ``(axis, index, mask_plane) -> bool plane``: the part of a plane of the mask that belongs to
    objects of ``objects`` (every object, with bounding boxes) whose label is not in ``kept_labels``.

    Each connected piece of the mask in the plane belongs to one object, found as the object whose bounding box
    holds the piece (the smallest such box where several do). For :func:`tomoseg.report.figures.orthoslices`."""
    from scipy import ndimage

    kept = _kept(objects, kept_labels)
    if kept.all():
        return lambda axis, index, plane: np.zeros(np.shape(plane), bool)
    lo = np.stack([np.asarray(objects[f"bbox_{a}0"], np.int64) for a in "zyx"], 1)
    hi = np.stack([np.asarray(objects[f"bbox_{a}1"], np.int64) for a in "zyx"], 1)
    box_volume = np.prod(hi - lo, axis=1)
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 6 else 2)

    def excluded(axis: int, index: int, plane) -> np.ndarray:
        plane = np.asarray(plane, bool)
        out = np.zeros(plane.shape, bool)
        crossing = np.flatnonzero((lo[:, axis] <= index) & (index < hi[:, axis]))
        if not len(crossing) or kept[crossing].all():
            return out
        others = [a for a in range(3) if a != axis]  # the plane's rows and columns
        pieces, _ = ndimage.label(plane, structure=structure)
        for k, sl in enumerate(ndimage.find_objects(pieces), start=1):
            if sl is None:
                continue
            holds = np.ones(len(crossing), bool)
            for dim, a in enumerate(others):
                holds &= (lo[crossing, a] <= sl[dim].start) & (sl[dim].stop <= hi[crossing, a])
            owners = crossing[holds]
            if len(owners) and not kept[owners[np.argmin(box_volume[owners])]]:
                out[sl] |= pieces[sl] == k
        return out

    return excluded
