"""Where two files of one run place their volumes, compared wherever two files meet voxel by voxel (brief H2,
item 2): an OME-Zarr image without a translation lies at 0 (NGFF), so against one with a translation it is placed
apart (it was compared with nothing); ``analyze --intensity`` (the map and its gray image) and ``segment
--sample-mask`` (the scan and its mask) warn as ``evaluate`` does (they said nothing)."""

import numpy as np
import zarr

from tomoseg.cli import main
from tomoseg.io import open_volume
from tomoseg.io.placement import placement_difference


def _ome(path, data, translation=None):
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=data, chunks=data.shape)
    transforms = [{"type": "scale", "scale": [30.0, 30.0, 30.0]}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": list(translation)})
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]}
    return path


_ANALYZE = ["--read-as", "probability", "-q", "--overwrite", "--csv"]


def _map():
    m = np.zeros((8, 16, 16), np.uint8)
    m[2:5, 4:8, 4:8] = 255
    return m


def test_an_ome_zarr_without_a_translation_lies_at_zero(tmp_path):
    a = _ome(tmp_path / "a.ome.zarr", _map())
    b = _ome(tmp_path / "b.ome.zarr", _map(), translation=[0.0, 0.0, 600.0])
    c = _ome(tmp_path / "c.ome.zarr", _map(), translation=[0.0, 0.0, 0.0])
    with open_volume(a) as va, open_volume(b) as vb, open_volume(c) as vc:
        assert placement_difference(va, "a", vb, "b", (30.0,) * 3) == "origin (x, y, z nm): a 0, 0, 0; b 600, 0, 0"
        assert placement_difference(va, "a", vc, "c", (30.0,) * 3) is None  # a translation of 0: the same place
    plain = tmp_path / "plain.zarr"  # a Zarr array without NGFF metadata records no place: nothing to compare
    zarr.create_array(str(plain), data=_map(), chunks=(8, 16, 16))
    with open_volume(b) as vb, open_volume(plain) as vp:
        assert placement_difference(vp, "p", vb, "b") is None


def test_an_ome_zarr_without_a_translation_against_a_place_it_cannot_hold(tmp_path):
    """tomoseg's Zarr output of a rotated NRRD (or of one whose origin has no known unit) has no translation: an
    OME-Zarr cannot hold that place, so it is not said to lie elsewhere."""
    z = _ome(tmp_path / "p.ome.zarr", _map())
    for name, lines in (("rot.nrrd", ["space dimension: 3", "space directions: (0,-30,0) (30,0,0) (0,0,60)",
                                      'space units: "nm" "nm" "nm"', "space origin: (1,2,3)"]),
                        ("nounit.nrrd", ["space dimension: 3", "space directions: (30,0,0) (0,30,0) (0,0,60)",
                                         "space origin: (1,2,3)"])):
        header = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 16 16 8\nencoding: raw\n" + "\n".join(lines) + "\n\n"
        (tmp_path / name).write_bytes(header.encode() + _map().tobytes())
        with open_volume(z) as vz, open_volume(tmp_path / name) as vn:
            assert placement_difference(vz, "p", vn, "n") is None, name
    moved = tmp_path / "moved.nrrd"  # along the axes, in nm, away from 0: an OME-Zarr could hold it, so it is said
    moved.write_bytes(b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 16 16 8\nencoding: raw\nspace dimension: 3\n"
                      b"space directions: (30,0,0) (0,30,0) (0,0,30)\nspace units: \"nm\" \"nm\" \"nm\"\n"
                      b"space origin: (90,0,0)\n\n" + _map().tobytes())
    with open_volume(z) as vz, open_volume(moved) as vm:
        assert placement_difference(vz, "p", vm, "m", (30.0,) * 3) == "origin (x, y, z nm): p 0, 0, 0; m 90, 0, 0"


def test_analyze_warns_where_the_intensity_image_lies_elsewhere(tmp_path, capsys):
    m = _ome(tmp_path / "map.ome.zarr", _map())
    gray = _ome(tmp_path / "gray.ome.zarr", _map(), translation=[0.0, 0.0, 600.0])
    assert main(["analyze", str(m), "--intensity", str(gray), *_ANALYZE, str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert err.count(f"{m} and --intensity {gray} are matched voxel by voxel, but their files place them "
                     "differently in space (origin (x, y, z nm): ") == 1, err
    same = _ome(tmp_path / "same.ome.zarr", _map())
    assert main(["analyze", str(m), "--intensity", str(same), *_ANALYZE, str(tmp_path / "o.csv")]) == 0
    assert "place them differently" not in capsys.readouterr().err


def test_segment_warns_where_the_sample_mask_lies_elsewhere(tmp_path, tiny_model, capsys):
    rng = np.random.default_rng(0)
    scan = _ome(tmp_path / "scan.ome.zarr", rng.integers(0, 255, (16, 32, 32), dtype=np.uint8))
    mask = _ome(tmp_path / "mask.ome.zarr", np.ones((16, 32, 32), np.uint8), translation=[300.0, 0.0, 0.0])
    args = ["--model", tiny_model, "--tile-size", "16", "--halo", "0", "-q"]
    assert main(["segment", str(scan), str(tmp_path / "p.npy"), "--sample-mask", str(mask)] + args) == 0
    err = capsys.readouterr().err
    assert err.count(f"{scan} and --sample-mask {mask} are matched voxel by voxel (the mask chooses the tiles to "
                     "segment), but their files place them differently in space (origin (x, y, z nm): "
                     f"{scan} 0, 0, 0; --sample-mask {mask} 0, 0, 300)") == 1, err
    same = _ome(tmp_path / "same.ome.zarr", np.ones((16, 32, 32), np.uint8))
    assert main(["segment", str(scan), str(tmp_path / "q.npy"), "--sample-mask", str(same)] + args) == 0
    assert "place them differently" not in capsys.readouterr().err
