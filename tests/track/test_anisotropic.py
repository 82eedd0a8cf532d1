"""Tracking with non-cubic voxels: edges, angles and the phantom's motion in physical space (nm)."""

import numpy as np

from tomoseg.track import track

VS = (60.0, 30.0, 30.0)  # nm: voxels twice as long along z


def ball_nm(shape, centre_vox, radius_nm, voxel_size=VS):
    """A ball of a physical radius in a grid of non-cubic voxels."""
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * v) ** 2 for g, c, v in zip(grid, centre_vox, voxel_size))
    return d2 <= radius_nm ** 2


def test_edge_test_uses_each_axis_own_voxels():
    """Balls of 240 nm reach 4 voxels along z and 8 along y and x. Ball 1, centred 6 voxels from the bottom,
    lies 1 voxel (the margin) inside it: not at the edge (before: 6.35 voxels, the equivalent radius in voxels,
    on every axis, so it was flagged and left out of the counts); ball 2, 8.5 voxels from the y border, reaches
    within 0.5 voxel of it: at the edge (before: not flagged); ball 3 well inside."""
    shape = (32, 64, 64)
    labels = np.zeros(shape, np.uint32)
    for k, centre in enumerate([(6, 32, 32), (16, 8.5, 32), (20, 40, 40)], start=1):
        labels[ball_nm(shape, centre, 240.0)] = k
    image = np.where(labels > 0, 200, 50).astype(np.uint8)
    result = track(image, image, before_labels=labels, after_labels=labels, voxel_size=VS, transform=np.eye(4))
    m = result.matches
    edge = dict(zip(m["before_label"].tolist(), m["edge"].tolist()))
    assert edge == {1: 0, 2: 1, 3: 0}
    assert result.summary["objects_by_status"]["persisting"]["events"] == 2
