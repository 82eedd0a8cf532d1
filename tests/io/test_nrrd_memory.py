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
