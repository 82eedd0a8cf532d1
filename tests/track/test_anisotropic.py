"""Tracking with non-cubic voxels: edges, angles and the phantom's motion in physical space (nm)."""

import numpy as np
import pytest

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


def _voxel_matrix(rotation_deg, translation_nm, shape, voxel_size=VS):
    """BEFORE voxel → AFTER voxel matrix of a rigid motion of the sample in nm about the volume's centre."""
    from tomoseg.synthetic.pair import rotation_matrix

    s = np.diag(voxel_size)
    a = np.linalg.inv(s) @ rotation_matrix(rotation_deg) @ s
    c = (np.asarray(shape, float) - 1) / 2
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = c - a @ c + np.asarray(translation_nm) / np.asarray(voxel_size)
    return m


def test_angles_are_those_of_the_physical_rotation():
    """Rz(10°)·Ry(2°) in nm with voxels of (60, 30, 30) nm: the voxel matrix is S⁻¹RS, not a rotation; its
    angles used to be read off it directly (tilt 0.99985° for 2°), and the scored rotation error of two
    different matrices came out 0 (arccos clipped)."""
    from tomoseg.track.registration import given_transform, rotation_error_deg

    shape = (40, 96, 128)
    m = _voxel_matrix((10, 2, 0), (90, -120, 75), shape)
    reg = given_transform(m, shape, voxel_size=VS)
    assert np.allclose(reg.rotation_deg, (10, 2, 0), atol=1e-9)
    from tomoseg.synthetic.pair import rotation_matrix
    from tomoseg.track.registration import rotation_angle

    assert abs(reg.rotation_angle_deg - rotation_angle(rotation_matrix((10, 2, 0)))) < 1e-9
    assert abs(reg.scale - 1) < 1e-12
    assert np.allclose(reg.translation_vox, np.array([90, -120, 75]) / np.asarray(VS), atol=1e-9)
    other = _voxel_matrix((10, 2.5, 0), (90, -120, 75), shape)
    assert abs(rotation_error_deg(other, m, VS) - 0.5) < 1e-9
    assert rotation_error_deg(m, m, VS) < 1e-9  # (arccos of the trace gave about 1e-6 here)
    # through track: the summary's angles are the physical ones
    labels = np.zeros(shape, np.uint32)
    labels[ball_nm(shape, (20, 48, 64), 300.0)] = 1
    image = np.where(labels > 0, 200, 50).astype(np.uint8)
    result = track(image, image, before_labels=labels, after_labels=labels, voxel_size=VS, transform=m)
    assert np.allclose(result.summary["transform"]["rotation_deg"], (10, 2, 0), atol=1e-9)


def test_largest_displacement_error_is_a_distance():
    """The truth score 'largest displacement error' is the largest distance at a corner of the volume (it was
    the largest single coordinate: 4 here instead of 5)."""
    from tomoseg.track.registration import corner_error_vox

    m = np.eye(4)
    m[:3, 3] = (3, 4, 0)
    assert corner_error_vox(m, np.eye(4), (10, 20, 30)) == 5.0


