"""A8: the notes library calls gave (a voxel size unknown, a tile size rounded up, voxels without data) were
printed straight to stderr: neither progress=False nor a warnings filter silenced them in a notebook. They are
TomosegNote warnings now; the CLI prints them as before (``tomoseg: note: ...``)."""

import warnings

import numpy as np

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegNote
from tomoseg.inference import SegmentOptions, TilingConfig


def _scan(tmp_path):
    image = tomoseg.make_phantom((24, 64, 64), rng=3).image.astype(np.float32)
    image[0, 0, :4] = np.nan  # four voxels without data: a note
    np.save(tmp_path / "scan.npy", image)
    return tmp_path / "scan.npy"


def test_library_notes_are_warnings_a_filter_silences(tmp_path, capfd, random_model_path):
    scan = _scan(tmp_path)
    options = SegmentOptions(tiling=TilingConfig(tile_size=20, halo=16))  # 20 -> 24: a note
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TomosegNote)
        tomoseg.segment(str(scan), str(tmp_path / "a.zarr"), model=random_model_path, options=options,
                        progress=False)
    notes = [str(w.message) for w in caught if issubclass(w.category, TomosegNote)]
    assert any("rounded up to 24" in n for n in notes), notes
    assert any("4 voxels" in n and "no data" in n for n in notes), notes
    assert capfd.readouterr().err == ""  # nothing printed by the library itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TomosegNote)
        tomoseg.segment(str(scan), str(tmp_path / "b.zarr"), model=random_model_path, options=options,
                        progress=False)
    assert capfd.readouterr().err == ""


def test_the_cli_prints_the_notes_as_before(tmp_path, capsys, random_model_path):
    scan = _scan(tmp_path)
    assert main(["segment", str(scan), str(tmp_path / "c.zarr"), "--model", str(random_model_path), "--tile-size", "20",
                 "--halo", "16", "-q"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "tomoseg: note: tile size 20 rounded up to 24, a multiple of the network's divisor 8" in err, err
    assert any(line.startswith("tomoseg: note: ") and "4 voxels" in line for line in err), err
