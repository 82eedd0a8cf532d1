"""What a ``--model`` value names (review MF5: a results folder named like a shipped model hid it)."""

import json

import numpy as np

from tomoseg.cli import main
from tomoseg.io import write_volume
from tomoseg.shipped import default_model_path, model_path, names_shipped_model


def test_a_folder_named_like_a_shipped_model_does_not_hide_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v1").mkdir()  # the results of an earlier run, say
    assert names_shipped_model("v1") and model_path("v1") == default_model_path().with_name("v1.safetensors")
    write_volume("in.tif", np.random.default_rng(0).normal(100, 10, (8, 32, 32)).astype(np.float32))
    assert main(["segment", "in.tif", "p.tif", "--model", "v1", "--backend", "torch", "-q"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "p.tif.provenance.json").read_text())["model"]["shipped"] == "v1"


def test_a_file_named_like_a_shipped_model_still_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v2").write_bytes(b"not a model")
    assert not names_shipped_model("v2") and model_path("v2") == (tmp_path / "v2").relative_to(tmp_path)


def test_info_of_a_folder_of_slices_named_v1_describes_the_volume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v1").mkdir()
    write_volume(str(tmp_path / "v1" / "s.tif"), np.zeros((1, 8, 8), np.uint8))
    assert main(["info", "v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [1, 8, 8]


def test_export_onnx_reads_a_shipped_name_as_segment_does(tmp_path, monkeypatch, capsys):
    """Review MF11: export-onnx took 'default' for the shipped model even where a file named default was in the
    working folder (segment --model default takes the file), and checked its output against that file."""
    import pytest

    pytest.importorskip("onnx")
    import tomoseg
    from tomoseg.io.onnx_marker import read_marker

    monkeypatch.chdir(tmp_path)
    tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "m.safetensors")
    (tmp_path / "m.safetensors").rename(tmp_path / "default")
    assert main(["export-onnx", "default", "d.onnx"]) == 0
    assert main(["export-onnx", "v2", "v2.onnx"]) == 0
    capsys.readouterr()
    assert read_marker(tmp_path / "d.onnx")["divisor"] == 2  # the file named default, not the shipped model
    assert read_marker(tmp_path / "v2.onnx")["model_sha256"] == tomoseg.load_model("v2").sha256


def test_a_shipped_name_mistyped_is_told_the_names(tmp_path, monkeypatch, capsys):
    """Review MF15: the model card calls the default v3; --model v3 said only "v3: model file not found", and
    info v3 "unknown volume format"."""
    monkeypatch.chdir(tmp_path)
    write_volume("in.tif", np.zeros((8, 16, 16), np.uint8))
    names = "the shipped models are default (v3), v2, v1: give one of these names"
    for name, argv in (("v3", ["segment", "in.tif", "o.tif", "--model", "v3"]), ("V2", ["info", "V2"]),
                       ("Default", ["export-onnx", "Default", "x.onnx"])):
        assert main(argv) == 1
        assert f"{name}: model file not found; {names}" in capsys.readouterr().err
    assert main(["segment", "in.tif", "o.tif", "--model", "mine.safetensors"]) == 1
    assert capsys.readouterr().err.strip().endswith("mine.safetensors: model file not found")
