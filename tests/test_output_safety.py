"""Outputs checked against the inputs (sweep of 2026-11-26): no command writes over an input of its own run, over
another of its outputs, or over data tomoseg did not write, and each refusal comes before the work, as one
``tomoseg: error:`` line with exit code 1. docs/bad-inputs.md lists the cases.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main


def _digest(path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents)."""
    h = hashlib.sha256()
    path = os.fspath(path)
    if os.path.isdir(path):
        for root, dirs, files in sorted(os.walk(path)):
            dirs.sort()
            for name in sorted(files):
                h.update(os.path.relpath(os.path.join(root, name), path).encode())
                with open(os.path.join(root, name), "rb") as fh:
                    h.update(fh.read())
        return h.hexdigest()
    with open(path, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()


def _refused(argv, capsys, pattern) -> str:
    """Run the CLI; assert exit 1, exactly one error line holding ``pattern``, no traceback; return the line."""
    capsys.readouterr()
    code = main(argv + ["-q"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tomoseg: error:")]
    assert code == 1, err
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert pattern in errors[0], (pattern, err)
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small phantom pair (tomoseg's marker on every file, as on a user's earlier segment outputs)."""
    d = tmp_path_factory.mktemp("pair")
    argv = ["phantom", str(d / "b.tif"), "--labels", str(d / "bl.tif"), "--instances", str(d / "bi.npy"),
            "--pair", str(d / "a.tif"), "--pair-labels", str(d / "al.tif"), "--pair-instances", str(d / "ai.npy"),
            "--pair-truth", str(d / "truth.json"), "--shape", "24", "96", "96", "--seed", "2",
            "--set", "object_fraction=0.006", "--rotation", "30", "1", "-1", "--translation", "1", "-2", "3", "-q"]
    assert main(argv) == 0
    return d


@pytest.fixture
def data(pair, tmp_path, monkeypatch):
    """Copies of the pair in a fresh folder, the working folder of the test."""
    import shutil

    for f in pair.iterdir():
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _track(*extra, out="t"):
    return ["track", "b.tif", "a.tif", "--transform", "truth.json", "--out", out, *extra]


# ------------------------------------------------------------------------------------------- track (A1, D1, A7, A8)
@pytest.mark.parametrize("target", ["../b.tif", "ABS/al.tif", "sub/x.tif"])
def test_track_labels_out_stays_inside_out(data, capsys, target):
    """A1: --labels-out pointing outside OUT (even at an input of the run) is refused before the work, the file
    kept byte for byte, no --overwrite needed to see it."""
    (data / "t").mkdir()  # OUT: an empty folder, so ../b.tif is the BEFORE scan
    target = target.replace("ABS", str(data))
    kept = {f: _digest(data / f) for f in ("b.tif", "al.tif")}
    _refused(_track("--before-labels", "bl.tif", "--after-labels", "al.tif", "--labels-out", target), capsys,
             "give a plain file name")
    assert {f: _digest(data / f) for f in kept} == kept
    assert not any((data / "t").iterdir())  # nothing written: refused before the work


@pytest.mark.parametrize("name, message", [
    ("x.xyz", "unknown volume format"),
    ("x.vol", "PyHST2 .vol files hold float32, not uint32"),
    ("summary.json", "track writes its own summary.json"),
    ("matches.csv", "track writes its own matches.csv"),
    ("figures", "track writes its own figures"),
])
def test_track_labels_out_problems_are_found_before_the_work(data, capsys, name, message):
    """D1: every --labels-out problem is found with the other checks, before registration: no result folder."""
    _refused(_track("--before-labels", "bi.npy", "--after-labels", "ai.npy", "--labels-out", name), capsys, message)
    assert not (data / "t").exists()


def test_track_labels_out_of_foreign_data_is_refused_before_the_work(data, capsys):
    """D1/A1: an existing file in OUT that tomoseg did not write, named by --labels-out, is refused at the start
    (even with --overwrite) and kept; the earlier results are not rewritten first."""
    assert main(_track("--before-labels", "bi.npy", "--after-labels", "ai.npy", "-q")) == 0
    tifffile.imwrite(data / "t" / "scan.tif", tifffile.imread(data / "b.tif"))  # a copy without tomoseg's tag
    kept = _digest(data / "t" / "scan.tif")
    (data / "t" / "matches.csv").unlink()
    _refused(_track("--before-labels", "bi.npy", "--after-labels", "ai.npy", "--labels-out", "scan.tif",
                    "--overwrite"), capsys, "tomoseg did not write")
    assert _digest(data / "t" / "scan.tif") == kept
    assert not (data / "t" / "matches.csv").exists()


@pytest.mark.parametrize("option, path", [("--after-labels", "t/after_match_ids.tif"),
                                          ("--transform", "t/transform.json"),
                                          ("--before-labels", "t/../t/after_match_ids.tif")])
def test_track_never_replaces_an_input_in_out(data, capsys, option, path):
    """A8: an input of the run lying in OUT under a name track writes is refused, even with --overwrite."""
    assert main(_track("--before-labels", "bi.npy", "--after-labels", "ai.npy", "-q")) == 0
    kept = _digest(data / "t")
    labels = {"--before-labels": "bl.tif", "--after-labels": "al.tif"}
    labels[option] = path
    argv = ["track", "b.tif", "a.tif", "--out", "t", "--overwrite", "--transform",
            path if option == "--transform" else "truth.json"]
    argv += ["--before-labels", labels["--before-labels"], "--after-labels", labels["--after-labels"]]
    _refused(argv, capsys, "output path equals the input")
    assert _digest(data / "t") == kept


def test_track_resume_continues_only_a_track_folder(data, capsys):
    """A7: --resume does not act as --overwrite on another tool's results; a track folder it continues."""
    assert main(["analyze", "bl.tif", "--out", "res", "-q"]) == 0
    kept = _digest(data / "res")
    _refused(_track("--before-labels", "bl.tif", "--after-labels", "al.tif", "--resume", out="res"), capsys,
             "holds no interrupted track run")
    assert _digest(data / "res") == kept
    # a folder of other files: refused as before
    (data / "mine").mkdir()
    (data / "mine" / "notes.txt").write_text("x")
    _refused(_track("--before-labels", "bl.tif", "--after-labels", "al.tif", "--resume", out="mine"), capsys,
             "holds no interrupted track run")
    # track's own folder: --resume goes on (and may rewrite track's own results there)
    assert main(_track("--before-labels", "bl.tif", "--after-labels", "al.tif", "-q")) == 0
    assert main(_track("--before-labels", "bl.tif", "--after-labels", "al.tif", "--resume", "-q")) == 0


# ------------------------------------------------------------------------------------- segment, analyze (A5, A6, D6)
@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return tiny_model_factory(2)


@pytest.mark.parametrize("labels", ["b.tif", "./sub/../b.tif", "link.tif"])
def test_segment_labels_never_replace_the_input(data, capsys, model, labels):
    """A5: --labels resolving to the input (relative parts, '..', a symlink) is refused like the output and
    --mask are, with --overwrite too, before the work; the input (marked as tomoseg's) is kept."""
    os.symlink("b.tif", data / "link.tif")
    kept = _digest(data / "b.tif")
    _refused(["segment", "b.tif", "p.tif", "--labels", labels, "--overwrite", "--model", model, "--backend", "torch",
              "--device", "cpu"], capsys, "output path equals the input")
    assert _digest(data / "b.tif") == kept and not (data / "p.tif").exists()


@pytest.mark.parametrize("extra, pattern", [
    (["--labels", "m.tif"], "--labels m.tif: output path equals the input m.tif"),
    (["--labels", "./x/../m.tif"], "output path equals the input"),
    (["--labels", "link.tif"], "output path equals the input"),
    (["--intensity", "img.tif", "--labels", "img.tif"], "output path equals the input --intensity img.tif"),
    (["--probability", "img.tif", "--labels", "img.tif"], "output path equals the input --probability img.tif"),
    (["--sample-mask", "img.tif", "--labels", "img.tif"], "output path equals the input --sample-mask img.tif"),
    (["--intensity", "img.tif", "--ome-zarr", "img.tif"], "output path equals the input --intensity img.tif"),
])
def test_analyze_outputs_never_replace_an_input(data, capsys, extra, pattern):
    """A6: analyze's --labels (and --ome-zarr, --csv) resolving to VOLUME, --intensity, --probability or
    --sample-mask is refused, with --overwrite too; the inputs are kept byte for byte."""
    import shutil

    shutil.copy(data / "bl.tif", data / "m.tif")
    shutil.copy(data / "b.tif", data / "img.tif")
    os.symlink("m.tif", data / "link.tif")
    kept = {f: _digest(data / f) for f in ("m.tif", "img.tif")}
    _refused(["analyze", "m.tif", "--json", *extra, "--overwrite"], capsys, pattern)
    assert {f: _digest(data / f) for f in kept} == kept


def test_analyze_ome_zarr_never_replaces_the_input_store(data, capsys):
    """A6: --ome-zarr naming the input store itself."""
    from tomoseg.io import write_volume

    write_volume("m.ome.zarr", tifffile.imread(data / "bl.tif"), overwrite=False)
    kept = _digest(data / "m.ome.zarr")
    _refused(["analyze", "m.ome.zarr", "--json", "--ome-zarr", "m.ome.zarr", "--overwrite"], capsys,
             "output path equals the input")
    assert _digest(data / "m.ome.zarr") == kept


@pytest.mark.parametrize("extra", [["--ome-zarr", "q.ome.zarr", "--labels", "q.ome.zarr"],
                                   ["--labels", "q.ome.zarr", "--ome-zarr", "./q.ome.zarr"],
                                   ["--csv", "res/objects.csv", "--out", "res"]])
def test_analyze_outputs_need_their_own_paths(data, capsys, extra):
    """D6: two outputs on one path are refused before the work, nothing written (the labels went first)."""
    _refused(["analyze", "bl.tif", "--json", *extra], capsys, "the outputs need different paths")
    assert not (data / "q.ome.zarr").exists() and not (data / "res").exists()


# ------------------------------------------------------------------------------------- export-onnx, train (A2, C5, D7)
@pytest.mark.parametrize("output, pattern", [
    ("scan.onnx", "tomoseg did not export"),              # a foreign file (a TIFF scan) named .onnx
    ("other.safetensors", "give a file name ending in .onnx"),  # another model
    ("m.safetensors", "output path equals the input"),    # the model exported
    ("./m.safetensors", "output path equals the input"),
])
def test_export_onnx_overwrite_replaces_only_its_own_exports(data, capsys, model, output, pattern):
    """A2: --overwrite never replaces the model itself, another model or a file tomoseg did not export."""
    import shutil

    shutil.copy(model, data / "m.safetensors")
    shutil.copy(model, data / "other.safetensors")
    shutil.copy(data / "b.tif", data / "scan.onnx")
    kept = {f: _digest(data / f) for f in ("m.safetensors", "other.safetensors", "scan.onnx")}
    _refused(["export-onnx", "m.safetensors", output, "--overwrite"], capsys, pattern)
    assert {f: _digest(data / f) for f in kept} == kept


@pytest.mark.parametrize("output, pattern", [
    ("./", "./: is a folder; give a file name ending in .onnx"),
    (".", "error: .: is a folder; give a file name ending in .onnx"),
    ("nodir/x.onnx", "nodir: output folder does not exist; create it first"),
    ("x.tif", "x.tif: an ONNX model is written as .onnx"),
])
def test_export_onnx_output_path_messages(data, capsys, model, output, pattern):
    """C5, D7: a folder, a missing folder or another extension: one clear line, no traceback."""
    _refused(["export-onnx", model, output, "--overwrite"], capsys, pattern)
    assert not (data / "x.tif").exists()


def test_export_onnx_marks_its_file_and_replaces_it(data, capsys, model):
    """The export carries tomoseg's marker (ONNX metadata ``tomoseg``), so --overwrite replaces it."""
    from tomoseg.io.onnx_marker import read_marker

    onnx = pytest.importorskip("onnx")  # an extra: tomoseg[onnx]
    assert main(["export-onnx", model, "m.onnx", "-q"]) == 0
    assert read_marker(data / "m.onnx")["tool"] == "tomoseg export-onnx"
    _refused(["export-onnx", model, "m.onnx"], capsys, "already exists; pass --overwrite")
    assert main(["export-onnx", model, "m.onnx", "--overwrite", "-q"]) == 0
    loaded = onnx.load(str(data / "m.onnx"))
    onnx.checker.check_model(loaded)
    assert [e.key for e in loaded.metadata_props] == ["tomoseg"]


def test_train_output_a_file(data, capsys):
    """D7: train --output naming a file: the same message as the result folders give."""
    import yaml

    (data / "afile").write_text("x")
    cfg = {"output": "run", "epochs": 1, "model": {"levels": 2, "base_features": 2},
           "data": {"volumes": [{"image": "b.tif", "labels": "bl.tif"}]},
           "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1}}
    (data / "t.yaml").write_text(yaml.safe_dump(cfg))
    _refused(["train", "t.yaml", "--output", "afile"], capsys, "afile: is a file, not a folder")
    assert (data / "afile").read_text(encoding="utf-8") == "x"


# ----------------------------------------------------------------------------------------------- phantom (A3, B6)
SMALL = ["--shape", "24", "96", "96"]


@pytest.mark.parametrize("extra, victim, pattern", [
    (["--objects", "foreign.tif"], "foreign.tif", "give a file name ending in .csv"),
    (["--objects", "notes.txt"], "notes.txt", "give a file name ending in .csv"),
    (["--objects", "scan.csv"], "scan.csv", "not a text table"),
    (["--pair", "a2.tif", "--pair-labels", "al2.tif", "--pair-truth", "mine.json"], "mine.json",
     "mine.json: already exists and was not written by tomoseg phantom"),
])
def test_phantom_tables_and_truth_replace_only_tomoseg_files(data, capsys, extra, victim, pattern):
    """A3: --objects goes through the table check, --pair-truth is replaced only if it is tomoseg's truth JSON;
    with --overwrite too, before anything is written."""
    import shutil

    shutil.copy(data / "b.tif", data / "foreign.tif")
    shutil.copy(data / "b.tif", data / "scan.csv")
    (data / "notes.txt").write_text("my notes\n")
    (data / "mine.json").write_text('{"mine": 1}')
    kept = _digest(data / victim)
    _refused(["phantom", "i.tif", "--labels", "l.tif", *SMALL, *extra, "--overwrite"], capsys, pattern)
    assert _digest(data / victim) == kept
    assert not (data / "i.tif").exists()


def test_phantom_pair_truth_of_tomoseg_is_replaced_with_overwrite(data, capsys):
    """The truth JSON carries ``"tool": "tomoseg phantom"``; without --overwrite it is kept, with it replaced."""
    argv = ["phantom", "i.tif", "--labels", "l.tif", *SMALL, "--pair", "a2.tif", "--pair-labels", "al2.tif",
            "--pair-truth", "truth.json", "--seed", "7"]
    assert json.loads((data / "truth.json").read_text(encoding="utf-8"))["tool"] == "tomoseg phantom"
    kept = _digest(data / "truth.json")
    _refused(argv, capsys, "truth.json: already exists (an earlier tomoseg phantom result); pass --overwrite")
    assert _digest(data / "truth.json") == kept and not (data / "i.tif").exists()
    assert main(argv + ["--overwrite", "-q"]) == 0
    assert _digest(data / "truth.json") != kept


@pytest.mark.parametrize("argv, pattern", [
    (["p.tif", "--labels", "p.tif"], "--labels p.tif: the same path as IMAGE p.tif"),
    (["p.npy", "--labels", "l.npy", "--instances", "./l.npy"], "--instances ./l.npy: the same path as --labels l.npy"),
    (["p.tif", "--labels", "l.tif", "--objects", "p.tif"], "--objects p.tif: the same path as IMAGE p.tif"),
    (["p.tif", "--labels", "l.tif", "--pair", "p.tif", "--pair-labels", "al2.tif"],
     "--pair p.tif: the same path as IMAGE p.tif"),
    (["p.tif", "--labels", "l.tif", "--pair", "a2.tif", "--pair-labels", "al2.tif", "--pair-truth", "l.tif"],
     "--pair-truth l.tif: the same path as --labels l.tif"),
])
def test_phantom_outputs_need_their_own_paths(data, capsys, argv, pattern):
    """B6: two phantom outputs on one path are refused before anything is written (with --overwrite too)."""
    _refused(["phantom", *argv, *SMALL, "--overwrite"], capsys, pattern)
    assert not any((data / f).exists() for f in ("p.tif", "p.npy", "l.npy", "l.tif", "a2.tif"))


# ------------------------------------------------------------------------------------------------------ report (A4)
def test_report_refuses_a_folder_without_results(data, capsys):
    """A4: a folder with no tomoseg results is refused; the user's report.html kept."""
    (data / "u3").mkdir()
    (data / "u3" / "report.html").write_text("<html>MY OWN REPORT</html>")
    (data / "u3" / "x.txt").write_text("data")
    kept = _digest(data / "u3")
    _refused(["report", "u3"], capsys, "u3: holds no analyze/evaluate results")
    assert _digest(data / "u3") == kept
    (data / "empty").mkdir()
    _refused(["report", "empty"], capsys, "holds no analyze/evaluate results")
    assert not any((data / "empty").iterdir())


@pytest.mark.parametrize("command", [["report", "res"],
                                     ["analyze", "bl.tif", "--out", "res", "--report", "--overwrite"],
                                     ["evaluate", "bl.tif", "bl.tif", "--out", "res", "--report", "--overwrite"]])
def test_report_never_replaces_a_report_tomoseg_did_not_write(data, capsys, command):
    """A4: a report.html of the user's own in a tomoseg result folder is kept, found before the work."""
    assert main(["analyze", "bl.tif", "--out", "res", "-q"]) == 0
    (data / "res" / "report.html").write_text("<html>MY OWN REPORT</html>")
    (data / "res" / "objects.csv").unlink()
    _refused(command, capsys, "res/report.html: already exists and was not written by tomoseg")
    assert (data / "res" / "report.html").read_text(encoding="utf-8") == "<html>MY OWN REPORT</html>"
    assert not (data / "res" / "objects.csv").exists()  # refused before the work


def test_report_rewrites_its_own_report(data, capsys):
    assert main(["analyze", "bl.tif", "--out", "res", "--report", "-q"]) == 0
    first = (data / "res" / "report.html").read_text(encoding="utf-8")
    assert '<meta name="generator" content="tomoseg">' in first
    assert main(["report", "res", "--title", "again", "-q"]) == 0
    assert "again" in (data / "res" / "report.html").read_text(encoding="utf-8")


def test_a_users_own_csv_survives_overwrite_and_tomosegs_table_is_replaced(pair, tmp_path, capsys):
    """--csv and --objects with --overwrite replace an objects table tomoseg wrote (its header: label first,
    equivalent_radius_vox among the columns), never a user's own table (any text CSV used to be replaced)."""
    mine = tmp_path / "my_measurements.csv"
    mine.write_text("sample,temperature_C\nA,650\n")
    before = _digest(mine)
    _refused(["analyze", str(pair / "bl.tif"), "--csv", str(mine), "--overwrite"], capsys,
             "is not an objects table written by tomoseg")
    _refused(["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"), "--objects", str(mine),
              "--shape", "16", "32", "32", "--overwrite"], capsys, "is not an objects table written by tomoseg")
    assert _digest(mine) == before and not (tmp_path / "i.tif").exists()
    ours = tmp_path / "objects.csv"
    assert main(["analyze", str(pair / "bl.tif"), "--csv", str(ours), "-q"]) == 0
    assert main(["analyze", str(pair / "al.tif"), "--csv", str(ours), "--overwrite", "-q"]) == 0
    assert ours.read_text(encoding="utf-8").startswith("label,")


def test_phantom_checks_that_the_image_format_holds_uint8_before_generating(tmp_path, capsys, monkeypatch):
    """A .vol image (float32 only) was refused only when written, after the phantom was generated."""
    import tomoseg.synthetic

    def generated(*a, **k):
        raise AssertionError("the phantom was generated before the output checks")

    monkeypatch.setattr(tomoseg.synthetic, "make_phantom", generated)
    _refused(["phantom", str(tmp_path / "p.vol"), "--labels", str(tmp_path / "l.tif"), "--shape", "32", "64", "64"],
             capsys, "PyHST2 .vol files hold float32, not uint8")
    assert not list(tmp_path.iterdir())


def test_segment_writes_the_map_and_the_mask_into_one_hdf5_file(pair, tmp_path, capsys):
    """segment's outputs are checked by the shared check_outputs_apart (its own copy is gone): two datasets of
    one HDF5 file are two outputs (refused before, as analyze and phantom allowed them); one dataset twice is
    not."""
    import h5py

    model = ["--backend", "torch", "--device", "cpu", "-q"]
    out = tmp_path / "seg.h5"
    assert main(["segment", str(pair / "b.tif"), f"{out}:/entry/prob", "--mask", f"{out}:/entry/mask", *model]) == 0
    with h5py.File(out) as f:
        prob, mask = f["/entry/prob"][:], f["/entry/mask"][:]
    assert np.array_equal(mask, (prob > 127).astype(np.uint8))
    _refused(["segment", str(pair / "b.tif"), f"{out}:/entry/p2", "--mask", f"{out}:/entry/p2"], capsys,
             "the outputs need different paths")


@pytest.mark.parametrize("option, name", [("--labels", "users_own.tif"), ("--ome-zarr", "users_own.ome.zarr")])
def test_analyze_label_outputs_of_foreign_data_are_refused_before_the_analysis(pair, tmp_path, capsys, option,
                                                                                name):
    """V6: --labels/--ome-zarr naming a user's file, with --overwrite, was refused only after the analysis, with
    the CSV and the result folder already written. Now before any work: nothing written, the file kept."""
    import zarr

    target = tmp_path / name
    if name.endswith(".tif"):
        tifffile.imwrite(target, np.zeros((4, 8, 8), np.uint16), photometric="minisblack")
    else:
        zarr.open_group(str(target), mode="w").create_array("0", data=np.zeros((4, 8, 8), np.uint8))
    kept = _digest(target)
    _refused(["analyze", str(pair / "bl.tif"), option, str(target), "--csv", str(tmp_path / "o.csv"),
              "--out", str(tmp_path / "res"), "--overwrite"], capsys, f"{target}: ")
    assert _digest(target) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no o.csv, no res/
