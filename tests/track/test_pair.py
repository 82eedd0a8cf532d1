"""The phantom pair: a known motion, known changes, exact expected matches."""

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.synthetic.pair import Motion, PairChanges, make_phantom_pair, motion_matrix, rotation_matrix
from tomoseg.track.registration import apply, decompose, euler_zyx


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair((40, 128, 128), rng=2, object_fraction=0.005)


def test_same_seed_same_pair():
    a = make_phantom_pair((24, 96, 96), rng=3)
    b = make_phantom_pair((24, 96, 96), rng=3)
    assert np.array_equal(a.after["image"], b.after["image"]) and np.array_equal(a.matrix, b.matrix)


def test_motion_matrix_round_trip():
    m = motion_matrix(Motion((12.0, -1.5, 0.8), (1.0, -2.0, 3.0)), (40, 100, 120))
    parts = decompose(m, (40, 100, 120))
    assert parts["rotation_deg"] == pytest.approx((12.0, -1.5, 0.8))
    assert parts["translation_vox"] == pytest.approx((1.0, -2.0, 3.0))
    assert parts["scale"] == pytest.approx(1.0)
    assert euler_zyx(rotation_matrix((-70.0, 2.0, -1.0))) == pytest.approx((-70.0, 2.0, -1.0))
    # rotation about z turns the (y, x) plane and leaves z alone
    r = rotation_matrix((90.0, 0, 0))
    assert r @ np.array([0.0, 1.0, 0.0]) == pytest.approx([0, 0, 1])


def test_truth_agrees_with_the_labels(pair):
    t = pair.truth
    for scan, col in ((pair.before, "before"), (pair.after, "after")):
        counts = np.bincount(scan["instances"].ravel())
        ids = t[f"{col}_label"]
        assert np.array_equal(counts[ids[ids > 0]], t[f"{col}_voxels"][ids > 0])
        assert set(np.unique(scan["instances"])) - {0} <= set(ids.tolist())
        assert np.array_equal(scan["labels"] > 0, scan["instances"] > 0)
    # each AFTER object is one connected component (merged ones included); objects never touch
    lab, n = ndimage.label(pair.after["labels"], np.ones((3, 3, 3)))
    assert n == len(np.unique(pair.after["instances"])) - 1
    assert set(t["status"]) == {"persisting", "appeared", "vanished", "merged", "split"}


def test_objects_move_with_the_sample():
    changes = PairChanges(grow=0, shrink=0, remove=0, add=0, merge=0, split=0, object_gray_sd=0)
    p = make_phantom_pair((40, 128, 128), rng=5, motion=Motion((25.0, 1.0, -1.0), (2.0, -3.0, 4.0)), changes=changes)
    ok = p.truth["edge"] == 0
    b, a = p.truth["before_label"][ok], p.truth["after_label"][ok]
    cb = np.array(ndimage.center_of_mass(p.before["labels"], p.before["instances"], b))
    ca = np.array(ndimage.center_of_mass(p.after["labels"], p.after["instances"], a))
    assert len(b) >= 5
    assert np.abs(apply(p.matrix, cb) - ca).max() < 0.35  # digitization only


def test_grown_and_shrunk_radii(pair):
    t = pair.truth
    grown = t["change"] == "grown"
    shrunk = t["change"] == "shrunk"
    assert grown.any() and shrunk.any()
    assert t["after_radius_vox"][grown] - t["before_radius_vox"][grown] == pytest.approx(1.0)
    assert t["after_radius_vox"][shrunk] - t["before_radius_vox"][shrunk] == pytest.approx(-0.7)


def test_gray_level_change(pair):
    inside = pair.before["labels"] == 0
    mb = np.median(pair.before["image"][20][inside[20]])
    ma = np.median(pair.after["image"][20][pair.after["labels"][20] == 0])
    assert ma != mb  # the AFTER scan's gray levels differ (gain and offset)


