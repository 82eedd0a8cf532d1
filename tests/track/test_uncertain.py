"""A persisting pair that may be two objects: one dissolved and a new one formed beside its spot."""

import warnings

import numpy as np

from tomoseg.track import TrackOptions, track

SHAPE = (24, 64, 96)
SHIFT = np.array([0.0, 3.0, 4.0])


def _ball(labels, centre, radius):
    grid = np.indices(labels.shape).astype(float)
    labels[sum((g - v) ** 2 for g, v in zip(grid, centre)) <= radius ** 2] = 1


def test_a_new_object_beside_a_dissolved_ones_spot_is_flagged_uncertain(tmp_path):
    """Ten balls of radius 3 persist (three grow evenly by 1 voxel, one grows by 1 on one side only, its centroid
    moving 1 voxel); one dissolves and a new ball of radius 2.5 forms 2.5 voxels from its spot. The matching
    pairs the two as one object that shrank and moved 2.5 voxels (73 nm), with nothing to tell it apart; now it
    is flagged ``uncertain`` (its centroid moved farther than its radius changed, plus a voxel) and counted in
    the summary and track.html; the true pairs, grown evenly or on one side, are not flagged."""
    from tomoseg.track import write_tracking

    before, after = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    centres = [np.array([12.0, 14 + 18 * (k // 5), 12 + 16 * (k % 5)]) for k in range(11)]
    for k, c in enumerate(centres):
        _ball(before, c, 3.0)
        if k < 3:  # grown evenly
            _ball(after, c + SHIFT, 4.0)
        elif k == 3:  # grown on one side: the ball of radius 4 touching the old one's surface from inside
            _ball(after, c + SHIFT + (0, 0, 1.0), 4.0)
        elif k == 10:  # dissolved; a new one 2.5 voxels from its spot
            _ball(after, c + SHIFT + (0, 2.5, 0), 2.5)
        else:
            _ball(after, c + SHIFT, 3.0)
    m = np.eye(4)
    m[:3, 3] = SHIFT
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = track(before * 80, after * 80, before_labels=before, after_labels=after, transform=m,
                       voxel_size=(29.33,) * 3, options=TrackOptions(read_as="mask"))
    t = result.matches
    assert (t["status"] == "persisting").sum() == 11  # the matching pairs all (its tolerance: 3 voxels)
    shift_vox = t["displacement_nm"] / 29.33
    flagged = t["uncertain"] == 1
    assert flagged.sum() == 1
    assert abs(shift_vox[flagged][0] - 2.5) < 0.3
    assert 0.6 < shift_vox[~flagged].max() < 1.4  # the one-sided growth moved about 1 voxel, as its radius grew
    assert result.summary["uncertain_pairs"] == 1
    assert list(t)[list(t).index("small") + 1] == "uncertain"  # beside the other flags
    write_tracking(result, tmp_path / "out", shape=SHAPE, voxel_size=(29.33,) * 3)
    page = (tmp_path / "out" / "track.html").read_text(encoding="utf-8")
    assert "1 of the persisting pairs are flagged <b>uncertain</b>" in page
    header = (tmp_path / "out" / "matches.csv").read_text(encoding="utf-8").splitlines()[0]
    assert ",small,uncertain," in header

