"""Where an NRRD places its voxel (0, 0, 0) (``origin_nm``) and how large its voxels are, for the ways its header
can say it (brief H2, item 4): ``space units`` in mm, in µm (written as Fiji does, ``"µm"``: pynrrd decodes the
header as ASCII and dropped the µ, reading metres), an anatomical space without units (mm), no space and no units
(unknown), and rotated spaces (no origin along the array's axes; in metres a rotation hid under NumPy's absolute
tolerance)."""

import numpy as np
import pytest

from tomoseg.io import open_volume
from tomoseg.io.nrrd_file import origin_nm

DATA = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)


def _nrrd(path, lines, encoding="utf-8"):
    """A raw NRRD written byte by byte (pynrrd cannot write a µ), its header ``lines`` after the sizes."""
    header = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 6 5 4\nencoding: raw\n" + "\n".join(lines) + "\n\n"
    path.write_bytes(header.encode(encoding) + DATA.tobytes())
    return path


DIAGONAL_UM = "space directions: (0.03,0,0) (0,0.03,0) (0,0,0.06)"


@pytest.mark.parametrize("unit, encoding", [("µm", "utf-8"), ("µm", "latin-1"), ("μm", "utf-8"), ("um", "utf-8"),
                                            ("micron", "utf-8")], ids=["micro-sign", "latin-1", "greek-mu", "um",
                                                                       "micron"])
def test_space_units_in_micrometres_however_written(tmp_path, unit, encoding):
    path = _nrrd(tmp_path / "um.nrrd", ["space dimension: 3", DIAGONAL_UM, f'space units: "{unit}" "{unit}" "{unit}"',
                                        "space origin: (1,2,3)"], encoding)
    with open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))  # "µm" was read as "m": 6e7 × 3e7 × 3e7 nm
        assert origin_nm(v.orientation) == pytest.approx((3000.0, 2000.0, 1000.0))  # z, y, x; was 3e9, 2e9, 1e9
        assert np.array_equal(v.read(), DATA)


@pytest.mark.parametrize("lines, voxel_size, origin", [
    (["space dimension: 3", "space directions: (3e-5,0,0) (0,3e-5,0) (0,0,6e-5)", 'space units: "mm" "mm" "mm"',
      "space origin: (1,2,3)"], (60.0, 30.0, 30.0), (3e6, 2e6, 1e6)),
    (["space: left-posterior-superior", "space directions: (3e-5,0,0) (0,3e-5,0) (0,0,6e-5)",
      "space origin: (1,2,3)"], (60.0, 30.0, 30.0), (3e6, 2e6, 1e6)),  # anatomical, no units: mm
    (["space dimension: 3", "space directions: (30,0,0) (0,0.03,0) (0,0,6e-5)", 'space units: "nm" "um" "mm"',
      "space origin: (1,2,3)"], (60.0, 30.0, 30.0), (3e6, 2e3, 1.0)),  # a unit for each axis
    (["space dimension: 3", "space directions: (30,0,0) (0,30,0) (0,0,60)", "space origin: (1,2,3)"], None, None),
], ids=["mm", "lps-without-units", "mixed-units", "no-space-no-units"])
def test_origin_in_the_space_units(tmp_path, lines, voxel_size, origin):
    with open_volume(_nrrd(tmp_path / "v.nrrd", lines)) as v:
        assert v.voxel_size == (pytest.approx(voxel_size) if voxel_size else None)
        assert origin_nm(v.orientation) == (pytest.approx(origin) if origin else None)


@pytest.mark.parametrize("directions, units", [
    ("(0,-30,0) (30,0,0) (0,0,60)", "nm"),                      # turned by 90 degrees
    ("(-3e-5,0,0) (0,-3e-5,0) (0,0,6e-5)", "mm"),              # flipped (LPS from RAS)
    ("(3e-8,5e-9,0) (-5e-9,3e-8,0) (0,0,6e-8)", "m"),          # 9.5 degrees about z, in metres
    ("(0.03,0.0003,0) (-0.0003,0.03,0) (0,0,0.06)", "um"),      # 0.6 degrees
], ids=["turned", "flipped", "rotated-in-metres", "slightly-rotated"])
def test_a_rotated_space_has_no_origin_along_the_array_axes(tmp_path, directions, units):
    """A position is not origin + index × voxel size there: no origin (the 9.5 degrees in metres were within
    ``np.allclose``'s 1e-8 and the origin was taken as if the axes were aligned)."""
    path = _nrrd(tmp_path / "r.nrrd", ["space dimension: 3", f"space directions: {directions}",
                                       f'space units: "{units}" "{units}" "{units}"', "space origin: (1e-6,2e-6,3e-6)"])
    with open_volume(path) as v:
        assert v.orientation is not None  # kept for the NRRD outputs
        assert origin_nm(v.orientation) is None


def test_float_noise_in_the_directions_is_along_the_axes(tmp_path):
    path = _nrrd(tmp_path / "n.nrrd", ["space dimension: 3",
                                       "space directions: (0.03,1e-12,0) (-2e-12,0.03,0) (0,0,0.06)",
                                       'space units: "um" "um" "um"', "space origin: (1,2,3)"])
    with open_volume(path) as v:
        assert origin_nm(v.orientation) == pytest.approx((3000.0, 2000.0, 1000.0))
