"""TIFF round trips of thin volumes, and the length units ImageJ writes."""

import numpy as np
import pytest
import tifffile

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, write_volume


def test_thin_tiff_volumes(tmp_path):
    """tifffile stores a (1, y, x) ImageJ volume as one 2D page, which tomoseg refused to read (a 2D image):
    its own one-slice files read back as volumes; a plain 2D TIFF is still refused."""
    a = np.arange(42, dtype=np.uint16).reshape(1, 6, 7)
    write_volume(str(tmp_path / "one.tif"), a, voxel_size=(30.0, 20.0, 10.0))
    v = open_volume(str(tmp_path / "one.tif"))
    assert v.shape == (1, 6, 7) and np.array_equal(v[:, :, :], a) and v.voxel_size == (30.0, 20.0, 10.0)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((6, 7), np.uint8))
    with pytest.raises(TomosegError, match="is a 2D image"):
        open_volume(str(tmp_path / "plain.tif"))
    # one voxel wide in x: ImageJ takes the axis for samples (the file read back as 5 x 6, 'truncated'): refused
    with pytest.raises(TomosegError, match="one voxel wide in x"):
        write_volume(str(tmp_path / "x1.tif"), np.zeros((5, 6, 1), np.uint8))
    assert not list(tmp_path.glob("x1.tif*"))


@pytest.mark.parametrize("unit", ["\\u00B5m", "\\u00b5m", "micron", "um"])  # ImageJ descriptions are ASCII
def test_imagej_micrometre_spellings(tmp_path, unit):
    """ImageJ writes µ escaped as \\u00B5; the unit table is looked up in lower case, so that key never matched
    and the voxel size came back unknown."""
    a = np.zeros((3, 4, 5), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", a, imagej=True, resolution=(1 / 0.01, 1 / 0.02),  # x, then y
                     metadata={"spacing": 0.03, "unit": unit, "axes": "ZYX"})
    assert open_volume(str(tmp_path / "a.tif")).voxel_size == pytest.approx((30.0, 20.0, 10.0))


