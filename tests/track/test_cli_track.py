"""``tomoseg phantom --pair`` and ``tomoseg track`` in-process: files, scores, and one-line errors."""

import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import read_volume
from tomoseg.table import read_csv


@pytest.fixture(scope="module")
def phantom_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    argv = ["phantom", str(d / "before.tif"), "--labels", str(d / "before_labels.tif"), "--instances",
            str(d / "before_ids.npy"), "--pair", str(d / "after.tif"), "--pair-labels", str(d / "after_labels.tif"),
            "--pair-instances", str(d / "after_ids.npy"), "--pair-truth", str(d / "truth.json"),
            "--shape", "32", "112", "112", "--seed", "2", "--set", "object_fraction=0.006",
            "--rotation", "30", "1", "-1", "--translation", "1", "-2", "3"]
    assert main(argv) == 0
    return d


def test_phantom_pair_files(phantom_pair):
    d = phantom_pair
    truth = json.loads((d / "truth.json").read_text(encoding="utf-8"))
    assert truth["rotation_deg"] == [30.0, 1.0, -1.0] and np.asarray(truth["matrix"]).shape == (4, 4)
    assert read_volume(str(d / "after.tif")).shape == (32, 112, 112)
    ids = read_volume(str(d / "after_ids.npy"))
    assert set(truth["matches"]["after_label"]) - {0} == set(np.unique(ids)) - {0}


def test_track_with_a_given_transform_and_truth(phantom_pair, capsys):
    d = phantom_pair
    out = d / "run"
    code = main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--truth", str(d / "truth.json"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "recall 1.000" in printed
    for name in ("matches.csv", "summary.json", "transform.json", "track.html", "after_match_ids.tif",
                 "figures/track_radius.png", "figures/track_volume_change.png", "figures/track_map.png"):
        assert (out / name).exists(), name
    m = read_csv(out / "matches.csv")
    assert {"before_volume_nm3", "delta_radius_nm", "displacement_nm"} <= set(m)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["truth"]["transform_max_error_vox"] == pytest.approx(0, abs=1e-6)
    assert summary["voxel_size_nm"] == pytest.approx([29.33] * 3)
    ids = read_volume(str(out / "after_match_ids.tif"))
    assert ids.dtype == np.uint16 and ids.max() == m["match_id"][m["after_label"] > 0].max()
    # the written transform reads back as a --transform
    again = d / "again"
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(out / "transform.json"),
                 "--out", str(again), "-q"]) == 0
    assert (again / "matches.csv").read_text(encoding="utf-8") == (out / "matches.csv").read_text(encoding="utf-8")
    # masks: the tool numbers the objects itself; the truth's instance files map them for the scores
    masks = d / "masks"
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels",
                 str(d / "before_labels.tif"), "--after-labels", str(d / "after_labels.tif"), "--transform",
                 str(d / "truth.json"), "--truth", str(d / "truth.json"), "--out", str(masks)]) == 0
    assert "recall 1.000, precision 1.000" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--before-labels", "x.tif"], "together"),
    (["--transform", "missing.json"], "missing.json: no such file"),
])
def test_track_errors(phantom_pair, tmp_path, capsys, extra, message):
    d = phantom_pair
    code = main(["track", str(d / "before.tif"), str(d / "after.tif"), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_track_refuses_a_full_folder(phantom_pair, tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("x")
    d = phantom_pair
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--out", str(tmp_path / "o")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite replaces only a folder of tomoseg track's own results
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--out", str(tmp_path / "o"),
                 "--overwrite"]) == 1
    assert "not an earlier tomoseg result" in capsys.readouterr().err


def test_phantom_pair_needs_its_labels(tmp_path, capsys):
    code = main(["phantom", str(tmp_path / "b.tif"), "--labels", str(tmp_path / "bl.tif"), "--pair",
                 str(tmp_path / "a.tif"), "--shape", "24", "96", "96"])
    assert code == 1 and "--pair-labels" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "segmented"])
