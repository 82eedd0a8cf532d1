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
