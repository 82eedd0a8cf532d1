"""save_analysis: a notebook's analysis written as `tomoseg analyze --out` writes it, report included."""

import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.io import write_volume
from tomoseg.objects import analyze
from tomoseg.report import save_analysis
from tomoseg.synthetic import make_phantom


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    d = tmp_path_factory.mktemp("scan")
    ph = make_phantom((32, 80, 80), rng=2)
    prob = np.where(ph.labels > 0, 230, 10).astype(np.uint8)
    write_volume(str(d / "prob.tif"), prob, voxel_size=(29.33,) * 3)
    write_volume(str(d / "gray.tif"), ph.image, voxel_size=(29.33,) * 3)
    return d, prob, ph.image


def test_save_analysis_writes_what_analyze_out_writes(scan, tmp_path, capsys):
    d, prob, gray = scan
    assert main(["analyze", str(d / "prob.tif"), "--intensity", str(d / "gray.tif"), "--out", str(tmp_path / "cli"),
                 "--report", "-q"]) == 0
    capsys.readouterr()
    result = analyze(prob, intensity=gray, voxel_size=(29.33,) * 3)
    out = save_analysis(result, tmp_path / "lib", volume=prob, intensity=gray, report=True)
    for name in ("objects.csv", "fraction_along_z.csv"):
        assert (out / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    lib, cli = (json.loads((p / "summary.json").read_text()) for p in (out, tmp_path / "cli"))
    differ = {k for k in cli if lib.get(k) != cli[k]}
    # an array has no path; the CLI also notes how it read the file
    assert differ <= {"input", "provenance", "notes"} and lib["input"] is None
    figures = sorted(p.name for p in (tmp_path / "cli" / "figures").iterdir())
    assert sorted(p.name for p in (out / "figures").iterdir()) == figures and "orthoslices.png" in figures
    assert (out / "report.html").stat().st_size > 10_000


def test_save_analysis_of_predicts_float_map_draws_its_objects(scan, tmp_path):
    """A map in [0, 1] (predict's) is analyzed as rint(p * 255); the orthoslices outline the same objects."""
    d, prob, gray = scan
    p01 = prob.astype(np.float32) / 255
    out = save_analysis(analyze(p01, intensity=gray), tmp_path / "f", volume=p01, intensity=gray)
    ref = save_analysis(analyze(prob, intensity=gray), tmp_path / "u", volume=prob, intensity=gray)
    assert (out / "objects.csv").read_bytes() == (ref / "objects.csv").read_bytes()
    from PIL import Image

    a, b = (np.asarray(Image.open(p / "figures" / "orthoslices.png")) for p in (out, ref))
    assert a.shape == b.shape and np.array_equal(a, b)


def test_save_analysis_never_writes_into_a_folder_of_other_files(scan, tmp_path):
    d, prob, gray = scan
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text("{}")
    with pytest.raises(TomosegError, match="mine"):
        save_analysis(analyze(prob), tmp_path / "mine")
    assert (tmp_path / "mine" / "summary.json").read_text() == "{}"
    with pytest.raises(TomosegError, match="give tomoseg.objects.analyze's result"):
        save_analysis({"objects": {}}, tmp_path / "x")
    with pytest.raises(TomosegError, match="the volume analyzed too"):
        save_analysis(analyze(prob), tmp_path / "y", intensity=gray)