def test_pair_objects_is_the_before_objects_table_and_the_matches_have_their_own_option(tmp_path, capsys):
    """Review P12: with --pair, --objects wrote the match table (no centres); now it is the BEFORE scan's
    objects table, as without --pair, and the matches go to --pair-matches (both replaced with --overwrite)."""
    import csv

    from tomoseg.cli import main

    args = ["phantom", str(tmp_path / "b.tif"), "--labels", str(tmp_path / "bl.tif"),
            "--instances", str(tmp_path / "bi.npy"), "--pair", str(tmp_path / "a.tif"),
            "--pair-labels", str(tmp_path / "al.tif"), "--objects", str(tmp_path / "objects.csv"),
            "--pair-matches", str(tmp_path / "matches.csv"), "--shape", "32", "128", "128", "--seed", "5"]
    assert main(args) == 0
    with open(tmp_path / "objects.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"label", "centroid_z", "centroid_y", "centroid_x", "semi_axis_a_vox", "semi_axis_b_vox",
            "semi_axis_c_vox", "volume_vox", "equivalent_radius_vox", "equivalent_radius_nm",
            "label_voxels", "occupancy_volume_vox", "gray_value"} <= set(rows[0])
    ids = np.load(tmp_path / "bi.npy")
    counts = np.bincount(ids.ravel(), minlength=len(rows) + 1)[1:]
    assert len(rows) == ids.max()
    np.testing.assert_array_equal(counts, [int(r["label_voxels"]) for r in rows])
    centroids = ndimage.center_of_mass(ids > 0, ids, [int(r["label"]) for r in rows if int(r["label_voxels"]) > 30])
    table = {int(r["label"]): r for r in rows}
    for lab, c in zip([int(r["label"]) for r in rows if int(r["label_voxels"]) > 30], centroids):
        assert np.allclose(c, [float(table[lab][k]) for k in ("centroid_z", "centroid_y", "centroid_x")], atol=0.5)
    with open(tmp_path / "matches.csv", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["group", "before_label", "after_label", "status"]
    assert main(args + ["--overwrite"]) == 0  # both tables are recognised as tomoseg's own
    with pytest.raises(SystemExit):
        main(["phantom", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--pair-matches" in help_text and "differs from the single phantom" in help_text


def test_pair_before_objects_table_matches_the_scan():
    p = make_phantom_pair((24, 96, 96), rng=5)
    t = p.before["objects"]
    np.testing.assert_array_equal(t["label"], np.arange(1, p.before["instances"].max() + 1))
    np.testing.assert_array_equal(t["label_voxels"], p.before["label_voxels"])
    assert np.all(t["occupancy_volume_vox"] > 0)


def test_new_objects_beside_removed_ones_only_when_asked():
    """``PairChanges(beside_removed=...)`` forms new balls 1.5-3.5 voxels from removed objects' spots, recorded
    in the truth as new (appeared, change ``added_beside_removed``; the removed one vanished) and in
    ``formed_beside``; off by default, where the pair draws nothing more (its files are those of before)."""
    shape = (32, 112, 112)
    plain = make_phantom_pair(shape, rng=4, object_fraction=0.008)
    assert plain.formed_beside == {} and "added_beside_removed" not in set(plain.truth["change"])
    pair = make_phantom_pair(shape, rng=4, object_fraction=0.008, changes=PairChanges(remove=0.3, beside_removed=1.0))
    t = pair.truth
    new = t["change"] == "added_beside_removed"
    assert new.sum() == len(pair.formed_beside) >= 3
    assert set(t["status"][new]) == {"appeared"} and set(t["before_label"][new]) == {0}
    assert sorted(t["after_label"][new].tolist()) == sorted(pair.formed_beside)
    after_ids, before_ids = list(pair.formed_beside), list(pair.formed_beside.values())
    assert set(t["status"][np.isin(t["before_label"], before_ids)]) == {"vanished"}
    # where the new object lies, carried back into the BEFORE scan, from the removed one's centroid (voxels)
    cb = np.array(ndimage.center_of_mass(pair.before["labels"], pair.before["instances"], before_ids))
    ca = np.array(ndimage.center_of_mass(pair.after["labels"], pair.after["instances"], after_ids))
    distance = np.linalg.norm(apply(np.linalg.inv(pair.matrix), ca) - cb, axis=1)
    assert distance.min() > 1.5 - 0.4 and distance.max() < 3.5 + 0.4, distance  # digitization only
    # the new objects keep apart from every other AFTER object
    lab, n = ndimage.label(pair.after["labels"], np.ones((3, 3, 3)))
    assert n == len(np.unique(pair.after["instances"])) - 1
