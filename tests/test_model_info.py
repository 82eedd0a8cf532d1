"""``tomoseg info MODEL`` states what a model was trained on and what it is for (review MF7)."""

import json

import pytest

import tomoseg
from tomoseg.cli import main
from tomoseg.shipped import INTENDED_USE


@pytest.mark.parametrize("name, data", [
    ("default", "24 synthetic phantoms of 9 presets (96 × 256 × 256 voxels) and 12 physics-mode phantoms"),
    ("v1", "12 synthetic phantoms of 9 presets (96 × 256 × 256 voxels)"),
])
def test_info_of_a_shipped_model_states_its_training_data_and_intended_use(capsys, name, data):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert "366,593 parameters (365,889 trainable)" in out  # the paper's 4-level, base-8 network
    assert f"trained on    {data}" in out
    assert "objects       darker than the matrix, about 1-8 voxels in radius" in out
    assert f"intended      {INTENDED_USE}" in out and "no real scan was used" in out
    assert main(["info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["training_data"].startswith(data) and info["intended_use"] == INTENDED_USE


def test_info_of_a_users_model_names_its_annotated_volumes_and_claims_no_intended_use(tmp_path, capsys):
    config = {"data": {"volumes": [{"image": f"scan{i}.tif", "labels": f"lab{i}.tif"} for i in range(4)],
                       "phantoms": None}}
    path = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "mine.safetensors",
                              {"training": {"config": config, "step": 5},
                               "normalization": {"method": "zscore", "scope": "whole-volume", "objects": "bright"}})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trained on    4 annotated volumes: scan0.tif, scan1.tif, scan2.tif, ..." in out
    assert "objects       brighter than the matrix\n" in out and "intended" not in out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["intended_use"] is None


def test_info_says_when_segment_cannot_run_the_model(tmp_path, capsys):
    """Review MF12: info described a 2-class model as any other; segment then refused it."""
    path = tomoseg.save_model(tomoseg.UNet3D(2, 2, 1, 2), tmp_path / "two.safetensors")
    assert main(["info", str(path)]) == 0
    assert "segment       cannot run it: the model has 1 input and 2 output channels" in capsys.readouterr().out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["segment_refuses"].startswith("the model has 1 input and 2 output")
    assert main(["info", "default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["segment_refuses"] is None


def test_the_model_card_is_installed_beside_the_models_and_info_names_it(capsys):
    """docs/model-card.md was not in the wheel (known; review MF7): weights/model-card.md links to it and
    pyproject's package-data ships it."""
    from pathlib import Path

    from tomoseg.shipped import model_card_path

    card = model_card_path()
    docs = Path(__file__).resolve().parents[1] / "docs" / "model-card.md"
    assert card is not None and card.read_text() == docs.read_text()
    assert "## Intended use" in card.read_text()
    assert main(["info", "default"]) == 0
    assert f"model card    {card}" in capsys.readouterr().out
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"weights/model-card.md"' in pyproject