def test_track_of_scans_larger_than_memory_writes_what_in_memory_writes(phantom_pair, tmp_path, monkeypatch, capsys,
                                                                       labels):
    """Above ``in_memory_voxels`` the CLI labels, measures and matches chunk by chunk, and without labels first
    segments both scans with ``segment`` into OUT (kept there): matches.csv and the match-ID image are those of
    the in-memory run; the labels kept on disk are gone afterwards."""
    import dataclasses
    import tempfile

    from tomoseg.cli import track as cli_track

    d = phantom_pair
    argv = ["track", str(d / "before.tif"), str(d / "after.tif"), "--transform", str(d / "truth.json")]
    if labels:
        argv += ["--before-labels", str(d / "before_labels.tif"), "--after-labels", str(d / "after_labels.tif")]
    assert main(argv + ["--out", str(tmp_path / "memory"), "-q"]) == 0
    plain = cli_track._options
    monkeypatch.setattr(cli_track, "_options", lambda args: dataclasses.replace(plain(args), in_memory_voxels=10_000,
                                                                              chunks=(16, 48, 48)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the labels are kept
    (tmp_path / "tmp").mkdir()
    assert main(argv + ["--out", str(tmp_path / "chunked")]) == 0
    err = capsys.readouterr().err
    assert "track: 100%" in err and "match IDs: 100%" in err
    assert (tmp_path / "chunked" / "matches.csv").read_text(encoding="utf-8") == \
        (tmp_path / "memory" / "matches.csv").read_text(encoding="utf-8")
    assert np.array_equal(read_volume(str(tmp_path / "chunked" / "after_match_ids.tif")),
                          read_volume(str(tmp_path / "memory" / "after_match_ids.tif")))
    assert not list((tmp_path / "tmp").iterdir())
    probability = [(tmp_path / "chunked" / f"{s}_probability.zarr").exists() for s in ("before", "after")]
    assert probability == [not labels] * 2
    # the model that made the objects, in memory or by segment into OUT (review S5)
    segs = [json.loads((tmp_path / run / "summary.json").read_text()).get("segmentation")
            for run in ("memory", "chunked")]
    if labels:
        assert segs == [None, None]
    else:
        assert segs[0]["model"]["sha256"] == segs[1]["model"]["sha256"] and segs[1]["model"]["version"] == "v3"
        assert segs[1]["maps"]["after"]["record"].endswith("after_probability.zarr.provenance.json")


@pytest.mark.slow
def test_track_resume_reuses_finished_probability_maps(phantom_pair, tmp_path, monkeypatch, capsys):
    """Scans segmented into OUT: ``--resume`` reuses a finished map (its provenance names the same input) and
    segments only the one missing; the results equal the first run's. Without --resume or --overwrite the full
    folder is refused."""
    import dataclasses

    from tomoseg.cli import track as cli_track
    from tomoseg.inference import engine

    d = phantom_pair
    plain = cli_track._options
    monkeypatch.setattr(cli_track, "_options", lambda args: dataclasses.replace(plain(args), in_memory_voxels=10_000,
                                                                              chunks=(16, 48, 48)))
    out = tmp_path / "run"
    argv = ["track", str(d / "before.tif"), str(d / "after.tif"), "--transform", str(d / "truth.json"),
            "--out", str(out), "-q"]
    assert main(argv) == 0
    first = (out / "matches.csv").read_text(encoding="utf-8")
    import shutil

    shutil.rmtree(out / "after_probability.zarr")  # as if cut short before the AFTER scan was segmented
    (out / "after_probability.zarr.provenance.json").unlink()
    inputs = []
    real = engine.segment
    monkeypatch.setattr(engine, "segment", lambda path, *a, **k: inputs.append(str(path)) or real(path, *a, **k))
    monkeypatch.setattr("tomoseg.inference.segment", engine.segment)
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    assert inputs == [str(d / "after.tif")]
    assert "reusing" in capsys.readouterr().err and (out / "matches.csv").read_text(encoding="utf-8") == first


def test_truth_without_instance_images_scores_the_transform_only(phantom_pair, tmp_path, capsys):
    """A truth file naming no instance images cannot tell which of the tool's objects is which of the truth's:
    with masks as labels the links are not scored (they used to be compared by label number: recall ~0.03),
    the transform still is; with the phantom's own instance IDs as labels the links are scored."""
    d = phantom_pair
    truth = json.loads((d / "truth.json").read_text(encoding="utf-8"))
    truth["before_instances"] = truth["after_instances"] = None
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    base = ["track", str(d / "before.tif"), str(d / "after.tif"), "--transform", str(d / "truth.json"),
            "--truth", str(tmp_path / "truth.json")]
    assert main(base + ["--before-labels", str(d / "before_labels.tif"), "--after-labels",
                        str(d / "after_labels.tif"), "--out", str(tmp_path / "masks")]) == 0
    out, err = capsys.readouterr()
    assert "names no instance image for the before and after scan" in err
    assert "against the truth: rotation error 0.000 deg" in out and "recall" not in out
    summary = json.loads((tmp_path / "masks" / "summary.json").read_text(encoding="utf-8"))
    assert "recall" not in summary["truth"] and summary["truth"]["transform_max_error_vox"] < 1e-6
    assert "transform_max_error_vox" in (tmp_path / "masks" / "track.html").read_text(encoding="utf-8")
    assert main(base + ["--before-labels", str(d / "before_ids.npy"), "--after-labels", str(d / "after_ids.npy"),
                        "--out", str(tmp_path / "ids")]) == 0
    assert "recall 1.000, precision 1.000" in capsys.readouterr().out


def test_track_bar_counts_the_registration_too(phantom_pair, tmp_path, capsys):
    """Without --transform the registration reads both scans and the objects are matched twice (before and after
    the refit on them): the one bar counts all of it and ends at 100 %; with --no-refine, one matching."""
    import re

    d = phantom_pair
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--out", str(tmp_path / "o")]) == 0
    size = 32 * 112 * 112
    last = capsys.readouterr().err.strip().splitlines()
    bar = [line for line in last if line.startswith("track:")][-1]
    assert re.match(rf"track: 100% \({6 * size / 1e6:.2f} Mvox of {6 * size / 1e6:.2f} Mvox\)", bar), bar
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--out", str(tmp_path / "o2"), "--no-refine"]) == 0
    bar = [line for line in capsys.readouterr().err.splitlines() if line.startswith("track:")][-1]
    assert re.match(rf"track: 100% \({5 * size / 1e6:.2f} Mvox of {5 * size / 1e6:.2f} Mvox\)", bar), bar


def test_resume_reuses_a_finished_map_only_for_the_same_content_model_and_settings(phantom_pair, tmp_path):
    """``--resume`` used to reuse OUT/before_probability.zarr whenever its provenance named the same path: after
    the scan at that path was replaced, or with another --model, the old map was used silently. Now the scan's
    content fingerprint (as segment's own resume keeps), the model's sha256, the threshold and the voxel size
    must match; otherwise the map is segmented again (what differs is named)."""
    import shutil

    from tomoseg.cli.track import _finished_map
    from tomoseg.inference.fingerprint import input_fingerprint
    from tomoseg.io import open_volume
    from tomoseg.shipped import file_sha256, model_path

    scan = tmp_path / "before.tif"
    shutil.copy(phantom_pair / "before.tif", scan)
    prob = tmp_path / "run" / "before_probability.zarr"
    prob.mkdir(parents=True)
    record = {"input": str(scan), "input_content": input_fingerprint(open_volume(str(scan)), str(scan)),
              "model": {"sha256": file_sha256(model_path(None))}, "threshold": 127, "voxel_size_nm": [29.33] * 3}
    prob.with_name(prob.name + ".provenance.json").write_text(json.dumps(record))
    assert _finished_map(prob, scan, None, 127, (29.33,) * 3)[0] == record
    assert _finished_map(prob, scan, "v1", 127, (29.33,) * 3) == (None, ["model"])
    assert _finished_map(prob, scan, None, 100, (29.33,) * 3) == (None, ["threshold"])
    assert _finished_map(prob, scan, None, 127, (60, 30, 30)) == (None, ["voxel size"])
    shutil.copy(phantom_pair / "after.tif", scan)  # another scan at the same path
    record_now, stale = _finished_map(prob, scan, None, 127, (29.33,) * 3)
    assert record_now is None and len(stale) == 1 and stale[0].startswith("input content (") and "content)" in stale[0]


def test_change_map_spans_the_after_scan_and_is_to_scale(phantom_pair, tmp_path, monkeypatch):
    """The map is drawn in the AFTER frame: its extent is the AFTER scan's (it was the BEFORE scan's, so with
    BEFORE cropped to x < 80 the AFTER objects past x = 80 were off the plot), and the side view's aspect is
    z over x in nm."""
    from tomoseg.io import write_volume
    from tomoseg.track import figures

    d = phantom_pair
    write_volume(str(tmp_path / "b.tif"), read_volume(str(d / "before.tif"))[:, :, :80], voxel_size=(29.33,) * 3)
    np.save(tmp_path / "bi.npy", read_volume(str(d / "before_ids.npy"))[:, :, :80])
    seen = {}
    real = figures.change_map
    monkeypatch.setattr(figures, "change_map", lambda *a, **k: seen.update(k) or real(*a, **k))
    assert main(["track", str(tmp_path / "b.tif"), str(d / "after.tif"), "--before-labels", str(tmp_path / "bi.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--out", str(tmp_path / "o"), "-q"]) == 0
    assert tuple(seen["shape"]) == (32, 112, 112)
    from tomoseg.track.figures import view_aspects

    assert view_aspects((60, 30, 20)) == (1.5, 3.0)


def test_a_voxel_size_recorded_in_one_scan_only_is_named(phantom_pair, tmp_path, capsys):
    """The AFTER scan saved without metadata: its voxel size was silently taken from the BEFORE scan's file; now
    a note names the file and the size assumed. With --voxel-size, no note."""
    from tomoseg.io import write_volume

    d = phantom_pair
    write_volume(str(tmp_path / "a.npy"), read_volume(str(d / "after.tif")))
    argv = ["track", str(d / "before.tif"), str(tmp_path / "a.npy"), "--before-labels", str(d / "before_ids.npy"),
            "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"), "-q"]
    assert main(argv + ["--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert f"tomoseg: note: {tmp_path / 'a.npy'} records no voxel size: using {d / 'before.tif'}'s 29.33 × 29.33 × " \
           "29.33 nm for both scans; pass --voxel-size Z Y X to confirm" in err
    assert main(argv + ["--out", str(tmp_path / "o2"), "--voxel-size", "29.33", "29.33", "29.33"]) == 0
    assert "records no voxel size" not in capsys.readouterr().err


@pytest.mark.parametrize("labels", [True, False])
def test_out_of_memory_advice_names_only_options_track_has(phantom_pair, tmp_path, monkeypatch, capsys, labels):
    """Out of memory in track: one line whose advice track can follow (it has no --tile-size, S1)."""
    import tomoseg.track.registration as registration

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(registration, "downsample", no_memory)
    d = phantom_pair
    given = ["--before-labels", str(d / "before_ids.npy"), "--after-labels", str(d / "after_ids.npy")] if labels else []
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), *given, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tomoseg: error: out of memory; ")
    assert "a machine with more memory" in err
    if labels:
        assert "--tile-size" not in err and "docs/tracking.md" in err
    else:  # track segments the scans with its own tile size: segmenting them first is what can be changed
        assert "tomoseg segment, with a smaller --tile-size" in err and "--before-labels" in err


def test_track_figures_are_paper_ready_and_report_shows_the_tracking(phantom_pair, capsys):
    """F5: the track figures were 110 dpi PNG only, tab10 colours, axes in voxels, no captions; F10: `report` of a
    track folder showed an 'Object analysis' of the voxel size alone, the tracking summary dropped."""
    from PIL import Image

    d = phantom_pair
    out = d / "figs_run"
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--out", str(out), "-q"]) == 0
    captions = json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert set(captions) == {"track_radius", "track_volume_change", "track_map"}
    for name in captions:
        png = out / "figures" / f"{name}.png"
        with Image.open(png) as im:
            assert im.info["dpi"] == pytest.approx((300, 300), abs=1)
        svg = png.with_suffix(".svg").read_text(encoding="utf-8")
        assert "#d62728" not in svg and "#2ca02c" not in svg  # tab10's red and green
        assert png.with_suffix(".pdf").exists()
    svg = (out / "figures" / "track_map.svg").read_text(encoding="utf-8")
    assert "x (µm)" in svg and "voxels" not in svg
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Tracking between two scans" in html and "Objects by status" in html and "Object analysis" not in html
    assert __import__("html").escape(captions["track_map"]) in html


def test_phantom_figure_from_the_cli(tmp_path, capsys):
    """F5: phantom_figure could not be called from the CLI; 110 dpi PNG only, pure red contours."""
    from PIL import Image

    fig = tmp_path / "ph.png"
    argv = ["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"), "--shape", "24", "64", "64",
            "--figure", str(fig)]
    assert main(argv) == 0
    with Image.open(fig) as im:
        assert im.info["dpi"] == pytest.approx((300, 300), abs=1) and im.size[0] == int(175 / 25.4 * 300)
    svg = fig.with_suffix(".svg").read_text(encoding="utf-8")
    assert "200 nm" in svg and "#ff0000" not in svg and fig.with_suffix(".pdf").exists()
    assert not (tmp_path / "captions.json").exists()  # a user's folder: nothing beside the figure
    assert main(argv + ["--overwrite"]) == 1
    assert "ph.png already exists" in capsys.readouterr().err


def test_track_over_an_analyze_folder_clears_analyzes_results(phantom_pair, tmp_path, capsys):
    """Review D5: track --out over an analyze folder (--overwrite) kept analyze's objects.csv and figures beside
    track's, and the report mixed two commands on two inputs. Another tool's results are removed, as analyze
    and evaluate remove each other's; a user's own file in the folder stays."""
    d = phantom_pair
    out = tmp_path / "res"
    assert main(["analyze", str(d / "before_labels.tif"), "--out", str(out), "-q"]) == 0
    assert (out / "objects.csv").exists() and (out / "figures" / "size_histogram.png").exists()
    (out / "notes.txt").write_text("mine")
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--out", str(out), "--overwrite", "-q"]) == 0
    assert not (out / "objects.csv").exists() and not (out / "fraction_along_z.csv").exists()
    assert not list((out / "figures").glob("size_histogram.*")) and not list((out / "figures").glob("objects_3d.*"))
    assert (out / "matches.csv").exists() and (out / "figures" / "track_map.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert "objects_by_status" in json.loads((out / "summary.json").read_text())  # track's summary


def test_a_reading_revised_mid_pass_continues_the_track_bar(tmp_path, monkeypatch, capsys):
    """Labels larger than memory whose first look (spread slices) shows only 0 and 1 are read as masks; the
    full pass then finds probability values between those slices and reads them again. That restarted track's
    whole bar (registration and BEFORE scan counted again from 0 %, ending near 70 %). Now the bar goes on:
    the voxels read again are added to its total, the bar says so, and it ends at 100 %."""
    import dataclasses
    import re

    from tomoseg.cli import track as cli_track
    from tomoseg.io import write_volume

    shape = (48, 64, 64)
    prob = np.zeros(shape, np.uint16)  # a map converted to 16 bits: whole values 0-255
    rng = np.random.default_rng(0)
    for y, x in [(10, 10), (10, 40), (40, 12), (42, 44), (25, 28)]:
        prob[35:38, y:y + 8, x:x + 8] = 130 + rng.integers(0, 120, (3, 8, 8))  # between the slices looked at
    write_volume(str(tmp_path / "p.tif"), prob, voxel_size=(30, 30, 30))
    write_volume(str(tmp_path / "img.tif"), (prob > 0).astype(np.float32), voxel_size=(30, 30, 30))
    (tmp_path / "m.json").write_text(json.dumps({"matrix": np.eye(4).tolist()}))
    plain = cli_track._options
    monkeypatch.setattr(cli_track, "_options", lambda args: dataclasses.replace(plain(args), in_memory_voxels=10_000,
                                                                              chunks=(16, 32, 32)))
    assert main(["track", str(tmp_path / "img.tif"), str(tmp_path / "img.tif"), "--before-labels",
                 str(tmp_path / "p.tif"), "--after-labels", str(tmp_path / "p.tif"), "--transform",
                 str(tmp_path / "m.json"), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "p.tif (--before-labels): read as a probability map" in err
    lines = [line for line in err.splitlines() if line.startswith("track")]
    assert any(line.startswith("track (reading p.tif again): ") for line in lines), lines
    counted = [float(re.search(r"\(([\d.]+) kvox of", line).group(1)) for line in lines if "kvox of" in line]
    assert counted == sorted(counted), lines  # never back to 0 %
    size = 48 * 64 * 64  # labelled twice, matched once (the transform given), and some voxels read again
    final = re.match(r"track: 100% \(([\d.]+) kvox of ([\d.]+) kvox\)", lines[-1])
    assert final and final.group(1) == final.group(2) and float(final.group(2)) > 3 * size / 1e3, lines


def test_truth_instance_images_are_opened_once(phantom_pair, tmp_path, monkeypatch):
    """track --truth opened each instance image twice (its shape checked before the work, then again for the
    scores), leaving the first open: each is now opened once, used for both, and closed when track ends."""
    import tomoseg.io

    d = phantom_pair
    opened, closed, real = [], [], tomoseg.io.open_volume

    def counting(path, *args, **kwargs):
        vol = real(path, *args, **kwargs)
        if str(path).endswith("_ids.npy"):
            opened.append(str(path))
            vol.close = lambda close=vol.close: (closed.append(str(path)), close())
        return vol

    monkeypatch.setattr(tomoseg.io, "open_volume", counting)
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels",
                 str(d / "before_labels.tif"), "--after-labels", str(d / "after_labels.tif"), "--transform",
                 str(d / "truth.json"), "--truth", str(d / "truth.json"), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert sorted(opened) == sorted(closed) == [str(d / "after_ids.npy"), str(d / "before_ids.npy")]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert summary["truth"]["recall"] == pytest.approx(1.0)


def test_track_without_labels_names_the_model_and_says_the_counts_are_upper_bounds(phantom_pair, tmp_path, capsys):
    """Review S5 and S7: track segmenting scans in memory recorded no model at all (no map, no segment
    record), and neither stdout nor track.html said that appear/vanish/split counts from a model are noisy.
    summary.json names the model (SHA-256, shipped name, version) and the threshold; stdout and track.html
    carry a short caveat; a run with labels carries neither."""
    from tomoseg.shipped import default_model_path, file_sha256

    d = phantom_pair
    out = tmp_path / "run"
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--transform", str(d / "truth.json"),
                 "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "caution: both scans were segmented with the model" in printed and "upper bounds" in printed
    seg = json.loads((out / "summary.json").read_text())["segmentation"]
    sha = file_sha256(default_model_path())
    assert seg["model"]["sha256"] == sha and seg["model"]["shipped"] == "default" and seg["model"]["version"] == "v3"
    assert seg["threshold"] == 127 and "upper bounds" in seg["caveat"]
    page = (out / "track.html").read_text()
    assert "Objects from the model." in page and sha in page and "upper bounds" in page
    assert main(["track", str(d / "before.tif"), str(d / "after.tif"), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--out", str(tmp_path / "lab"), "-q"]) == 0
    assert "caution" not in capsys.readouterr().out
    assert "segmentation" not in json.loads((tmp_path / "lab" / "summary.json").read_text())
    assert "Objects from the model." not in (tmp_path / "lab" / "track.html").read_text()


@pytest.mark.parametrize("labels_out", ["after_match_ids.zarr", "after_match_ids.nrrd"])
@pytest.mark.parametrize("scan", ["after.ome.zarr", "after.nrrd"])
def test_match_ids_lie_where_the_after_scan_lies(phantom_pair, tmp_path, scan, labels_out):
    """An AFTER scan cut from a larger one (an OME-Zarr translation, an NRRD space origin): the match-ID image,
    voxel for voxel the AFTER scan's, carries that origin as its translation (Zarr) or space origin (NRRD), so
    viewers that place images by it draw the IDs on the scan. It was written at 0."""
    import nrrd
    import zarr

    from tomoseg.io import open_volume
    from tomoseg.io.nrrd_file import origin_nm

    d = phantom_pair
    origin = [450.0, -1200.0, 8000.25]  # z, y, x nm
    after, image = tmp_path / scan, read_volume(str(d / "after.tif"))
    if scan.endswith(".nrrd"):  # NRRD's axes and vectors are x, y, z
        nrrd.write(str(after), np.ascontiguousarray(image.transpose(2, 1, 0)), {
            "space dimension": 3, "space units": ["nm"] * 3, "space directions": np.diag([29.33] * 3),
            "space origin": np.array(origin[::-1]), "kinds": ["domain"] * 3, "encoding": "raw"}, index_order="F")
    else:
        g = zarr.open_group(str(after), mode="w", zarr_format=3)
        g.create_array("0", data=image, chunks=(16, 64, 64))
        g.attrs["ome"] = {"version": "0.5", "multiscales": [{
            "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [29.33] * 3}, {"type": "translation", "translation": origin}]}]}]}
    out = tmp_path / "run"
    assert main(["track", str(d / "before.tif"), str(after), "--before-labels", str(d / "before_ids.npy"),
                 "--after-labels", str(d / "after_ids.npy"), "--transform", str(d / "truth.json"),
                 "--labels-out", labels_out, "--out", str(out), "-q"]) == 0
    with open_volume(out / labels_out) as ids:
        assert ids.voxel_size == pytest.approx([29.33] * 3) and ids.read().max() > 0
        placed = ids.origin_nm if ids.origin_nm is not None else origin_nm(ids.orientation)
        assert placed == pytest.approx(origin)
    if labels_out.endswith(".nrrd"):
        assert list(nrrd.read_header(str(out / labels_out))["space origin"]) == pytest.approx(origin[::-1])
    else:
        level0 = zarr.open_group(str(out / labels_out), mode="r").attrs["ome"]["multiscales"][0]["datasets"][0]
        assert {t["type"]: t for t in level0["coordinateTransformations"]}["translation"]["translation"] == \
            pytest.approx(origin)
