"""A compressed NRRD is read whole into memory: one that would not fit is refused before the read."""

import nrrd
import numpy as np
import psutil
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume


def test_a_compressed_nrrd_too_large_for_memory_is_refused_with_advice(tmp_path, rng, monkeypatch):
    data = rng.integers(0, 255, (8, 16, 16), dtype=np.uint8)
    nrrd.write(str(tmp_path / "v.nrrd"), data, {"encoding": "gzip"}, index_order="C")
    with open_volume(str(tmp_path / "v.nrrd")) as vol:  # fits: read as before
        np.testing.assert_array_equal(vol[:, :, :], data)

    class Little:
        available = 2 * data.nbytes - 2  # half of it is just under the data's size

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    with pytest.raises(TomosegError, match=r"gzip-compressed NRRD .* raw encoding"):
        open_volume(str(tmp_path / "v.nrrd"))


def test_segment_keeps_an_nrrd_inputs_place_in_space(tmp_path):
    """An NRRD scan in LPS space with flipped axes and an origin: segment's NRRD outputs were written with a
    positive diagonal at 0, so 3D Slicer showed them flipped and shifted against the scan. They now carry the
    input's space, directions and origin (the voxel size read stays the same)."""
    import nrrd

    from tomoseg.inference import SegmentOptions, segment
    from tomoseg.io import open_volume

    data = np.random.default_rng(0).integers(0, 255, (16, 24, 32), dtype=np.uint8)
    header = {"space": "left-posterior-superior", "space directions": np.diag([-30.0, -30.0, 30.0]),
              "space origin": np.array([1920.0, 1920.0, -500.0]), "space units": ["nm", "nm", "nm"]}
    nrrd.write(str(tmp_path / "scan.nrrd"), data, header, index_order="C")
    segment(str(tmp_path / "scan.nrrd"), str(tmp_path / "prob.nrrd"), mask_output=str(tmp_path / "mask.nrrd"),
            options=SegmentOptions(sample_mask="off"), progress=False)
    for name in ("prob.nrrd", "mask.nrrd"):
        out = nrrd.read_header(str(tmp_path / name))
        assert out["space"] == "left-posterior-superior"
        np.testing.assert_allclose(out["space directions"], header["space directions"])
        np.testing.assert_allclose(out["space origin"], header["space origin"])
        assert open_volume(str(tmp_path / name)).voxel_size == open_volume(str(tmp_path / "scan.nrrd")).voxel_size
    plain = tmp_path / "plain.nrrd"  # a diagonal at 0 (what tomoseg writes) keeps the plain header
    nrrd.write(str(plain), data, {"space dimension": 3, "space directions": np.diag([10.0, 10.0, 10.0]),
                                  "space units": ["nm", "nm", "nm"]}, index_order="C")
    assert open_volume(str(plain)).orientation is None


def test_label_images_keep_an_nrrd_inputs_place_in_space(tmp_path):
    """analyze --labels and segment --labels wrote NRRD label images with a positive diagonal at 0 (only
    segment's probability map and mask kept the input's space); both, and the chunked path, keep it now."""
    import nrrd

    from tomoseg.cli import main
    from tomoseg.objects import AnalysisOptions, analyze
    from tomoseg.objects.label_image import write_label_image

    mask = np.zeros((16, 24, 32), np.uint8)
    mask[4:9, 5:10, 6:11] = 1
    header = {"space": "left-posterior-superior", "space directions": np.diag([-30.0, -30.0, 30.0]),
              "space origin": np.array([1920.0, 1920.0, -500.0]), "space units": ["nm", "nm", "nm"]}
    nrrd.write(str(tmp_path / "mask.nrrd"), mask, header, index_order="C")
    nrrd.write(str(tmp_path / "scan.nrrd"), (200 - 150 * mask).astype(np.uint8), header, index_order="C")
    assert main(["-q", "analyze", str(tmp_path / "mask.nrrd"), "--out", str(tmp_path / "r"),
                 "--labels", str(tmp_path / "r" / "labels.nrrd")]) == 0
    assert main(["-q", "segment", str(tmp_path / "scan.nrrd"), str(tmp_path / "p.nrrd"), "--sample-mask", "off",
                 "--labels", str(tmp_path / "seg-labels.nrrd")]) == 0
    with open_volume(str(tmp_path / "mask.nrrd")) as vol:
        table = analyze(vol).selected
        write_label_image(vol, tmp_path / "chunked.nrrd", table, workdir=tmp_path,
                          options=AnalysisOptions(chunks=(8, 8, 8), in_memory_voxels=100))
    for path in (tmp_path / "r" / "labels.nrrd", tmp_path / "seg-labels.nrrd", tmp_path / "chunked.nrrd"):
        out = nrrd.read_header(str(path))
        assert out["space"] == "left-posterior-superior", path
        np.testing.assert_allclose(out["space directions"], header["space directions"])
        np.testing.assert_allclose(out["space origin"], header["space origin"])
    np.testing.assert_array_equal(open_volume(str(tmp_path / "chunked.nrrd"))[:, :, :], mask)