def test_phantom_pair_motion_is_rigid_in_nm():
    """phantom --pair with voxels of (60, 30, 30) nm and tilts: the motion used to be a rotation of the voxel
    grid, which is no rigid motion of the sample (track, working in nm, was then scored 4.6 voxels off). Now the
    voxel matrix is S⁻¹RS: a rotation in nm with the asked angles, and every unchanged object keeps its
    physical size and shape (the eigenvalues of its covariance in nm²; a 25° tilt in voxels changed them by
    up to 21 %, now within 6 %)."""
    from tomoseg.synthetic.pair import Motion, make_phantom_pair, rotation_matrix
    from tomoseg.track.registration import decompose, physical

    shape = (32, 96, 96)
    pair = make_phantom_pair(shape, rng=0, motion=Motion((8, 25, -3), (1, -2, 1.5)), voxel_size=VS,
                             object_fraction=0.004)
    assert np.allclose(physical(pair.matrix, VS), rotation_matrix((8, 25, -3)), atol=1e-12)
    assert np.allclose(decompose(pair.matrix, shape, VS)["rotation_deg"], (8, 25, -3), atol=1e-9)
    assert np.allclose(decompose(pair.matrix, shape)["translation_vox"], (1, -2, 1.5), atol=1e-9)
    t = pair.truth
    same = (t["change"] == "none") & (t["edge"] == 0)
    assert same.sum() >= 3
    vs = np.asarray(VS)

    def spread(instances, label):  # eigenvalues of the object's covariance, nm²
        pts = np.argwhere(instances == label) * vs
        return np.linalg.eigvalsh(np.cov(pts.T)), len(pts)

    for b, a in zip(t["before_label"][same], t["after_label"][same]):
        eb, nb = spread(pair.before["instances"], b)
        ea, na = spread(pair.after["instances"], a)
        assert abs(na - nb) <= 0.15 * nb
        assert np.allclose(np.sqrt(ea), np.sqrt(eb), rtol=0.1), (b, np.sqrt(ea), np.sqrt(eb))


