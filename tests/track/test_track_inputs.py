"""``tomoseg track``'s inputs checked before the work (sweep of 2026-11-26: B2, B3, B4, C1, D2, D3, D4).

Each refusal: exit code 1, one ``tomoseg: error:`` line naming the file or option, no traceback. A registration
whose own figures say it failed runs, with a ``tomoseg: warning:``.
"""

import json
import warnings

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.table import read_csv
from tomoseg.errors import TomosegError, TomosegWarning


def _phantom_pair(d, shape, seed):
    argv = ["phantom", str(d / "b.tif"), "--labels", str(d / "bl.tif"), "--instances", str(d / "bi.npy"),
            "--pair", str(d / "a.tif"), "--pair-labels", str(d / "al.tif"), "--pair-instances", str(d / "ai.npy"),
            "--pair-truth", str(d / "truth.json"), "--shape", *map(str, shape), "--seed", str(seed), "-q"]
    assert main(argv) == 0
    return d


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The sweep's pair: 48 x 128 x 128, seed 0 (registers to 0.1 voxel), and its AFTER scan cropped in y and x."""
    d = _phantom_pair(tmp_path_factory.mktemp("pair"), (48, 128, 128), 0)
    tifffile.imwrite(d / "a_crop.tif", tifffile.imread(d / "a.tif")[:40, :120, :100])
    tifffile.imwrite(d / "al_crop.tif", tifffile.imread(d / "al.tif")[:40, :120, :100])
    return d


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    """32 x 64 x 64: too little structure to register; its truth's instance images have another shape."""
    return _phantom_pair(tmp_path_factory.mktemp("small"), (32, 64, 64), 1)


def _track(d, *extra, before_labels="bi.npy", after_labels="ai.npy", after="a.tif"):
    return ["track", str(d / "b.tif"), str(d / after), "--before-labels", str(d / before_labels),
            "--after-labels", str(d / after_labels), *extra, "-q"]


@pytest.mark.parametrize("value", ["300", "-5", "255"])
def test_threshold_out_of_range_is_refused_before_any_work(pair, tmp_path, capsys, value, cli_error):
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), "--threshold", value)))
    assert f"--threshold {value}: give an integer from 0 to 254" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("matrix, text", [
    ([[1, 0, 0, 500], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "(0% of it inside); is the translation in voxels"),
    ([[1, 0, 0, 0], [0, 1, 0, -3000], [0, 0, 1, 2000], [0, 0, 0, 1]], "entirely outside the AFTER scan's field"),
], ids=["z500", "nm"])
def test_transform_outside_the_after_view_is_refused(pair, tmp_path, capsys, matrix, text, cli_error):
    path = tmp_path / "far.json"
    path.write_text(json.dumps({"matrix": matrix}))
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), "--transform", str(path))))
    assert f"{path}: the transform maps the BEFORE scan (almost) entirely outside" in line and text in line
    assert not (tmp_path / "o" / "matches.csv").exists()


def test_overlap_fraction():
    from tomoseg.track.registration import overlap_fraction

    shape = (10, 20, 20)
    assert overlap_fraction(np.eye(4), shape, shape) == 1.0
    shifted = np.eye(4)
    shifted[0, 3] = 5  # half of BEFORE's z range lands beyond AFTER's
    assert overlap_fraction(shifted, shape, shape) == pytest.approx(0.5, abs=0.05)
    shifted[0, 3] = 500
    assert overlap_fraction(shifted, shape, shape) == 0.0


def test_track_api_refuses_a_transform_outside_the_view():
    import tomoseg

    img = np.zeros((24, 32, 32), np.uint8)
    far = np.eye(4)
    far[2, 3] = 1000
    with pytest.raises(TomosegError, match="entirely outside the AFTER scan's field of view"):
        tomoseg.track(img, img, before_labels=img, after_labels=img, transform=far)


