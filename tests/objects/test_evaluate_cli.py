import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import write_volume
from tomoseg.synthetic import make_phantom
from tomoseg.table import read_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    ph = make_phantom((40, 128, 128), rng=6)
    write_volume(str(d / "img.tif"), ph.image, voxel_size=(29.33,) * 3)
    write_volume(str(d / "lab.tif"), ph.labels, voxel_size=(29.33,) * 3)
    # a prediction: the truth eroded where objects are large, plus a false object
    from scipy import ndimage

    pred = ndimage.binary_erosion(ph.labels, iterations=1) | (ph.labels & (ph.instances % 3 == 0))
    pred[20, 60:63, 60:63] = True
    prob = np.where(pred, 230, 20).astype(np.uint8)
    write_volume(str(d / "prob.zarr"), prob, voxel_size=(29.33,) * 3)
    return d, ph, pred


def test_evaluate_cli_counts_and_report(files, capsys, tmp_path):
    d, ph, pred = files
    out = tmp_path / "ev"
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--intensity", str(d / "img.tif"),
                 "--out", str(out), "--report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    truth = ph.labels.astype(bool)
    assert result["voxel"]["tp"] == int((pred & truth).sum())
    assert result["voxel"]["fp"] == int((pred & ~truth).sum())
    assert result["voxel"]["fn"] == int((~pred & truth).sum())
    assert result["prediction_is_probability"] is True
    assert result["objects"]["predicted_objects"] >= result["objects"]["matched_predicted"]
    assert result["objects"]["precision"] < 1.0  # the false object
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    for name in ("confusion_matrix.png", "size_histogram.png", "sphericity_vs_radius.png"):
        assert (out / "figures" / name).exists()


def test_analyze_cli_writes_csv_in_nm(files, capsys, tmp_path):
    d, ph, _ = files
    csv = tmp_path / "objects.csv"
    assert main(["analyze", str(d / "lab.tif"), "--intensity", str(d / "img.tif"), "--csv", str(csv),
                 "--out", str(tmp_path / "an"), "--report"]) == 0
    t = read_csv(csv)
    assert len(t["label"]) == len(ph.objects["label"])
    assert np.allclose(t["equivalent_radius_nm"], t["equivalent_radius_vox"] * 29.33, rtol=1e-4)
    assert (tmp_path / "an" / "report.html").exists()
    # existing output without --overwrite
    assert main(["analyze", str(d / "lab.tif"), "--csv", str(csv)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_bad_evaluation_inputs(files, tmp_path, capsys):
    d, ph, _ = files
    write_volume(str(tmp_path / "small.tif"), ph.labels[:10])
    assert main(["evaluate", str(d / "prob.zarr"), str(tmp_path / "small.tif")]) == 1
    assert "differ in shape" in capsys.readouterr().err
    write_volume(str(tmp_path / "multi.tif"), (ph.instances % 5).astype(np.uint8))
    assert main(["evaluate", str(d / "prob.zarr"), str(tmp_path / "multi.tif")]) == 1
    assert "must be binary" in capsys.readouterr().err


def test_empty_mask_gives_a_valid_report(tmp_path, capsys):
    write_volume(str(tmp_path / "empty.tif"), np.zeros((16, 32, 32), np.uint8))
    assert main(["analyze", str(tmp_path / "empty.tif"), "--out", str(tmp_path / "o"), "--report",
                 "--voxel-size", "30", "30", "30"]) == 0
    assert "0 objects" in capsys.readouterr().out
    assert "Object analysis" in (tmp_path / "o" / "report.html").read_text()