def _rotated_lps_mm(lengths_mm):
    """Space directions of a Slicer-style scan: rotated 30° about z, x flipped; rows x, y, z of the given lengths."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    unit = np.array([[-c, -s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return unit * np.asarray(lengths_mm)[:, None]


def test_nrrd_outputs_take_the_voxel_size_override(tmp_path):
    """An oriented NRRD input (LPS, mm, an origin) with a wrong spacing, corrected with --voxel-size: its space
    directions were copied into every NRRD output with their old lengths, so the outputs read back at 1000 nm while
    the provenance, the other outputs and objects.csv used the override. The vectors keep their directions and
    the origin stays; their lengths are now the override, in the header's units (mm)."""
    import json

    from tomoseg.cli import main

    mask = np.zeros((16, 24, 32), np.uint8)
    mask[4:9, 5:10, 6:11] = 1
    header = {"space": "left-posterior-superior", "space directions": _rotated_lps_mm([0.001] * 3),
              "space origin": np.array([1.0, 2.0, 3.0]), "kinds": ["domain"] * 3}
    nrrd.write(str(tmp_path / "mask.nrrd"), mask, header, index_order="C")
    nrrd.write(str(tmp_path / "scan.nrrd"), (200 - 150 * mask).astype(np.uint8), header, index_order="C")
    override = ["50", "29.33", "31"]
    want = (50.0, 29.33, 31.0)
    assert main(["-q", "segment", str(tmp_path / "scan.nrrd"), str(tmp_path / "p.nrrd"), "--sample-mask", "off",
                 "--voxel-size", *override, "--mask", str(tmp_path / "m.nrrd"),
                 "--labels", str(tmp_path / "seg-labels.nrrd")]) == 0
    assert main(["-q", "analyze", str(tmp_path / "mask.nrrd"), "--voxel-size", *override, "--out",
                 str(tmp_path / "r"), "--labels", str(tmp_path / "r" / "labels.nrrd")]) == 0
    assert json.loads((tmp_path / "p.nrrd.provenance.json").read_text())["voxel_size_nm"] == list(want)
    directions = np.asarray(header["space directions"])
    for name in ("p.nrrd", "m.nrrd", "seg-labels.nrrd", "r/labels.nrrd"):
        out = nrrd.read_header(str(tmp_path / name))
        assert out["space"] == "left-posterior-superior" and "space units" not in out, name
        np.testing.assert_allclose(out["space origin"], header["space origin"])
        dirs = np.asarray(out["space directions"])
        lengths = np.linalg.norm(dirs, axis=1)
        np.testing.assert_allclose(lengths, np.array(want[::-1]) * 1e-6, rtol=1e-12)  # x, y, z in mm
        np.testing.assert_allclose(dirs / lengths[:, None], directions / 0.001, atol=1e-12)  # same directions
        assert open_volume(str(tmp_path / name)).voxel_size == pytest.approx(want, rel=1e-12), name


def test_nrrd_override_where_the_header_has_no_usable_unit(tmp_path):
    """Directions without a unit (a non-anatomical space) cannot be scaled in their unit: the vectors are written in
    nm with space units nm; a vector of length 0 has no direction: the override is written as a plain diagonal."""
    from tomoseg.io import create_volume

    data = np.zeros((3, 4, 5), np.uint8)
    unitless = {"space": None, "space directions": (2 * _rotated_lps_mm([1.0, 1.0, 1.0])).tolist(),
                "space origin": [5.0, 6.0, 7.0], "space units": None}
    zero = {**unitless, "space directions": [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}
    for name, orientation in (("unitless.nrrd", unitless), ("zero.nrrd", zero)):
        with create_volume(str(tmp_path / name), data.shape, data.dtype, voxel_size=(50.0, 29.33, 31.0),
                           orientation=orientation) as w:
            w[:, :, :] = data
        assert open_volume(str(tmp_path / name)).voxel_size == pytest.approx((50.0, 29.33, 31.0), rel=1e-12)
    out = nrrd.read_header(str(tmp_path / "unitless.nrrd"))
    assert list(out["space units"]) == ["nm"] * 3 and list(out["space origin"]) == [5.0, 6.0, 7.0]
    dirs = np.asarray(out["space directions"])
    np.testing.assert_allclose(dirs[0] / 31.0, np.asarray(unitless["space directions"][0]) / 2, atol=1e-12)
    out = nrrd.read_header(str(tmp_path / "zero.nrrd"))
    np.testing.assert_allclose(out["space directions"], np.diag([31.0, 29.33, 50.0]))
    assert "space origin" not in out