def test_scans_of_different_voxel_sizes_are_each_measured_with_their_own(tmp_path, capsys):
    """Review T2: the AFTER scan's voxels 4 % larger (a change of magnification). Track refused such scans and
    advised --voxel-size, which measured AFTER with BEFORE's voxels: every unchanged object "shrank" by about
    11 %. Each scan now keeps its file's voxel size: unchanged balls keep their volume, and the transform's scale
    holds the ratio."""
    import csv
    import json

    from tomoseg.cli import main
    from tomoseg.io import write_volume

    vs_b = (50.0, 29.0, 31.0)
    vs_a = tuple(1.04 * v for v in vs_b)
    shape = (40, 96, 96)
    centres_nm = [(700.0, 900.0, 1000.0), (1300.0, 1900.0, 1200.0), (900.0, 1300.0, 2100.0)]
    for name, vs in (("b", vs_b), ("a", vs_a)):
        lab = np.zeros(shape, np.uint16)
        for k, c in enumerate(centres_nm):
            lab[ball_nm(shape, np.divide(c, vs), 240.0, vs)] = k + 1
        write_volume(str(tmp_path / f"{name}_lab.tif"), lab, voxel_size=vs)
        write_volume(str(tmp_path / f"{name}.tif"), (lab > 0).astype(np.float32) * 100, voxel_size=vs)
    m = np.eye(4)
    m[:3, :3] = np.diag(np.divide(vs_b, vs_a))  # BEFORE voxel -> AFTER voxel: the same nm position
    (tmp_path / "m.json").write_text(json.dumps({"matrix": m.tolist()}))
    assert main(["track", str(tmp_path / "b.tif"), str(tmp_path / "a.tif"), "--before-labels",
                 str(tmp_path / "b_lab.tif"), "--after-labels", str(tmp_path / "a_lab.tif"), "--transform",
                 str(tmp_path / "m.json"), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert "each scan is measured with its own" in capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "o" / "matches.csv").open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["persisting"] * 3
    for r in rows:
        assert abs(float(r["delta_volume_rel"])) < 0.04  # voxelized balls of 240 nm at two voxel sizes
        assert float(r["after_radius_nm"]) == pytest.approx(240.0, abs=4.0)
        assert float(r["displacement_nm"]) < 10.0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert summary["voxel_size_nm"] == pytest.approx(vs_b) and summary["after_voxel_size_nm"] == pytest.approx(vs_a)
    assert summary["transform"]["scale"] == pytest.approx(1 / 1.04, rel=1e-6)


def test_voxel_sizes_that_differ_unequally_along_the_axes_are_refused():
    from tomoseg.errors import TomosegError

    lab = np.zeros((16, 32, 32), np.uint8)
    with pytest.raises(TomosegError, match=r"1\.000 x 1\.100 x 1\.100 times the BEFORE scan's along z, y, x"):
        track(lab, lab, before_labels=lab, after_labels=lab, voxel_size=(50, 30, 30), after_voxel_size=(50, 33, 33),
              transform=np.eye(4))


@pytest.mark.slow
def test_scans_too_large_for_memory_are_segmented_and_measured_at_their_own_voxel_size(tmp_path, monkeypatch,
                                                                                       capsys):
    """One phantom image saved as two scans, the AFTER one recorded with voxels 4 % larger: every object is the
    same voxels, so AFTER volumes are 1.04³ times BEFORE's. Forced through the chunked path (scans segmented by
    ``segment`` into OUT, then labelled chunk by chunk), the measurements are those of the in-memory path, and
    each probability map records its own scan's voxel size (before, both took BEFORE's, and segment judged the
    AFTER scan against the model at BEFORE's voxel size)."""
    import dataclasses
    import json

    from tomoseg.cli import main
    from tomoseg.cli import track as cli_track
    from tomoseg.io import open_volume, read_volume, write_volume
    from tomoseg.table import read_csv

    assert main(["phantom", str(tmp_path / "p.tif"), "--labels", str(tmp_path / "pl.tif"), "--shape", "32", "96",
                 "96", "--seed", "2", "-q"]) == 0
    image = read_volume(str(tmp_path / "p.tif"))
    vs_b = (50.0, 29.0, 31.0)
    vs_a = tuple(1.04 * v for v in vs_b)
    write_volume(str(tmp_path / "b.tif"), image, voxel_size=vs_b)
    write_volume(str(tmp_path / "a.tif"), image, voxel_size=vs_a)
    (tmp_path / "m.json").write_text(json.dumps({"matrix": np.eye(4).tolist()}))
    argv = ["track", str(tmp_path / "b.tif"), str(tmp_path / "a.tif"), "--transform", str(tmp_path / "m.json"), "-q"]
    assert main(argv + ["--out", str(tmp_path / "memory")]) == 0
    plain = cli_track._options
    monkeypatch.setattr(cli_track, "_options", lambda args: dataclasses.replace(plain(args), in_memory_voxels=10_000,
                                                                              chunks=(16, 48, 48)))
    capsys.readouterr()
    assert main(argv + ["--out", str(tmp_path / "chunked")]) == 0
    assert "a.tif: voxel size 52 × 30.16 × 32.24 nm" in capsys.readouterr().err  # the model's check, at AFTER's size
    memory, chunked = (read_csv(tmp_path / run / "matches.csv") for run in ("memory", "chunked"))
    assert len(memory["status"]) >= 3 and set(memory["status"]) == {"persisting"}
    for column in ("before_volume_nm3", "after_volume_nm3", "before_radius_nm", "after_radius_nm",
                   "delta_volume_rel", "displacement_nm"):
        assert np.allclose(np.asarray(chunked[column], float), np.asarray(memory[column], float), rtol=1e-9,
                           atol=1e-9), column
    assert np.allclose(np.asarray(chunked["delta_volume_rel"], float), 1.04 ** 3 - 1, rtol=1e-9)
    for scan, vs in (("before", vs_b), ("after", vs_a)):
        assert open_volume(str(tmp_path / "chunked" / f"{scan}_probability.zarr")).voxel_size == pytest.approx(vs)


def test_the_matching_tolerance_is_a_distance_in_nm_when_the_voxel_sizes_differ():
    """BEFORE voxels of 5 nm, AFTER voxels of 10 nm, balls of 20 nm radius that do not overlap their AFTER
    place: one moved 50 nm, one 90 nm. With --tolerance-nm 60 the first pairs and the second does not. Before,
    the AFTER positions were scaled by BEFORE's voxel size, so 90 nm counted as 45 and paired."""
    from tomoseg.track import MatchOptions, TrackOptions

    vs_b, vs_a = (5.0, 5.0, 5.0), (10.0, 10.0, 10.0)
    shape_b, shape_a = (40, 40, 80), (20, 20, 40)  # the same 200 × 200 × 400 nm
    before, after = np.zeros(shape_b, np.uint32), np.zeros(shape_a, np.uint32)
    for label, (x_b, x_a) in enumerate([(80.0, 130.0), (250.0, 340.0)], start=1):
        before[ball_nm(shape_b, np.divide((100.0, 100.0, x_b), vs_b), 20.0, vs_b)] = label
        after[ball_nm(shape_a, np.divide((100.0, 100.0, x_a), vs_a), 20.0, vs_a)] = label
    m = np.diag([0.5, 0.5, 0.5, 1.0])  # BEFORE voxel -> AFTER voxel: the same place in nm
    options = TrackOptions(matching=MatchOptions(tolerance_nm=60.0))
    result = track(before.astype(np.float32), after.astype(np.float32), before_labels=before, after_labels=after,
                   voxel_size=vs_b, after_voxel_size=vs_a, transform=m, options=options)
    rows = {(int(b), int(a)): s for b, a, s in zip(result.matches["before_label"], result.matches["after_label"],
                                                    result.matches["status"])}
    assert rows == {(1, 1): "persisting", (2, 0): "vanished", (0, 2): "appeared"}
    assert result.matches["displacement_nm"][0] == pytest.approx(50.0, abs=1.0)
    assert result.summary["tolerance_nm"] == 60.0
    # the default: 3 voxels of the coarser scan, whichever it is
    from tomoseg.track.matching import tolerance_nm

    assert tolerance_nm(MatchOptions(), vs_b, vs_a) == tolerance_nm(MatchOptions(), vs_a, vs_b) == 30.0
    assert tolerance_nm(MatchOptions(), (60.0, 30.0, 30.0)) == pytest.approx(3 * np.cbrt(60 * 30 * 30))


def test_refit_residual_in_nm_of_scans_of_different_voxel_sizes(monkeypatch):
    """AFTER voxels 1.25 times the BEFORE's and a known shift of (60, 150, -120) nm; the image registration
    (stubbed: the true transform, 1 voxel off along x) is refitted on the objects. The refit's nm residual is
    its AFTER-voxel residual times the AFTER voxel size (37.5 nm); it was reported with the BEFORE's (30 nm),
    1.25 times too small."""
    import warnings

    from tomoseg.track import tracking
    from tomoseg.track.registration import given_transform

    vs_b, vs_a = (30.0, 30.0, 30.0), (37.5, 37.5, 37.5)
    shift_nm = np.array([60.0, 150.0, -120.0])
    shape_b, shape_a = (24, 64, 64), (20, 52, 52)
    centres_nm = [(z, y, x) for z in (200.0, 500.0) for y in (400.0, 900.0, 1400.0) for x in (400.0, 1000.0)]
    labels = []
    for shape, vs, off in ((shape_b, vs_b, 0.0), (shape_a, vs_a, shift_nm)):
        lab = np.zeros(shape, np.uint16)
        for k, c in enumerate(centres_nm):
            lab[ball_nm(shape, np.divide(np.add(c, off), vs), 90.0 + 10 * (k % 3), vs)] = k + 1
        labels.append(lab)
    true = np.eye(4)
    true[:3, :3] = np.diag(np.divide(vs_b, vs_a))
    true[:3, 3] = shift_nm / np.asarray(vs_a)
    start = true.copy()
    start[2, 3] += 1.0

    def stub(before, after, *, voxel_size, after_voxel_size=None, options, progress=None):
        reg = given_transform(start, before.shape, voxel_size=voxel_size)
        reg.source = "estimated"
        return reg

    monkeypatch.setattr(tracking, "register", stub)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stub has no image figures to judge it by
        result = track(*((lab > 0).astype(np.float32) for lab in labels), before_labels=labels[0],
                       after_labels=labels[1], voxel_size=vs_b, after_voxel_size=vs_a)
    refit = result.registration.coarse["objects_refit"]
    assert refit["used"] == len(centres_nm)
    assert result.registration.source == "estimated, refined on objects"
    np.testing.assert_allclose(result.registration.matrix[:3, 3] * vs_a, shift_nm, atol=10.0)
    assert 0 < refit["residual_vox"] < 0.5
    assert refit["residual_nm"] == pytest.approx(refit["residual_vox"] * 37.5, rel=1e-6)


def test_translation_and_displacement_in_nm(tmp_path):
    """Review U6: the shift was reported in voxels only (no distance on voxels of 60 × 30 × 30 nm) and the
    persisting objects' displacement after the registration was in matches.csv alone. A given motion of
    (90, -120, 75) nm of the volume's centre, and one ball moved a further 30 nm along y by hand."""
    from tomoseg.track import write_tracking

    shape = (32, 64, 64)
    m = _voxel_matrix((0, 0, 0), (90, -120, 75), shape)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    shift = m[:3, 3]  # voxels (no rotation)
    for k, (centre, extra_nm) in enumerate([((10, 20, 20), (0, 0, 0)), ((16, 40, 30), (0, 30, 0)),
                                            ((20, 30, 44), (0, 0, 0))], start=1):
        before[ball_nm(shape, centre, 200.0)] = k
        moved = np.asarray(centre) + shift + np.asarray(extra_nm) / np.asarray(VS)
        after[ball_nm(shape, moved, 200.0)] = k
    image = np.full(shape, 50, np.uint8)
    result = track(image, image, before_labels=before, after_labels=after, voxel_size=VS, transform=m)
    assert result.summary["transform"]["translation_nm"] == pytest.approx([90, -120, 75], abs=1e-6)
    moved = result.summary["displacement"]
    assert moved["objects"] == 3 and moved["max_nm"] == pytest.approx(30, abs=1.5)
    assert moved["median_nm"] < 1.5  # the two that moved with the sample (digitization only)
    write_tracking(result, tmp_path / "out", shape=shape, voxel_size=VS)
    page = (tmp_path / "out" / "track.html").read_text()
    # in the unit the values reach (io.units.readable_unit): 0.09 µm read less well than 90 nm
    assert "translation z, y, x of the volume&#x27;s centre (nm)</td><td>90, -120, 75</td>" in page
    assert "median / largest (nm)</td><td>" in page and "(3 objects)" in page


def test_an_after_scan_binned_2x_is_tracked():
    """Voxels twice as large in the AFTER scan (binned 2x): refused before, as "the estimated transform maps the
    BEFORE scan (almost) entirely outside the AFTER scan's field of view" (the coarse registration took the two
    voxel grids as of one size). Now the transform holds the ratio as its scale and is right to a fraction of a
    binned voxel after the refit on objects (0.17 voxel here), and the links have the truth's statuses."""
    from tomoseg.synthetic.pair import Motion, make_phantom_pair
    from tomoseg.track.registration import corner_error_vox

    pair = make_phantom_pair((64, 192, 192), rng=3, motion=Motion((4.0, 0.5, -0.5), (2.3, -9.6, 7.2)))

    def binned(v):
        return v.astype(np.float32).reshape(32, 2, 96, 2, 96, 2).mean(axis=(1, 3, 5))

    result = track(pair.before["image"], binned(pair.after["image"]), before_labels=pair.before["labels"],
                   after_labels=(binned(pair.after["labels"]) >= 0.5).astype(np.uint8), voxel_size=(29.33,) * 3,
                   after_voxel_size=(58.66,) * 3)
    to_binned = np.diag([0.5, 0.5, 0.5, 1.0])  # binned voxel k holds full voxels 2k and 2k + 1
    to_binned[:3, 3] = -0.25
    assert result.registration.scale == pytest.approx(0.5, abs=0.002)
    assert corner_error_vox(result.registration.matrix, to_binned @ pair.matrix, pair.before["image"].shape) < 0.3
    # every link of the truth found with its status (objects at an edge or small included)
    assert sorted(result.matches["status"].tolist()) == sorted(pair.truth["status"])