@pytest.mark.parametrize("text, message", [
    ('{"matrix": [[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,1]]}', "'matrix' is not invertible (determinant of its 3x3 "
                                                              "part 0)"),
    ('{"matrix": [[1,0,0,NaN],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}', "'matrix' holds NaN or infinite values"),
    ('{"matrix": [[1,0,0,Infinity],[0,1,0,0],[0,0,1,0]]}', "'matrix' holds NaN or infinite values"),
    ('{"matrix": [[1,0,0],[0,1,0],[0,0,1]]}', "matrix, got shape (3, 3)"),
], ids=["singular", "nan", "inf-3x4", "3x3"])
def test_bad_transform_matrix_names_the_file_and_the_problem(pair, tmp_path, capsys, text, message, cli_error):
    path = tmp_path / "m.json"
    path.write_text(text)
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), "--transform", str(path))))
    assert line.startswith(f"tomoseg: error: {path}: ") and message in line


def test_given_transform_messages():
    from tomoseg.track.registration import given_transform

    with pytest.raises(TomosegError, match="NaN or infinite"):
        given_transform(np.full((4, 4), np.nan), (8, 8, 8))
    with pytest.raises(TomosegError, match="not an invertible 4 x 4 matrix"):
        given_transform(np.zeros((4, 4)), (8, 8, 8))


def test_float_labels_name_the_file_and_the_option(pair, tmp_path, capsys, cli_error):
    np.save(tmp_path / "bl_f.npy", tifffile.imread(pair / "bl.tif").astype(np.float32) * 1.7)
    argv = ["track", str(pair / "b.tif"), str(pair / "a.tif"), "--before-labels", str(tmp_path / "bl_f.npy"),
            "--after-labels", str(pair / "al.tif"), "--out", str(tmp_path / "o")]
    line = cli_error(main(argv))
    assert f"{tmp_path / 'bl_f.npy'} (--before-labels): holds fractional values from 0 to " in line
    assert "(float32); track takes a mask" in line


def _empty_labels(pair, tmp_path, sides) -> dict:
    labels = {"before_labels": "bl.tif", "after_labels": "al.tif"}
    for side in sides:
        labels[f"{side}_labels"] = str(tmp_path / f"{side}_empty.tif")
        tifffile.imwrite(labels[f"{side}_labels"], np.zeros(tifffile.imread(pair / "al.tif").shape, np.uint8))
    return labels


def test_two_scans_with_no_objects_are_refused(pair, tmp_path, capsys, cli_error):
    """Both label files empty (a wrong threshold, the wrong files) ran with exit code 0: a table of nothing, the
    figures warning that their axes collapsed."""
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), **_empty_labels(pair, tmp_path,
                                                                                     ("before", "after")))))
    assert line.startswith(f"tomoseg: error: {tmp_path / 'before_empty.tif'}: holds no objects (read as a mask")
    assert f"and {tmp_path / 'after_empty.tif'}: holds no objects" in line
    assert "nothing to follow between the scans; check that each file holds its scan's objects" in line
    assert not (tmp_path / "o" / "matches.csv").exists()


@pytest.mark.parametrize("scan", ["before", "after"])
def test_one_scan_with_no_objects_is_followed_with_a_warning(pair, tmp_path, capsys, scan):
    """One scan without objects can be the sample's truth (precipitates dissolved by a solution treatment, or
    formed by ageing), so it is tracked: every object of the other scan vanished (appeared), with a warning that
    names the empty file and what to check, as that result more often comes from a wrong file or threshold (it
    said nothing)."""
    out = tmp_path / "o"
    code = main(_track(pair, "--out", str(out), **_empty_labels(pair, tmp_path, (scan,))))
    err = capsys.readouterr().err
    assert code == 0, err
    fate, other = ("appeared", "AFTER") if scan == "before" else ("vanished", "BEFORE")
    assert f"{tmp_path / f'{scan}_empty.tif'}: holds no objects (read as a mask" in err
    assert f"every {other} object is reported as {fate}" in err
    rows = read_csv(out / "matches.csv")
    assert len(rows["status"]) > 10 and set(rows["status"]) == {fate}


def test_one_label_file_given_as_both_scans_is_warned_of(pair, tmp_path, capsys):
    """One label file given as both scans ran in silence: the same objects in both scans, a result about
    nothing. It is said now (and still runs: a check of the tool on known input does it on purpose). One image
    with two label files (two segmentations of one scan compared) is not warned of."""
    out = tmp_path / "o"
    assert main(_track(pair, "--out", str(out), before_labels="bl.tif", after_labels="bl.tif")) == 0
    err = capsys.readouterr().err
    assert (f"tomoseg: warning: {pair / 'bl.tif'} is given as both --before-labels and --after-labels: both "
            "scans get the same objects") in err
    assert (out / "matches.csv").exists()
    assert main(_track(pair, "--out", str(tmp_path / "o2"), after="b.tif")) == 0
    assert "is given as both" not in capsys.readouterr().err


