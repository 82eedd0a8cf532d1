"""The volumes of one analysis hold the same voxels; where their files record different voxel sizes, one is
wrong (review U2): analyze took the map's and evaluate the prediction's without a word."""

import json

import numpy as np

from tomoseg.cli import main
from tomoseg.io import write_volume


def _map():
    m = np.zeros((12, 24, 24), np.uint8)
    m[4:8, 6:10, 6:10] = 255
    m[4:7, 14:18, 14:17] = 255
    return m


def _files(tmp_path):
    write_volume(str(tmp_path / "map.tif"), _map(), voxel_size=(60.0, 30.0, 30.0))
    write_volume(str(tmp_path / "gray.tif"), 255 - _map(), voxel_size=(10.0, 10.0, 10.0))
    np.save(tmp_path / "map.npy", _map())  # no voxel size
    return tmp_path / "map.tif", tmp_path / "gray.tif", tmp_path / "map.npy"


def _summary(tmp_path, capsys, *args):
    out = tmp_path / "out"
    assert main(["analyze", *map(str, args), "--out", str(out), "--overwrite", "-q"]) == 0
    return json.loads((out / "summary.json").read_text()), capsys.readouterr().err


def test_analyze_says_which_voxel_size_it_measures_with(tmp_path, capsys):
    mapped, gray, bare = _files(tmp_path)
    summary, err = _summary(tmp_path, capsys, mapped, "--intensity", gray)
    assert summary["voxel_size_nm"] == [60.0, 30.0, 30.0]
    warning = (f"tomoseg: warning: --intensity {gray} records voxel size 10 × 10 × 10 nm and {mapped} 60 × 30 × 30 nm, "
               f"but they hold the same voxels: measuring with {mapped}'s; pass --voxel-size Z Y X")
    assert warning in err, err
    assert any("records voxel size 10 × 10 × 10 nm" in n for n in summary["notes"])
    # --voxel-size chooses: nothing to say; a map without a size takes the gray image's, as before
    summary, err = _summary(tmp_path, capsys, mapped, "--intensity", gray, "--voxel-size", "10", "10", "10")
    assert summary["voxel_size_nm"] == [10.0, 10.0, 10.0] and "records voxel size" not in err
    summary, err = _summary(tmp_path, capsys, bare, "--intensity", gray)
    assert summary["voxel_size_nm"] == [10.0, 10.0, 10.0] and "warning" not in err
    summary, err = _summary(tmp_path, capsys, mapped, "--intensity", mapped)
    assert "warning" not in err


def test_evaluate_says_it_too(tmp_path, capsys):
    mapped, gray, _ = _files(tmp_path)
    write_volume(str(tmp_path / "truth.tif"), (_map() > 0).astype(np.uint8), voxel_size=(30.0, 30.0, 30.0))
    assert main(["evaluate", str(mapped), str(tmp_path / "truth.tif"), "--out", str(tmp_path / "ev"), "-q"]) == 0
    err = capsys.readouterr().err
    assert (f"{tmp_path / 'truth.tif'} records voxel size 30 × 30 × 30 nm and {mapped} 60 × 30 × 30 nm, but they hold the "
            f"same voxels: measuring with {mapped}'s") in err, err
    table = (tmp_path / "ev" / "objects_prediction.csv").read_text().splitlines()
    volume_nm3 = float(table[1].split(",")[2])
    assert volume_nm3 == 4 * 4 * 4 * 60 * 30 * 30


def test_without_a_voxel_size_the_note_says_what_the_sphericities_assume(tmp_path, capsys):
    """Review U5: with no voxel size the sphericities (unitless) are still computed, for cubic voxels; the note
    said only that the nm columns are empty, and evaluate said nothing."""
    _, _, bare = _files(tmp_path)
    said = ("tomoseg: note: voxel size unknown; nm columns are empty, and the sphericities are computed for cubic "
            "voxels. Pass --voxel-size Z Y X.")
    assert main(["analyze", str(bare), "--csv", str(tmp_path / "o.csv"), "-q"]) == 0
    assert said in capsys.readouterr().err
    assert main(["evaluate", str(bare), str(bare), "--out", str(tmp_path / "ev"), "-q"]) == 0
    assert said in capsys.readouterr().err
    notes = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["notes"]
    assert said.removeprefix("tomoseg: ") in notes


def test_evaluate_takes_the_gray_image_s_size_where_the_maps_have_none(tmp_path, capsys):
    """As analyze does: the prediction's size, else the ground truth's, else --intensity's (evaluate ignored the
    gray image's, leaving the nm columns empty)."""
    _, gray, bare = _files(tmp_path)
    assert main(["evaluate", str(bare), str(bare), "--intensity", str(gray), "--out", str(tmp_path / "ev"),
                 "-q"]) == 0
    assert "voxel size unknown" not in capsys.readouterr().err
    table = (tmp_path / "ev" / "objects_prediction.csv").read_text().splitlines()
    assert float(table[1].split(",")[2]) == 4 * 4 * 4 * 10 * 10 * 10
