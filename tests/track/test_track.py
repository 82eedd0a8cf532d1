"""``track`` end to end on phantom pairs: the issue's acceptance checks."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.synthetic.pair import make_phantom_pair
from tomoseg.track import STATUSES, compare_with_truth, track
from tomoseg.track.registration import apply, rotation_angle
from tomoseg.track.scoring import label_map

VS = (29.33, 29.33, 29.33)


@pytest.fixture(scope="module")
def pairs():
    """Two pairs (different seeds and motions), tracked from the phantoms' masks."""
    out = []
    for seed in (0, 1):
        pair = make_phantom_pair((48, 160, 160), rng=seed, object_fraction=0.005)
        result = track(pair.before["image"], pair.after["image"], before_labels=pair.before["labels"],
                       after_labels=pair.after["labels"], voxel_size=VS)
        out.append((pair, result))
    return out


def _scores(pair, result):
    bm = label_map(_labels_of(result, "before", pair), pair.before["instances"])
    am = label_map(_labels_of(result, "after", pair), pair.after["instances"])
    return compare_with_truth(result.matches, pair.truth, min_voxels=8, before_map=bm, after_map=am)


def _labels_of(result, scan, pair):
    from tomoseg.objects import label_objects

    return label_objects(getattr(pair, scan)["labels"])[0]


@pytest.mark.slow
def test_transform_within_half_a_voxel_and_half_a_degree(pairs):
    for pair, result in pairs:
        m = result.registration.matrix
        z, y, x = pair.before["image"].shape
        corners = np.array([[a, b, c] for a in (0, z - 1) for b in (0, y - 1) for c in (0, x - 1)], float)
        assert rotation_angle(m[:3, :3].T @ pair.matrix[:3, :3]) < 0.5
        assert np.abs(apply(m, corners) - apply(pair.matrix, corners)).max() < 0.5
        assert result.registration.source == "estimated, refined on objects"


@pytest.mark.slow
def test_matching_precision_recall_and_every_status(pairs):
    found = {s: 0 for s in STATUSES}
    for pair, result in pairs:
        s = _scores(pair, result)
        assert s["recall"] >= 0.95 and s["precision"] >= 0.95, s
        for status, v in s["by_status"].items():
            found[status] += v["recovered"]
    assert all(found[s] > 0 for s in STATUSES), found


@pytest.mark.slow
def test_radius_change_of_grown_objects(pairs):
    n = 0
    for pair, result in pairs:
        t = pair.truth
        bm = {v: k for k, v in label_map(_labels_of(result, "before", pair), pair.before["instances"]).items()}
        m = result.matches
        for b, dr in zip(t["before_label"][(t["change"] == "grown") & (t["edge"] == 0)],
                         (t["after_radius_vox"] - t["before_radius_vox"])[(t["change"] == "grown") & (t["edge"] == 0)]):
            row = np.nonzero(m["before_label"] == bm[b])[0]
            assert len(row) == 1 and m["status"][row[0]] == "persisting"
            assert abs(m["delta_radius_vox"][row[0]] - dr) <= 0.3
            n += 1
    assert n >= 3


@pytest.mark.slow
def test_tables_summary_and_match_ids(pairs):
    pair, result = pairs[0]
    m = result.matches
    assert {"delta_volume_nm3", "delta_radius_nm", "delta_sphericity_mesh", "delta_mean_gray",
            "displacement_nm"} <= set(m)
    assert sorted(set(m["status"])) == sorted(STATUSES)
    ids = result.after_match_ids
    has = m["after_label"] > 0
    for a, mid in zip(m["after_label"][has][:10], m["match_id"][has][:10]):
        assert set(np.unique(ids[_labels_of(result, "after", pair) == a])) == {mid}
    counts = result.summary["objects_by_status"]
    assert counts["merged"]["before_objects"] >= 2 * counts["merged"]["events"]
    # the AFTER scan's gray levels changed (gain 0.93, offset +10): objects of gray ~112 gain ~2.2
    pers = (m["status"] == "persisting") & (m["edge"] == 0)
    assert np.nanmedian(m["delta_mean_gray"][pers]) == pytest.approx(0.93 * 112 + 10 - 112, abs=2.0)