def test_labels_of_another_shape_give_both_shapes(pair, tmp_path, capsys, cli_error):
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), after_labels="al_crop.tif")))
    assert (f"{pair / 'al_crop.tif'} (--after-labels) has shape (40, 120, 100), its image {pair / 'a.tif'} "
            "(48, 128, 128)") in line


def test_truth_of_another_shape_is_refused_before_the_work(pair, small_pair, tmp_path, capsys, cli_error):
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), "--truth", str(small_pair / "truth.json"))))
    assert (f"{small_pair / 'truth.json'}: its BEFORE instance image {small_pair / 'bi.npy'} is 32x64x64, the "
            "scans 48x128x128; give the truth of this pair") in line
    assert not (tmp_path / "o" / "matches.csv").exists()


def test_truth_of_another_pair_of_the_same_shape_is_refused(pair, tmp_path_factory, tmp_path, capsys, cli_error):
    """B7: the truth of another phantom pair of the same shape scored meaningless links (recall 0) without a
    word; the truth now records a sample of its scans' content, and a mismatch is refused before the work."""
    other = _phantom_pair(tmp_path_factory.mktemp("other"), (48, 128, 128), 5)
    line = cli_error(main(_track(pair, "--out", str(tmp_path / "o"), "--truth", str(other / "truth.json"))))
    assert f"{other / 'truth.json'}: describes another pair of scans: {pair / 'b.tif'} (the BEFORE scan)" in line
    assert not (tmp_path / "o" / "matches.csv").exists()
    # the pair's own truth is accepted, the scans read from another format too
    from tomoseg.io import write_volume

    write_volume(str(tmp_path / "b.zarr"), tifffile.imread(pair / "b.tif"))
    argv = _track(pair, "--out", str(tmp_path / "ok"), "--truth", str(pair / "truth.json"))
    argv[1] = str(tmp_path / "b.zarr")
    assert main(argv) == 0


def test_too_little_structure_says_what_to_do(small_pair, tmp_path, capsys, cli_error):
    line = cli_error(main(_track(small_pair, "--out", str(tmp_path / "o"))))
    assert f"{small_pair / 'b.tif'} -> {small_pair / 'a.tif'}: the BEFORE scan holds too little structure" in line
    assert "--transform JSON" in line and "larger scans" in line and "crop size" not in line


def test_failed_registration_warns_and_a_good_one_does_not(pair, tmp_path, capsys):
    """The thresholds (registration.py) against the sweep's pairs: the whole pair registers (correlation 0.62,
    residual 0.63 voxel), the AFTER scan cropped in y and x does not (0.27 and 7.6 voxels; rotation 9.7 deg for
    5.5): only the second warns, and says how bad and what to do."""
    from tomoseg.track.registration import MAX_RESIDUAL_VOX, MIN_CORRELATION

    assert main(_track(pair, "--out", str(tmp_path / "good"), before_labels="bl.tif", after_labels="al.tif")) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    good = json.loads((tmp_path / "good" / "summary.json").read_text(encoding="utf-8"))["transform"]
    assert good["ncc_after"] >= MIN_CORRELATION and good["residual_vox"] <= MAX_RESIDUAL_VOX
    assert main(_track(pair, "--out", str(tmp_path / "crop"), before_labels="bl.tif", after_labels="al_crop.tif",
                       after="a_crop.tif")) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("tomoseg: warning:")]
    assert len(warning) == 1, err
    assert "registration unreliable" in warning[0] and "correlation under the final transform is 0.27" in warning[0]
    assert "disagree with it by 7.6 voxels" in warning[0] and "--transform" in warning[0]
    # a given transform has no figures to judge: no warning
    assert main(_track(pair, "--out", str(tmp_path / "given"), "--transform", str(pair / "truth.json"))) == 0
    assert "warning" not in capsys.readouterr().err


