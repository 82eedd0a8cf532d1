"""A gray-value scan given where a probability map is wanted (the look review): the raw cement scan (uint8,
values 16-148) was read as a 0-255 map without a word, and analyze counted 6 objects where its map holds 915."""

import numpy as np
from scipy import ndimage

from tomoseg.cli import main
from tomoseg.io import write_volume
from tomoseg.objects.reading import value_spread


def _scan_and_map(rng):
    """A uint8 scan (matrix about 150, dark pores about 60, noise) and its probability map (0 away from the
    pores, 255 inside, a rim of doubt)."""
    pores = np.zeros((24, 48, 48), bool)
    for z, y, x in rng.integers(6, 42, size=(12, 3)):
        pores[min(z, 18), y, x] = True
    pores = ndimage.binary_dilation(pores, iterations=3)
    scan = np.clip(np.where(pores, 60, 150) + rng.normal(0, 15, pores.shape), 0, 255).astype(np.uint8)
    doubt = ndimage.binary_dilation(pores) & ~pores
    prob = np.where(pores, 255, np.where(doubt, 100, 0)).astype(np.uint8)
    return scan, prob


def test_the_scan_in_place_of_the_map_is_warned_of(tmp_path, capsys):
    rng = np.random.default_rng(0)
    scan, prob = _scan_and_map(rng)
    (scan_middle, scan_mode), (map_middle, map_mode) = value_spread(scan), value_spread(prob)
    assert scan_middle > 0.95 and scan_mode < 0.5 and map_middle < 0.1 and map_mode > 0.8
    write_volume(str(tmp_path / "scan.tif"), scan)
    write_volume(str(tmp_path / "map.tif"), prob)
    write_volume(str(tmp_path / "truth.tif"), (prob > 127).astype(np.uint8))
    for command in (["analyze", str(tmp_path / "scan.tif"), "--csv", str(tmp_path / "o.csv")],
                    ["evaluate", str(tmp_path / "scan.tif"), str(tmp_path / "truth.tif")]):
        assert main(command + ["-q"]) == 0
        err = capsys.readouterr().err
        assert f"warning: {tmp_path / 'scan.tif'}: 100% of its voxels lie between 13 and 242 (of 255) and spread " \
               "over many values, as in a gray-value scan" in err
        then = f"analyze map.tif --intensity {tmp_path / 'scan.tif'}" if command[0] == "analyze" else \
            f"evaluate map.tif {tmp_path / 'truth.tif'}"
        assert f"segment it first: tomoseg segment {tmp_path / 'scan.tif'} map.tif, then tomoseg {then}" in err
    assert main(["analyze", str(tmp_path / "map.tif"), "--csv", str(tmp_path / "o.csv"), "--overwrite", "-q"]) == 0
    assert "gray-value scan" not in capsys.readouterr().err
    # a synthetic map of two values, its background at 20 (p = 0.08), as tests make them: not a scan
    write_volume(str(tmp_path / "two.tif"), np.where(prob > 127, 230, 20).astype(np.uint8))
    assert main(["analyze", str(tmp_path / "two.tif"), "--csv", str(tmp_path / "o.csv"), "--overwrite", "-q"]) == 0
    assert "gray-value scan" not in capsys.readouterr().err
    # a reading the user chose is theirs: no warning
    assert main(["analyze", str(tmp_path / "scan.tif"), "--csv", str(tmp_path / "o.csv"), "--overwrite",
                 "--read-as", "probability", "-q"]) == 0
    assert "gray-value scan" not in capsys.readouterr().err