def test_given_transform_skips_registration():
    pair = make_phantom_pair((32, 112, 112), rng=2, object_fraction=0.006)
    result = tomoseg.track(pair.before["image"], pair.after["image"], before_labels=pair.before["instances"],
                           after_labels=pair.after["instances"], transform=pair.matrix)
    assert result.registration.source == "given"
    s = compare_with_truth(result.matches, pair.truth)
    assert s["recall"] >= 0.95 and s["precision"] >= 0.95


def test_labels_for_one_scan_only_is_an_error():
    img = np.zeros((8, 8, 8), np.uint8)
    with pytest.raises(TomosegError, match="both scans"):
        track(img, img, before_labels=img)


def test_images_only_are_segmented_with_one_model(monkeypatch):
    """Without labels both scans go through the same segmentation (here a stand-in for the U-Net)."""
    import tomoseg.track.tracking as tracking
    from tomoseg.objects import label_objects

    pair = make_phantom_pair((32, 112, 112), rng=2, object_fraction=0.006)
    calls = []

    def fake_segment(image, *, model=None, threshold=127, connectivity=26):
        calls.append((model, threshold))
        scan = pair.before if image is pair.before["image"] else pair.after
        return label_objects(scan["labels"], connectivity=connectivity)[0]

    monkeypatch.setattr(tracking, "segment_labels", fake_segment)
    result = track(pair.before["image"], pair.after["image"], transform=pair.matrix, model="m.safetensors")
    assert calls == [("m.safetensors", 127)] * 2
    assert set(result.matches["status"]) >= {"persisting", "appeared", "vanished"}


def test_no_objects_and_one_that_vanished(tmp_path):
    """Two scans without objects: nothing to follow, refused. One object that vanished into a scan without any
    (a solution treatment can dissolve them all) is followed, with a warning, and written with its figures."""
    from tomoseg.errors import TomosegError, TomosegWarning
    from tomoseg.track import write_tracking

    img = np.random.default_rng(0).integers(0, 255, (20, 40, 40)).astype(np.uint8)
    empty = np.zeros(img.shape, np.uint8)
    with pytest.raises(TomosegError, match="nothing to follow between the scans"):
        track(img, img, before_labels=empty, after_labels=empty, transform=np.eye(4))
    one = empty.copy()
    one[5:8, 5:8, 5:8] = 1
    with pytest.warns(TomosegWarning, match="every BEFORE object is reported as vanished"):
        result = track(img, img, before_labels=one, after_labels=empty, transform=np.eye(4))
    assert result.summary["objects_by_status"]["vanished"]["events"] == 1
    paths = write_tracking(result, tmp_path / "one", shape=img.shape)
    assert paths["html"].read_text(encoding="utf-8").count("<img") == 3


@pytest.mark.parametrize("given", ["labels", "mask", "probability"])
def test_scans_larger_than_memory_track_as_in_memory(tmp_path, given):
    """Scans above ``in_memory_voxels`` are labelled, measured and matched chunk by chunk from volumes on disk
    (never read whole): the same links, measures and match-ID image as in memory, from a label image (its IDs
    kept), a mask or a probability map; the labels kept on disk are gone after ``discard``."""
    import dataclasses
    import tempfile

    from tomoseg.io import open_volume, write_volume
    from tomoseg.track import TrackOptions

    pair = make_phantom_pair((40, 128, 144), rng=3, object_fraction=0.02)
    files = {}
    for scan in ("before", "after"):
        data = getattr(pair, scan)
        source = {"labels": data["instances"], "mask": data["labels"],
                  "probability": np.where(data["labels"] > 0, 200, 40).astype(np.uint8)}[given]
        write_volume(tmp_path / f"{scan}.zarr", data["image"], chunks=(16, 32, 32))
        write_volume(tmp_path / f"{scan}_labels.zarr", source, chunks=(16, 32, 32))
        files[scan] = (open_volume(tmp_path / f"{scan}.zarr"), open_volume(tmp_path / f"{scan}_labels.zarr"))
    whole = track(files["before"][0][:, :, :], files["after"][0][:, :, :], before_labels=files["before"][1][:, :, :],
                  after_labels=files["after"][1][:, :, :], voxel_size=VS, transform=pair.matrix)
    small = dataclasses.replace(TrackOptions(), in_memory_voxels=1000, chunks=(16, 48, 40))
    work = tmp_path / "work"
    work.mkdir()
    chunked = track(files["before"][0], files["after"][0], before_labels=files["before"][1],
                    after_labels=files["after"][1], voxel_size=VS, transform=pair.matrix, options=small,
                    workdir=work)
    assert not isinstance(chunked.after_labels, np.ndarray)  # read from disk, block by block
    assert len(whole.matches["match_id"]) > 50 and set(whole.matches) == set(chunked.matches)
    for column, values in whole.matches.items():
        if values.dtype == object:
            assert list(values) == list(chunked.matches[column]), column
        else:
            np.testing.assert_allclose(chunked.matches[column], values, rtol=1e-9, err_msg=column)
    assert np.array_equal(chunked.after_match_ids, whole.after_match_ids)
    assert chunked.summary["objects_by_status"] == whole.summary["objects_by_status"]
    chunked.discard()
    assert not list(work.iterdir()) and not list(tmp_path.glob(f"{tempfile.gettempprefix()}*"))