def test_failed_registration_warns_through_the_api(pair):
    import tomoseg

    with pytest.warns(TomosegWarning, match="registration unreliable"):
        tomoseg.track(tifffile.imread(pair / "b.tif"), tifffile.imread(pair / "a_crop.tif"),
                      before_labels=tifffile.imread(pair / "bl.tif"),
                      after_labels=tifffile.imread(pair / "al_crop.tif"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TomosegWarning)
        tomoseg.track(tifffile.imread(pair / "b.tif"), tifffile.imread(pair / "a.tif"),
                      before_labels=tifffile.imread(pair / "bl.tif"), after_labels=tifffile.imread(pair / "al.tif"))


def test_a_refit_on_many_objects_outweighs_poor_image_figures(pair, monkeypatch):
    """The image stage's figures may look poor while the refit on matched objects agrees closely with the
    transform (here: the image figures are made to look failed on a good pair): no warning then, since many
    centroids confirm the transform; without the refit (no_refine) the warning stays."""
    import tomoseg
    from tomoseg.track import tracking

    monkeypatch.setattr(tracking, "reliability_problems", lambda reg: ["the crops' correlation is 0.10"])
    monkeypatch.setattr(tracking, "CONFIRMING_PAIRS", 6)  # the small pair has fewer objects than a real scan
    args = (tifffile.imread(pair / "b.tif"), tifffile.imread(pair / "a.tif"))
    labels = {"before_labels": tifffile.imread(pair / "bl.tif"), "after_labels": tifffile.imread(pair / "al.tif")}
    with warnings.catch_warnings():
        warnings.simplefilter("error", TomosegWarning)
        result = tomoseg.track(*args, **labels)
    assert result.registration.coarse["objects_refit"]["used"] >= 6
    with pytest.warns(TomosegWarning, match="registration unreliable: the crops' correlation is 0.10"):
        tomoseg.track(*args, **labels, options=tracking.TrackOptions(refine_on_objects=False))


def test_a_model_given_with_labels_is_said_to_be_unused(pair, tmp_path, capsys):
    assert main(_track(pair, "--out", str(tmp_path / "o"), "--model", "v1")) == 0
    assert "--model v1 is not used: the labels are given" in capsys.readouterr().err


def test_more_matches_than_a_tiff_holds_go_to_zarr_instead_of_failing(pair, tmp_path, capsys, monkeypatch):
    """A TIFF match-ID image holds IDs up to 2^24; past that the tracking used to fail at its very end. The
    labels now go to OME-Zarr beside it, with a warning (the limit lowered here to 3 matches)."""
    from tomoseg.io import open_volume
    from tomoseg.objects import label_image

    monkeypatch.setattr(label_image, "TIFF_MAX_ID", 3)
    out = tmp_path / "o"
    assert main(_track(pair, "--out", str(out))) == 0
    err = capsys.readouterr().err
    assert "match IDs do not fit a TIFF label image" in err and "after_match_ids.zarr" in err
    assert not (out / "after_match_ids.tif").exists()
    ids = np.asarray(open_volume(str(out / "after_match_ids.zarr"))[:])
    assert ids.dtype == np.uint32 and ids.max() > 3


@pytest.fixture(scope="module")
def label_files(pair):
    """The pair's objects in the types users save them as (review T1): the uint8 masks as uint16, a 0-255
    probability map as uint8 (the reference), uint16 and float32, the map as fractions in [0, 1] (float32: predict's,
    ilastik's), and the gray image as uint16."""
    from scipy import ndimage

    for scan in ("b", "a"):
        mask = tifffile.imread(pair / f"{scan}l.tif")
        tifffile.imwrite(pair / f"{scan}_mask16.tif", mask.astype(np.uint16))
        prob = np.rint(255 * ndimage.gaussian_filter(mask.astype(np.float64), 1.0)).astype(np.uint8)
        for name, dtype in (("map8", np.uint8), ("map16", np.uint16), ("map32f", np.float32)):
            tifffile.imwrite(pair / f"{scan}_{name}.tif", prob.astype(dtype))
        tifffile.imwrite(pair / f"{scan}_map01.tif", (prob / np.float32(255)).astype(np.float32))
        gray = tifffile.imread(pair / f"{scan}.tif").astype(np.float64)
        gray = (gray - gray.min()) / (gray.max() - gray.min()) * 60000
        tifffile.imwrite(pair / f"{scan}_gray16.tif", gray.astype(np.uint16))
    return pair


@pytest.mark.parametrize("name, reference, note", [
    ("mask16", "l", "read as a mask (values 0 and 1 only): object where value is not 0"),
    ("map16", "_map8", "read as a probability map (values 0-255, stored as uint16): object where value > 127"),
    ("map32f", "_map8", "read as a probability map (values 0-255, stored as float32): object where value > 127"),
    ("map01", "_map8", "read as a probability map in [0, 1] (float32): object where rint(p x 255) > 127, i.e. p "
                       "above about 0.500"),
])
def test_label_files_are_read_as_analyze_reads_them(label_files, tmp_path, capsys, name, reference, note):
    """A uint16 0/1 mask was one object (its ID 1), a uint16 probability map onion shells (each grey level an
    object: 230 "persisting" and a 22 degree turn), a float32 map of whole values 0-255 refused: each now gives
    the table of the same objects saved as uint8, with analyze's note on stderr. A map in [0, 1] was read
    with the note above but thresholded at 127 unscaled: no objects, every BEFORE object "vanished"."""
    d = label_files

    def run(out, b, a):
        assert main(["track", str(d / "b.tif"), str(d / "a.tif"), "--before-labels", str(d / b), "--after-labels",
                     str(d / a), "--out", str(out), "-q"]) == 0
        return (out / "matches.csv").read_text(encoding="utf-8"), capsys.readouterr().err

    expected, _ = run(tmp_path / "ref", f"b{reference}.tif", f"a{reference}.tif")
    got, err = run(tmp_path / "o", f"b_{name}.tif", f"a_{name}.tif")
    assert got == expected
    assert f"tomoseg: note: {d / f'b_{name}.tif'} (--before-labels): {note}\n" in err
    assert f"tomoseg: note: {d / f'a_{name}.tif'} (--after-labels): {note}\n" in err


def test_label_images_keep_their_ids_and_say_so(label_files, tmp_path, capsys):
    d = label_files
    assert main(_track(d, "--out", str(tmp_path / "o"), before_labels="bi.npy", after_labels="ai.npy")) == 0
    err = capsys.readouterr().err
    assert f"tomoseg: note: {d / 'bi.npy'} (--before-labels): read as a label image (object IDs): each ID is one " \
           "object\n" in err
    import csv

    rows = list(csv.DictReader((tmp_path / "o" / "matches.csv").open(encoding="utf-8")))
    ids = set(np.unique(np.load(d / "bi.npy"))) - {0}
    assert {int(r["before_label"]) for r in rows if r["before_label"] != "0"} == ids


def test_a_gray_image_given_as_labels_is_refused_at_once(label_files, tmp_path, capsys, cli_error):
    """A uint16 gray image given as labels ran for hours (every grey level an object); analyze refuses it."""
    import time

    t0 = time.perf_counter()
    line = cli_error(main(_track(label_files, "--out", str(tmp_path / "o"), before_labels="b_gray16.tif",
                                 after_labels="a_gray16.tif")))
    assert time.perf_counter() - t0 < 10
    assert line.startswith(f"tomoseg: error: {label_files / 'b_gray16.tif'} (--before-labels): holds values up to ")
    assert "(uint16) and does not look like object IDs" in line and "pass --read-as mask" in line
    assert not (tmp_path / "o").exists()


def test_negative_labels_are_named_with_their_option_and_values(label_files, tmp_path, capsys, cli_error):
    """Review T6: "labels of dtype int16: give ... non-negative integer labels" named neither file nor option."""
    neg = -np.load(label_files / "bi.npy").astype(np.int16)
    np.save(tmp_path / "neg.npy", neg)
    line = cli_error(main(_track(label_files, "--out", str(tmp_path / "o"), before_labels=str(tmp_path / "neg.npy"))))
    assert line.startswith(f"tomoseg: error: {tmp_path / 'neg.npy'} (--before-labels): holds negative values (down "
                           f"to {neg.min()}, int16)")


@pytest.mark.parametrize("name", ["mask16", "map16"])
def test_label_files_larger_than_memory_are_read_as_in_memory(label_files, name):
    """The chunked path (in_memory_voxels lowered) read a uint16 mask or map as object IDs too."""
    import dataclasses

    import tomoseg
    from tomoseg.io import open_volume
    from tomoseg.track import TrackOptions

    d = label_files
    results = []
    for limit in (TrackOptions().in_memory_voxels, 200_000):
        options = dataclasses.replace(TrackOptions(), in_memory_voxels=limit, chunks=(24, 64, 64))
        r = tomoseg.track(open_volume(str(d / "b.tif")), open_volume(str(d / "a.tif")),
                          before_labels=open_volume(str(d / f"b_{name}.tif")),
                          after_labels=open_volume(str(d / f"a_{name}.tif")), options=options)
        results.append((sorted(r.matches["status"].tolist()), r.scans[0].reading.kind, len(r.before["label"])))
        r.discard()
    reference = tomoseg.track(tifffile.imread(d / "b.tif"), tifffile.imread(d / "a.tif"),
                              before_labels=tifffile.imread(d / "bl.tif"), after_labels=tifffile.imread(d / "al.tif"))
    assert results[0] == results[1]
    assert results[0][1] == ("mask" if name == "mask16" else "probability")
    if name == "mask16":
        assert results[0][0] == sorted(reference.matches["status"].tolist())
        assert results[0][2] == len(reference.before["label"]) > 10


def test_without_a_voxel_size_nm_columns_are_empty_and_json_is_strict(pair, tmp_path, capsys):
    """Review T5: without a voxel size the _nm columns held voxel values (volume_nm3 = volume_vox); T7:
    summary.json held bare NaN (empty size classes), which a strict JSON parser refuses."""
    import csv

    for scan in ("b", "a"):  # the scans without their recorded voxel size
        np.save(tmp_path / f"{scan}.npy", tifffile.imread(pair / f"{scan}.tif"))
    out = tmp_path / "o"
    assert main(["track", str(tmp_path / "b.npy"), str(tmp_path / "a.npy"), "--before-labels", str(pair / "bl.tif"),
                 "--after-labels", str(pair / "al.tif"), "--out", str(out), "-q"]) == 0
    assert "voxel size unknown; nm columns are empty" in capsys.readouterr().err
    rows = list(csv.DictReader((out / "matches.csv").open(encoding="utf-8")))
    nm = [c for c in rows[0] if c.endswith(("_nm", "_nm3"))]
    assert {"before_volume_nm3", "before_radius_nm", "displacement_nm", "delta_radius_nm"} <= set(nm)
    assert all(r[c] == "" for r in rows for c in nm)
    assert any(r["before_volume_vox"] not in ("", "0") for r in rows)

    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    summary = strict((out / "summary.json").read_text(encoding="utf-8"))
    strict((out / "transform.json").read_text(encoding="utf-8"))
    assert summary["voxel_size_nm"] is None
    assert all(c["mean_delta_radius_nm"] is None for c in summary["growth_by_size_class"])
    assert any(c["objects"] == 0 and c["median_delta_volume_rel"] is None for c in summary["growth_by_size_class"])


@pytest.mark.parametrize("extra, message", [
    (["--tolerance-nm", "-5"], "--tolerance-nm -5: give a positive distance in nm"),
    (["--max-rotation", "200"], "--max-rotation 200: give degrees from 0 to 180 (180: any rotation)"),
])
def test_bad_numbers_are_named_as_given(pair, tmp_path, capsys, cli_error, extra, message):
    """Review T6: "tolerance_nm -5.0 must be positive" named the dataclass field, not the option."""
    assert cli_error(main(_track(pair, "--out", str(tmp_path / "o"), *extra))) == f"tomoseg: error: {message}"


def test_help_and_stdout_line_say_units_defaults_and_objects(pair, tmp_path, capsys):
    """Review T7: --threshold without its default, --max-rotation without a unit, --voxel-size not saying it is
    both scans'; the stdout line counted merges and splits as events only, the map's legend objects."""
    import re

    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-rotation DEG" in text and "(0-254; default 127)" in text and "of both scans" in text
    assert "label image (object IDs, uint16 or wider; each ID one object)" in text
    assert main(_track(pair, "--out", str(tmp_path / "o"))) == 0
    line = capsys.readouterr().out.splitlines()[0]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))["objects_by_status"]
    for status in ("merged", "split"):
        c = summary[status]
        assert f"{status} {c['events']} ({c['before_objects']} BEFORE -> {c['after_objects']} AFTER objects)" in line
    assert re.search(r"persisting \d+; appeared \d+; vanished \d+; merged", line)


