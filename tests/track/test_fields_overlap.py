"""The part of the sample both scans show, after the registration: where it holds none (or a tiny share) of a
scan's objects, every object is reported vanished or appeared whatever the sample did; that is warned of."""

import warnings

import numpy as np
from tomoseg.errors import TomosegWarning
from tomoseg.track import TrackOptions, track
from tomoseg.track.tracking import few_objects_in_overlap, objects_in_overlap

from test_given_transform import _balls  # balls of given centres as labels

SHAPE = (24, 64, 96)


def _sample(xs):
    """One ball at each x (y spread), in a sample of SHAPE; the AFTER scan is a crop of it along x."""
    return _balls(SHAPE, [(12, 10 + 11 * (k % 5), x) for k, x in enumerate(xs)])


def _run(before, after, x0):
    """The AFTER scan: ``after`` from x0 on (its field of view a crop); the transform given."""
    m = np.eye(4)
    m[2, 3] = -x0
    crop = after[:, :, x0:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = track(before.astype(np.uint8), crop.astype(np.uint8), before_labels=before, after_labels=crop,
                       transform=m, voxel_size=(30, 30, 30), options=TrackOptions(read_as="mask"))
    return result, [str(w.message) for w in caught if issubclass(w.category, TomosegWarning)]


def test_a_crop_that_misses_every_before_object_is_warned_of():
    """The AFTER scan a crop (x from 48) of a region where the BEFORE scan has no object: every BEFORE object
    vanished, every AFTER object appeared, in silence (the check that each scan has objects ran before the
    registration, and the given transform's check counts only objects off the edge, here none)."""
    before = _sample([8, 14, 20, 26, 32, 40, 24, 30, 36, 42])
    after = _sample([60, 70, 80, 66, 76, 86])
    result, warned = _run(before, after, 48)
    counts = result.summary["objects_by_status"]
    assert counts["persisting"]["events"] == 0
    assert len(warned) == 1, warned
    assert "holds 0 of the 10 BEFORE objects (0%) and 6 of the 6 AFTER objects (100%)" in warned[0]
    assert "reported vanished or appeared because the other scan does not show them" in warned[0]
    assert "the --transform file" in warned[0]


def test_a_crop_that_holds_part_of_the_objects_is_not_warned_of():
    """Half of the BEFORE objects in the AFTER crop: the others are rightly at the edge; nothing to say."""
    xs = [10, 20, 30, 40, 55, 65, 75, 85, 15, 80]
    sample = _sample(xs)
    result, warned = _run(sample, sample, 48)
    assert not warned, warned
    assert result.summary["objects_by_status"]["persisting"]["events"] == 5


def test_objects_in_overlap_counts_each_scan_through_the_transform():
    table = {"centroid_z": np.array([5.0, 5.0, 5.0]), "centroid_y": np.array([5.0, 5.0, 5.0]),
             "centroid_x": np.array([2.0, 12.0, 30.0])}
    m = np.eye(4)
    m[2, 3] = -10  # BEFORE x 10 -> AFTER x 0
    counts = objects_in_overlap(table, table, m, (10, 10, 40), (10, 10, 10))
    assert counts == {"before": (1, 3), "after": (2, 3)}  # BEFORE x 12 only; AFTER x 2, 12 (30 -> 40: outside)
    assert few_objects_in_overlap({"before": (0, 10), "after": (6, 6)})
    assert few_objects_in_overlap({"before": (1, 40), "after": (6, 6)})
    assert not few_objects_in_overlap({"before": (2, 40), "after": (6, 6)})
    assert not few_objects_in_overlap({"before": (0, 0), "after": (6, 6)})  # an empty scan: said elsewhere


def test_the_warning_on_an_estimated_transform_points_at_the_registration():
    """The words of the estimated case point at the registration."""
    from tomoseg.track.tracking import overlap_problem

    line = overlap_problem({"before": (0, 10), "after": (6, 6)}, given=False)
    assert "where the estimated transform puts them" in line and "--transform JSON" in line
