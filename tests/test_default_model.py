"""The default model shipped inside the package: present, the paper's architecture, and good on held-out data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tomoseg
from tomoseg.checkpoint import default_model_path
from tomoseg.shipped import file_sha256


def test_default_model_ships_and_describes_itself():
    assert default_model_path().exists(), "src/tomoseg/weights/default.safetensors is missing"
    model = tomoseg.load_model()
    assert tomoseg.count_parameters(model) == (366_593, 365_889)
    meta = model.metadata
    assert meta["threshold"] == 127
    assert meta["voxel_size_nm"] == pytest.approx([29.33] * 3)
    assert meta["normalization"]["scope"] == "whole-volume"
    training = meta["training"]
    assert training["config"]["model"] == {"levels": 4, "base_features": 8}
    assert training["step"] >= 1000


@pytest.mark.slow
def test_default_model_finds_objects_in_a_held_out_phantom():
    """A phantom from a seed never used in training: the model must beat the best single threshold by far."""
    from tomoseg.evaluation import evaluate
    from tomoseg.inference import TilingConfig, predict, predict_whole
    from tomoseg.inference.engine import to_uint8
    from tomoseg.metrics import best_threshold

    ph = tomoseg.make_phantom((48, 192, 192), rng=4242)
    model = tomoseg.load_model()
    tiled = predict(ph.image, model)  # default tiling: cores of 128, halo 16: seams at 128 in y and x
    whole = predict_whole(ph.image, model)
    assert np.abs(tiled - whole).max() < 1 / 255  # seam-free with the real weights too
    assert np.array_equal(tiled > 0.5, whole > 0.5)
    # small windows starve the trained network of context (docs/segment.md); a halo of 48 covers its
    # receptive field and is exact again
    exact = predict(ph.image, model, tiling=TilingConfig(tile_size=32, halo=48))
    assert np.abs(exact - whole).max() < 1e-5
    res = evaluate(to_uint8(tiled), ph.labels)
    base = best_threshold(ph.image, ph.labels, mask=ph.pillar)
    assert res["voxel"]["f1"] > 0.75
    assert res["voxel"]["f1"] > base["f1"] + 0.2
    assert res["objects"]["f1"] > 0.65  # measured 0.76 (docs/model-card.md); a regression guard


@pytest.mark.slow
def test_make_demo_runs_end_to_end(tmp_path, capsys):
    from tomoseg.demo import run
    from tomoseg.table import read_csv

    out = tmp_path / "demo"
    assert run(out, shape=(48, 128, 128), seed=5) == 0
    report = (out / "results" / "report.html").read_text(encoding="utf-8")
    assert "<img" in report and "confusion_matrix.png" in report and "size_histogram.png" in report
    # one report of analyze and evaluate: analyze's summary, table and figures stay beside the evaluation's
    assert "orthoslices.png" in report and "objects_3d.png" in report and "fraction_along_z.png" in report
    assert (out / "results" / "summary.json").exists() and (out / "results" / "evaluation.json").exists()
    # the model and segment's settings, from the map's record (review S5; the demo copied it in by hand)
    assert "<h2>Segmentation</h2>" in report and file_sha256(default_model_path()) in report
    objects = read_csv(out / "objects.csv")
    assert len(objects["label"]) > 5
    assert tomoseg.open_volume(str(out / "mask.tif")).voxel_size == pytest.approx((29.33,) * 3)


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, capsys):
    from tomoseg.demo import run

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert run(out, shape=(48, 128, 128), seed=5) == 1
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    assert "not made by the demo" in capsys.readouterr().err


def test_default_model_records_its_gpu_recipe_and_held_out_scores():
    meta = tomoseg.load_model().metadata
    assert meta["trained_on"]["device"] == "cuda" and meta["trained_on"]["gpu"]
    assert meta["training"]["recipe"] == "configs/default-model-v3.yaml" and meta["training"]["checkpoint"] == "last"
    assert (Path(__file__).parents[1] / meta["training"]["recipe"]).exists()
    assert set(meta["held_out"]["mean"]) >= {"recall", "precision", "f1", "object_f1"}


def test_earlier_defaults_ship_beside_the_default_by_name(tmp_path, monkeypatch, tiny_model_factory):
    v1, v2, default = tomoseg.load_model("v1"), tomoseg.load_model("v2"), tomoseg.load_model("default")
    assert len({v1.sha256, v2.sha256, default.sha256}) == 3 and default.sha256 == tomoseg.load_model().sha256
    assert v1.metadata["training"]["step"] == 1200  # the first default's last stage
    assert v2.metadata["training"]["recipe"] == "configs/default-model.yaml"  # kept byte for byte
    monkeypatch.chdir(tmp_path)
    with pytest.raises(tomoseg.TomosegError, match="not found"):
        tomoseg.load_model("v4")  # neither a shipped name nor a file
    shutil.copyfile(tiny_model_factory(2), tmp_path / "v1")  # a user's own file called v1 wins
    assert tomoseg.load_model("v1").metadata["architecture"]["levels"] == 2


def test_segment_cli_takes_a_shipped_models_name(tmp_path):
    from tomoseg.cli import main

    ph = tomoseg.make_phantom((32, 64, 64), rng=7)
    src = tmp_path / "in.tif"
    tomoseg.write_volume(str(src), ph.image, voxel_size=(29.33,) * 3)
    outs = {}
    for name in ("v1", "v2", "default"):
        out = tmp_path / f"{name}.tif"
        assert main(["-q", "segment", str(src), str(out), "--model", name]) == 0
        outs[name] = tomoseg.open_volume(str(out)).read()
        record = json.loads((tmp_path / f"{name}.tif.provenance.json").read_text(encoding="utf-8"))["model"]
        assert record["shipped"] == name  # the provenance says which shipped model made the map
    assert record["recipe"] == "configs/default-model-v3.yaml"
    assert not np.array_equal(outs["v1"], outs["default"]) and not np.array_equal(outs["v2"], outs["default"])


def test_info_describes_a_model_by_name_or_file(tmp_path, capsys, tiny_model_factory):
    from tomoseg.cli import main

    assert main(["info", "default", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shipped"] == "default" and info["parameters"] == 366_593 and info["threshold"] == 127
    assert info["held_out"]["mean"]["recall"] > 0 and "config" not in info["training"]
    assert main(["info", "v1"]) == 0
    out = capsys.readouterr().out
    assert "(shipped: v1)" in out and "366,593 parameters" in out and "1200 steps" in out
    own = tmp_path / "mine.safetensors"
    shutil.copyfile(tiny_model_factory(2), own)
    assert main(["info", str(own)]) == 0
    assert "2 levels" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    assert "not found" in capsys.readouterr().err
