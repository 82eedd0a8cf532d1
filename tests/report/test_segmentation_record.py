"""Review S5: the results folder and report named neither the model nor segment's settings (the demo copied
segment's record in by hand). analyze and evaluate copy the essentials of the map's segment record into
summary.json / evaluation.json, and the report shows them with a methods paragraph."""

import json

import numpy as np

from tomoseg.cli import main
from tomoseg.io import write_volume
from tomoseg.shipped import default_model_path, file_sha256
from tomoseg.synthetic import make_phantom


def test_analyze_and_evaluate_carry_the_segmentation_into_results_and_report(tmp_path, capsys):
    ph = make_phantom((24, 64, 64), rng=3)
    write_volume(str(tmp_path / "img.tif"), ph.image, voxel_size=(29.33,) * 3)
    write_volume(str(tmp_path / "lab.tif"), ph.labels, voxel_size=(29.33,) * 3)
    assert main(["segment", str(tmp_path / "img.tif"), str(tmp_path / "prob.tif"), "--roi", "2:22,:,:",
                 "--threshold", "120", "-q"]) == 0
    out = tmp_path / "res"
    assert main(["analyze", str(tmp_path / "prob.tif"), "--out", str(out), "--report", "-q"]) == 0
    assert main(["evaluate", str(tmp_path / "prob.tif"), str(tmp_path / "lab.tif"), "--out", str(out),
                 "--report", "-q"]) == 0
    capsys.readouterr()
    sha = file_sha256(default_model_path())
    for name in ("summary.json", "evaluation.json"):
        seg = json.loads((out / name).read_text())["segmentation"]
        assert seg["model"]["sha256"] == sha and seg["model"]["shipped"] == "default"
        assert seg["model"]["version"] == "v3" and seg["model"]["recipe"] == "configs/default-model-v3.yaml"
        assert seg["threshold"] == 120 and seg["roi"] == [[2, 22], [0, 64], [0, 64]]
        assert seg["normalization"]["method"] == "zscore" and seg["tiling"]["tile_size"] > 0
        assert seg["backend"] and seg["precision"] and seg["tomoseg_version"]
        assert seg["input"].endswith("img.tif") and seg["map_edited_since"] is False
        assert seg["input_resolved"] == str((tmp_path / "img.tif").resolve())  # the file, wherever run from
        assert seg["record"].endswith("prob.tif.provenance.json")
    page = (out / "report.html").read_text()
    assert "<h2>Segmentation</h2>" in page and sha in page
    assert "the shipped default model (v3)" in page and "exceeds 120 of 255" in page
    assert "the region 2:22 × 0:64 × 0:64 (z, y, x)" in page


def test_a_map_without_segment_record_is_said_in_the_report(tmp_path, capsys):
    prob = np.zeros((12, 32, 32), np.uint8)
    prob[4:8, 10:14, 10:14] = 255
    np.save(tmp_path / "p.npy", prob)
    out = tmp_path / "res"
    assert main(["analyze", str(tmp_path / "p.npy"), "--out", str(out), "--report", "-q"]) == 0
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["segmentation"] is None
    assert "no provenance record of tomoseg segment" in (out / "report.html").read_text()


def test_the_report_says_the_model_ran_off_its_training_voxel_size(tmp_path, capsys):
    """Review U3: segment warned that the scan's voxels were twice the model's training voxels, but the report of
    the analysis listed only analyze's notes and named neither voxel size."""
    ph = make_phantom((24, 64, 64), rng=3)
    write_volume(str(tmp_path / "img.tif"), ph.image, voxel_size=(60.0, 30.0, 30.0))
    assert main(["segment", str(tmp_path / "img.tif"), str(tmp_path / "prob.tif"), "-q"]) == 0
    assert "2.05x larger than the model's training scans'" in capsys.readouterr().err
    out = tmp_path / "res"
    assert main(["analyze", str(tmp_path / "prob.tif"), "--out", str(out), "--report", "-q"]) == 0
    seg = json.loads((out / "summary.json").read_text())["segmentation"]
    assert len(seg["warnings"]) == 1 and "2.05x larger than the model's" in seg["warnings"][0]
    page = (out / "report.html").read_text()
    said = page[page.index("Notes and warnings"):page.index("</ul>", page.index("Notes and warnings"))]
    assert "<li class=warning>warning: segment: " in said and "2.05x larger than the model" in said
    assert "voxel size 60 × 30 × 30 nm (z, y, x; the model was trained at 29.33 × 29.33 × 29.33 nm)" in page
    assert "<td>voxel size (nm, z × y × x)</td><td>60 × 30 × 30</td>" in page
    assert "<td>model&#x27;s training voxel size (nm)</td><td>29.33 × 29.33 × 29.33</td>" in page