def test_each_legend_says_what_it_counts_as_the_stdout_line_counts(pair, tmp_path, capsys):
    """Review T7: the map's legend counted a merge's rows ("merged (2)", one per BEFORE object, drawn as one
    marker), the radius figure's its groups ("merged (1)"), the stdout line events. Both legends now name the
    unit, with the stdout line's numbers (objects off the edge and of the minimum size)."""
    assert main(_track(pair, "--out", str(tmp_path / "o"))) == 0
    line = capsys.readouterr().out.splitlines()[0]
    counts = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))["objects_by_status"]
    assert counts["merged"]["events"] >= 1 and counts["split"]["events"] >= 1
    units = {"persisting": "pair", "appeared": "object", "vanished": "object", "merged": "group", "split": "group"}
    legends = {}
    for status, c in counts.items():
        n = c["events"]
        legends[status] = f"{status}: {n} {units[status]}{'' if n == 1 else 's'}" + (
            f" ({c['before_objects']} → {c['after_objects']} objects)" if status in ("merged", "split") else "")
        assert f"{status} {n}" in line
    svg = {name: (tmp_path / "o" / "figures" / f"track_{name}.svg").read_text(encoding="utf-8")
           for name in ("map", "radius")}
    for status, text in legends.items():
        if counts[status]["events"]:
            assert text in svg["map"], (status, text)
            if status in ("persisting", "merged", "split"):
                assert text in svg["radius"], (status, text)