def test_a_label_image_with_huge_ids_is_refused_clearly_in_memory_too(tmp_path):
    """A label image's IDs index arrays (of boxes above in_memory_voxels, of find_objects' slices in memory): IDs
    in the billions are refused with what to do, before any work on the rest of the volume. In memory they ran
    out of memory with advice about the number of objects (review T4: 21 objects, IDs k x 150,000,000)."""
    import dataclasses

    from tomoseg.track import TrackOptions

    img = np.zeros((16, 32, 32), np.uint8)
    labels = np.zeros(img.shape, np.uint32)
    labels[4:7, 4:7, 4:7] = 3_000_000_000
    labels[9:12, 20:23, 20:23] = 2_850_000_000
    small = dataclasses.replace(TrackOptions(), in_memory_voxels=1000, chunks=(8, 16, 16))
    message = ("the BEFORE labels: holds IDs up to 3000000000: objects are indexed by ID here (48 bytes an ID, 134 "
               "GiB); renumber them 1..n first (skimage.segmentation.relabel_sequential), or give the mask instead")
    for options in (small, TrackOptions()):  # chunk by chunk, and in memory
        with pytest.raises(TomosegError) as err:
            track(img, img, before_labels=labels, after_labels=labels, transform=np.eye(4), options=options)
        assert str(err.value) == message
    wide = labels.astype(np.int64) * 4  # in memory, IDs past uint32 were wrapped silently
    with pytest.raises(TomosegError, match="renumber them 1..n first"):
        track(img, img, before_labels=wide, after_labels=wide, transform=np.eye(4))
    labels[labels == 3_000_000_000], labels[labels == 2_850_000_000] = 7, 100_000  # sparse, not huge: fine
    for options in (small, TrackOptions()):
        result = track(img, img, before_labels=labels, after_labels=labels, transform=np.eye(4), options=options)
        assert list(result.matches["status"]) == ["persisting"] * 2
        assert list(result.matches["before_label"]) == [7, 100_000]


def test_tables_keep_integers_and_enough_digits(tmp_path):
    """matches.csv and objects CSVs were written with 6 significant digits: an object of 1 234 567 voxels read
    back as 1.23457e+06 and a centroid at x = 20000.123 of a mosaic lost its sub-voxel digits. Now integer values
    are written as integers (also in a column with empty cells) and floats with 15 digits."""
    from tomoseg.table import read_csv, write_csv

    table = {"before_volume_vox": np.array([1234567.0, np.nan, 8.0]), "centroid_x": np.array([20000.123, 1 / 3, -2.5]),
             "label": np.array([1, 2, 3], np.int64)}
    write_csv(table, tmp_path / "t.csv")
    back = read_csv(tmp_path / "t.csv")
    assert "1234567," in (tmp_path / "t.csv").read_text(encoding="utf-8")
    assert back["before_volume_vox"][0] == 1234567 and np.isnan(back["before_volume_vox"][1])
    assert back["centroid_x"][0] == 20000.123 and abs(back["centroid_x"][1] - 1 / 3) < 1e-14
    assert back["label"].dtype == np.int64
