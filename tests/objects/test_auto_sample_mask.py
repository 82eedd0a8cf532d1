"""``analyze --sample-mask auto`` (review study S4): on a pillar in air the volume fraction is measured inside
the pillar, found in the gray image as segment finds the sample."""

import json

import numpy as np
import pytest

from tomoseg.cli import main


def test_auto_sample_mask_gives_the_fraction_inside_the_pillar(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["phantom", "ph.tif", "--labels", "truth.tif", "--shape", "32", "128", "128", "--seed", "7",
                 "-q"]) == 0
    capsys.readouterr()
    assert main(["analyze", "truth.tif", "--intensity", "ph.tif", "--sample-mask", "auto", "--json", "-q"]) == 0
    out, err = capsys.readouterr()
    inside = json.loads(out)
    assert "--sample-mask auto" in err
    # the phantom's pillar: a cylinder of radius 0.42 x 128 voxels (phantom config), along z
    pillar = 32 * np.pi * (0.42 * 128) ** 2
    assert inside["analysed_voxels"] == pytest.approx(pillar, rel=0.05)
    import tifffile

    truth = int(np.count_nonzero(tifffile.imread("truth.tif")))
    assert inside["volume_fraction_all_objects"] == pytest.approx(truth / pillar, rel=0.05)
    assert main(["analyze", "truth.tif", "--json", "-q"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert inside["volume_fraction_all_objects"] > 1.6 * whole["volume_fraction_all_objects"]


def test_auto_sample_mask_needs_the_gray_image(tmp_path, cli_error):
    np.save(tmp_path / "m.npy", np.zeros((4, 8, 8), np.uint8))
    err = cli_error(main(["analyze", str(tmp_path / "m.npy"), "--sample-mask", "auto", "--json"]))
    assert "--intensity" in err