def test_colour_tiffs_refused_and_three_slice_stacks_read(tmp_path):
    """RGB stacks, planar or interleaved, were read as a 4D shape called 'truncated' or as a volume 3 voxels
    wide in x; they are refused as colour. A 3-slice array that tifffile stored by default (one page of three
    separate planes) was called truncated; it reads back as the volume it is."""
    tifffile.imwrite(tmp_path / "planar.tif", np.zeros((4, 3, 8, 9), np.uint8), photometric="rgb",
                     planarconfig="separate")
    tifffile.imwrite(tmp_path / "contig.tif", np.zeros((4, 8, 9, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "photo.tif", np.zeros((8, 9, 3), np.uint8), photometric="rgb")
    for name in ("planar.tif", "contig.tif", "photo.tif"):
        with pytest.raises(TomosegError, match="colour images .3 samples per pixel.*grayscale"):
            open_volume(str(tmp_path / name))
    a = np.arange(3 * 8 * 9).reshape(3, 8, 9).astype(np.uint8)
    tifffile.imwrite(tmp_path / "three.tif", a, photometric="rgb", planarconfig="separate")  # tifffile's default
    v = open_volume(str(tmp_path / "three.tif"))
    assert v.shape == (3, 8, 9) and np.array_equal(v[:, :, :], a)


def test_a_tiff_truncated_in_a_later_series_is_refused_not_read_as_another_series(tmp_path, capsys):
    """An OME-TIFF of two series cut short in the second: tifffile drops the pages (and the OME description)
    it cannot reach and logs it, so the file read as its small first series, silently (the largest series is
    the default), and naming the second said '2D image'. Both are refused as truncated now, and tifffile's
    log lines are kept off stderr; the complete file reads as before."""
    rng = np.random.default_rng(0)
    small, large = rng.integers(0, 255, (8, 32, 32), np.uint8), rng.integers(0, 255, (10, 40, 40), np.uint8)
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as w:
        w.write(small, metadata={"axes": "ZYX"})
        w.write(large, metadata={"axes": "ZYX"})
    data = (tmp_path / "two.ome.tif").read_bytes()
    (tmp_path / "cut.ome.tif").write_bytes(data[:len(data) - 3000])
    for spec in ("cut.ome.tif", "cut.ome.tif:1"):
        with pytest.raises(TomosegError, match=r"cut.ome.tif: is truncated or damaged \(tifffile: .*offset"):
            open_volume(str(tmp_path / spec))
    assert "tifffile" not in capsys.readouterr().err
    with open_volume(str(tmp_path / "two.ome.tif")) as v:
        np.testing.assert_array_equal(v.read(), large)


@pytest.mark.parametrize("voxel_size", [(50.0, 29.33, 31.0), (1234.5678, 29.333333333333332, 6.123456789)])
def test_bigtiff_output_is_ome_tiff_at_scale(tmp_path, monkeypatch, voxel_size):
    """Outputs past 4 GiB are BigTIFF; they carried the voxel size in nm in the resolution tags under
    ResolutionUnit INCH (Fiji/Bio-Formats: metre-sized voxels) and z only in tifffile's private JSON. They are
    OME-TIFF now: PhysicalSizeX/Y/Z in nm, resolution tags in pixels per cm; written tile by tile through the
    memory map, marked as tomoseg's (software tag), read back exactly."""
    import re

    from tomoseg.io import create_volume, tiff
    from tomoseg.io.output_guard import MARK, written_by_tomoseg

    monkeypatch.setattr(tiff, "BIGTIFF_BYTES", 0)  # force the > 4 GiB branch on a small volume
    data = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    path = tmp_path / "big.tif"
    with create_volume(str(path), data.shape, data.dtype, voxel_size=voxel_size) as w:
        for z0 in range(0, 5, 2):  # tile by tile, as segment writes
            for y0 in range(0, 6, 4):
                w[z0:z0 + 2, y0:y0 + 4, :] = data[z0:z0 + 2, y0:y0 + 4, :]
    z, y, x = voxel_size
    with tifffile.TiffFile(path) as t:
        assert t.is_bigtiff and t.is_ome and not t.is_imagej and len(t.pages) == 5
        assert t.pages.first.software == MARK
        tags = t.pages.first.tags
        assert tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        for tag, size in (("XResolution", x), ("YResolution", y)):
            num, den = tags[tag].value
            assert 1e7 / (num / den) == pytest.approx(size, rel=1e-9)  # pixels per cm -> nm per pixel
        pixels = re.search(r"<Pixels [^>]*>", t.ome_metadata).group(0)
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', pixels))
        assert (attrs["SizeX"], attrs["SizeY"], attrs["SizeZ"]) == ("7", "6", "5")
        for axis, size in (("X", x), ("Y", y), ("Z", z)):
            assert float(attrs[f"PhysicalSize{axis}"]) == size and attrs[f"PhysicalSize{axis}Unit"] == "nm"
        np.testing.assert_array_equal(t.asarray(), data)
    assert written_by_tomoseg(path, None, "tiff")
    with open_volume(str(path)) as vol:
        assert vol.voxel_size == voxel_size  # exactly
        np.testing.assert_array_equal(vol[:, :, :], data)
        np.testing.assert_array_equal(vol[1:3, 2:5, 4:], data[1:3, 2:5, 4:])


def test_bigtiff_output_without_voxel_size(tmp_path, monkeypatch):
    from tomoseg.io import tiff

    monkeypatch.setattr(tiff, "BIGTIFF_BYTES", 0)
    data = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    write_volume(str(tmp_path / "n.tif"), data)
    with tifffile.TiffFile(tmp_path / "n.tif") as t:
        assert t.is_bigtiff and t.is_ome and "PhysicalSize" not in t.ome_metadata
    with open_volume(str(tmp_path / "n.tif")) as vol:
        assert vol.voxel_size is None and np.array_equal(vol[:, :, :], data)


def test_old_bigtiff_outputs_still_read(tmp_path):
    """BigTIFF outputs of earlier versions: tifffile's JSON description (spacing, unit nm), resolution in nm."""
    data = np.zeros((3, 4, 5), np.uint8)
    tifffile.imwrite(tmp_path / "old.tif", data, bigtiff=True, photometric="minisblack", software="tomoseg",
                     resolution=(1 / 31.0, 1 / 29.33), metadata={"axes": "ZYX", "spacing": 50.0, "unit": "nm"})
    assert open_volume(str(tmp_path / "old.tif")).voxel_size == pytest.approx((50.0, 29.33, 31.0))
