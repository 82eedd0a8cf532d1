"""Review MF2: segment's provenance record named a model by its SHA-256 only; a user's model file is now named
by its path (as given, and resolved), and the results and report of analyze carry it."""

import json

import numpy as np

import tomoseg
from tomoseg.cli import main
from tomoseg.inference import segment
from tomoseg.io import write_volume


def test_segment_names_the_model_file_in_its_record_and_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "models" / "mine.safetensors", {"voxel_size_nm": [30] * 3})
    image = np.random.default_rng(0).normal(100, 10, (8, 32, 32)).astype(np.float32)
    write_volume("in.tif", image, voxel_size=(30.0,) * 3)
    assert main(["segment", "in.tif", "prob.tif", "--model", "models/mine.safetensors", "-q"]) == 0
    record = json.loads((tmp_path / "prob.tif.provenance.json").read_text())
    assert record["model"]["path"] == "models/mine.safetensors" and record["model"]["sha256_of"] == "file"
    assert record["resolved_paths"]["model"] == str((tmp_path / "models" / "mine.safetensors").resolve())
    assert main(["analyze", "prob.tif", "--out", "res", "--report", "-q"]) == 0
    capsys.readouterr()
    seg = json.loads((tmp_path / "res" / "summary.json").read_text())["segmentation"]
    assert seg["model"]["path"] == "models/mine.safetensors"
    page = (tmp_path / "res" / "report.html").read_text()
    assert "the model file mine.safetensors" in page and str(tmp_path / "models" / "mine.safetensors") in page


def test_a_model_changed_in_memory_is_not_named_by_its_file(tmp_path):
    import torch

    path = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "m.safetensors")
    model = tomoseg.load_model(path)
    with torch.no_grad():
        model.head.bias += 1
    write_volume(str(tmp_path / "in.tif"), np.random.default_rng(1).normal(100, 10, (8, 16, 16)).astype(np.float32))
    record = segment(tmp_path / "in.tif", tmp_path / "p.tif", model=model, progress=False)
    assert record["model"]["path"] is None and record["model"]["sha256_of"].startswith("weights")
    assert "model" not in record["resolved_paths"]
