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
    assert (data / "res" / "report.html").read_text() == "<html>MY OWN REPORT</html>"
    assert not (data / "res" / "objects.csv").exists()  # refused before the work


def test_report_rewrites_its_own_report(data, capsys):
    assert main(["analyze", "bl.tif", "--out", "res", "--report", "-q"]) == 0
    first = (data / "res" / "report.html").read_text()
    assert '<meta name="generator" content="tomoseg">' in first
    assert main(["report", "res", "--title", "again", "-q"]) == 0
    assert "again" in (data / "res" / "report.html").read_text()
