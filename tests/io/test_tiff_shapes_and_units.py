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
