"""The edge-corrected number density (Miles–Lantuéjoul): objects touching the border are left out of the count,
which biases the plain density low; weighting each kept object by the inverse of its chance to be counted gives
an unbiased density where the analysed region is a box (the whole volume or a ``segment --roi`` box)."""

import numpy as np
import pytest

from tomoseg.objects import AnalysisOptions, analyze
from tomoseg.objects.measure import edge_weights


def _balls(shape, wanted, rng, min_distance=9.0):
    """Balls of radius 2-4 voxels, centres placed at random (no two closer than ``min_distance``) over a region
    5 voxels larger than the volume on every side, so the volume is a window on a stationary pattern; and the
    true density: the centres inside the volume per 10^6 voxels."""
    shape = np.asarray(shape)
    centres = np.empty((0, 3))
    while len(centres) < wanted:
        c = rng.uniform(-5, shape + 5)
        if len(centres) and np.min(np.linalg.norm(centres - c, axis=1)) < min_distance:
            continue
        centres = np.vstack([centres, c])
    vol = np.zeros(tuple(shape), np.uint8)
    grid = np.ogrid[-5:6, -5:6, -5:6]
    for c in centres:
        whole = np.round(c).astype(int)
        ball = sum((g - d) ** 2 for g, d in zip(grid, c - whole)) <= rng.uniform(2, 4) ** 2
        lo, hi = whole - 5, whole + 6
        a, b = np.maximum(lo, 0), np.minimum(hi, shape)
        if np.any(b <= a):
            continue
        vol[tuple(map(slice, a, b))] |= ball[tuple(map(slice, a - lo, b - lo))]
    inside = np.all((centres >= -0.5) & (centres < shape - 0.5), axis=1).sum()
    return vol, inside / shape.prod() * 1e6


def test_weights_are_the_inverse_chance_of_an_object_to_be_counted():
    # a box of 10 x 20 x 30: an object of bounding box 3 x 1 x 1 can start at 6, 18 and 28 places of 10, 20 and
    # 30 without touching a face; one reaching a face cannot be counted, and is refused
    table = {"label": np.array([1, 2]), "bbox_z0": np.array([1, 2]), "bbox_z1": np.array([4, 3]),
             "bbox_y0": np.array([1, 5]), "bbox_y1": np.array([2, 6]), "bbox_x0": np.array([1, 1]),
             "bbox_x1": np.array([2, 2])}
    w = edge_weights(table, (slice(0, 10), slice(0, 20), slice(0, 30)))
    assert w == pytest.approx([10 / 6 * 20 / 18 * 30 / 28, 10 / 8 * 20 / 18 * 30 / 28])
    assert edge_weights(table, ((5, 15), (0, 20), (0, 30)))[0] == pytest.approx(10 / 6 * 20 / 18 * 30 / 28)
    table["bbox_x1"] = np.array([30, 2])  # reaches the face at x = 29
    with pytest.raises(ValueError, match="touches a face"):
        edge_weights(table, (slice(0, 10), slice(0, 20), slice(0, 30)))


def test_the_corrected_density_is_unbiased_where_the_plain_one_is_low():
    ratios = []
    for seed in (0, 1):
        vol, truth = _balls((48, 128, 128), 450, np.random.default_rng(seed))
        s = analyze(vol, voxel_size=(10.0, 10.0, 10.0)).summary
        ratios.append((s["number_density_per_mvox"] / truth, s["number_density_corrected_per_mvox"] / truth))
        # voxels of 10 nm: 10^6 voxels are 1 µm³, so the two densities are equal
        assert s["number_density_corrected_per_um3"] == pytest.approx(s["number_density_corrected_per_mvox"])
    plain, corrected = np.mean(ratios, axis=0)
    assert plain < 0.82            # about a quarter of the objects touch the border of this thin volume
    assert corrected == pytest.approx(1.0, abs=0.06)


def test_no_correction_where_the_region_is_no_box_or_the_border_is_kept():
    vol, _ = _balls((32, 64, 64), 60, np.random.default_rng(2))
    mask = np.zeros(vol.shape, np.uint8)
    mask[:, 8:56, 8:56] = 1
    mask[:, :16, :16] = 0  # an L-shaped prism: no box
    s = analyze(vol, sample_mask=mask).summary
    assert s["number_density_corrected_per_mvox"] is None and s["number_density_corrected_per_um3"] is None
    s = analyze(vol, options=AnalysisOptions(exclude_border=False)).summary
    assert s["number_density_corrected_per_mvox"] is None
    s = analyze(vol).summary  # no voxel size: per 10^6 voxels only
    assert s["number_density_corrected_per_um3"] is None and s["number_density_corrected_per_mvox"] > 0


def test_a_roi_box_is_corrected_with_its_own_sides():
    vol, _ = _balls((40, 96, 96), 160, np.random.default_rng(3))
    box = ((4, 36), (10, 90), (0, 96))
    inside = np.zeros_like(vol)
    inside[4:36, 10:90, :] = vol[4:36, 10:90, :]  # as segment --roi writes it: 0 outside the box
    whole = analyze(inside, roi=box).summary
    cropped = analyze(vol[4:36, 10:90, :]).summary
    assert whole["objects"] == cropped["objects"]
    assert whole["number_density_corrected_per_mvox"] == pytest.approx(cropped["number_density_corrected_per_mvox"])