def test_swapped_label_files_are_warned_of(pair, tmp_path, capsys):
    """Each scan's label file given as the other's: the transform estimated from the images (right, as the images
    are in their places) puts the AFTER file's objects on the BEFORE file's, not the other way round. Said with
    a warning that names both options; it ran silently, reporting most objects vanished and appeared, the refit
    on the wrong pairs pulling the transform off."""
    argv = ["track", str(pair / "b.tif"), str(pair / "a.tif"), "--before-labels", str(pair / "al.tif"),
            "--after-labels", str(pair / "bl.tif"), "-q"]
    assert main([*argv, "--out", str(tmp_path / "swapped")]) == 0
    err = capsys.readouterr().err
    assert "tomoseg: warning: the label files look swapped" in err
    assert "--before-labels holds the objects of the BEFORE scan" in err
    summary = json.loads((tmp_path / "swapped" / "summary.json").read_text())
    assert any("look swapped" in line for line in summary["notes"])
    assert main(_track(pair, "--out", str(tmp_path / "right"))) == 0  # the right way round: nothing said
    assert "swapped" not in capsys.readouterr().err


def test_swapped_label_files_are_warned_of_under_a_given_transform_too(pair, tmp_path, capsys):
    """The swap check ran only on an estimated transform; with --transform, swapped label files ran with a
    warning that the transform disagrees with the objects and asked "is it AFTER -> BEFORE?", leading to the
    wrong fix. Centroids cannot tell swapped labels from an inverted transform; crops of the images can: the
    swap is said where they confirm the transform, the inverted transform where they favour its inverse."""
    inverse = tmp_path / "inverse.json"
    inverse.write_text(json.dumps({"matrix": np.linalg.inv(json.loads((pair / "truth.json").read_text())["matrix"])
                                   .tolist()}))
    right = ["--transform", str(pair / "truth.json")]
    assert main([*_track(pair, *right, before_labels="al.tif", after_labels="bl.tif"),
                 "--out", str(tmp_path / "swapped")]) == 0
    err = capsys.readouterr().err
    assert "tomoseg: warning: the label files look swapped: the given transform puts" in err
    assert "exchanged; the images confirm the transform (band-passed correlation of the images" in err
    assert "disagrees" not in err and "AFTER -> BEFORE" not in err
    assert main([*_track(pair, "--transform", str(inverse), before_labels="bl.tif", after_labels="al.tif"),
                 "--out", str(tmp_path / "inverted")]) == 0
    err = capsys.readouterr().err
    assert "the given transform disagrees with the objects" in err and "is it AFTER -> BEFORE?" in err
    assert "swapped" not in err
    assert main([*_track(pair, *right, before_labels="bl.tif", after_labels="al.tif"),
                 "--out", str(tmp_path / "right")]) == 0
    assert "warning" not in capsys.readouterr().err
