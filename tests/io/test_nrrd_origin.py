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


def _axis_mins_nrrd(path, **fields):
    """An NRRD without a space, written by pynrrd: per-axis ``spacings``, ``axis mins`` and the ``fields`` given
    (x, y, z order, as NRRD's)."""
    import nrrd

    header = {"spacings": [0.03, 0.03, 0.06], "axis mins": [1.0, 2.0, 3.0], **fields}
    nrrd.write(str(path), DATA.transpose(2, 1, 0).copy(), {k: v for k, v in header.items() if v is not None})
    return path


@pytest.mark.parametrize("fields, origin", [
    ({"units": ["um", "um", "um"]}, (3030.0, 2015.0, 1015.0)),                           # cell: NRRD's default
    ({"units": ["um", "um", "um"], "centerings": ["cell"] * 3}, (3030.0, 2015.0, 1015.0)),
    ({"units": ["um", "um", "um"], "centerings": ["node"] * 3}, (3000.0, 2000.0, 1000.0)),
    ({"units": ["nm", "um", "mm"], "centerings": ["node", "node", "cell"], "spacings": [30, 0.03, 6e-5]},
     (3.00003e6, 2000.0, 1.0)),
    ({"units": ["um", "um", "um"], "spacings": None, "axis maxs": [1.18, 2.15, 3.24]},  # no spacings: from maxs
     (3030.0, 2015.0, 1015.0)),
], ids=["cell-by-default", "cell", "node", "mixed", "axis-maxs"])
def test_axis_mins_place_an_nrrd_without_a_space(tmp_path, fields, origin):
    """Brief H7 item 3: an NRRD placed by ``axis mins`` (no ``space``) had its voxel size read, not its origin.
    NRRD (teem's nrrdOriginCalculate, and ITK): a min is the edge of a cell-centred axis's first cell, the centre
    of a node-centred one's first sample; cell-centred where ``centers`` does not say. pynrrd writes the field
    ``centerings``, teem ``centers`` (the test below)."""
    from tomoseg.io.volume import origin_of

    with open_volume(_axis_mins_nrrd(tmp_path / "m.nrrd", **fields)) as v:
        assert v.orientation is None  # no space: nothing to keep for the NRRD outputs but the origin
        assert origin_of(v) == pytest.approx(origin)  # was None
        assert np.array_equal(v.read(), DATA)
        if "spacings" not in fields:
            assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))


@pytest.mark.parametrize("units, said", [(None, "no 'units' field"),
                                         (["counts", "counts", "counts"], 'units "counts" "counts" "counts", not '
                                                                          "lengths tomoseg knows")])
def test_axis_mins_in_no_known_unit_leave_the_origin_unknown_and_say_so(tmp_path, capsys, units, said):
    from tomoseg.cli import main

    path = _axis_mins_nrrd(tmp_path / "u.nrrd", units=units)
    note = (f"the header's axis mins (x, y, z: 1, 2, 3) are in no known unit ({said}); origin unknown (positions in "
            "nm are counted from voxel (0, 0, 0)); give the header a 'units' field in lengths")
    with open_volume(path) as v:
        assert v.origin_nm is None and v.voxel_size is None
        assert any(n.startswith(note) for n in v.notes), v.notes
    assert main(["info", str(path)]) == 0
    assert note in capsys.readouterr().out


def test_axis_mins_unknown_to_teem_place_nothing(tmp_path):
    with open_volume(_axis_mins_nrrd(tmp_path / "n.nrrd", units=["um"] * 3, **{"axis mins": [np.nan] * 3})) as v:
        assert v.origin_nm is None and v.notes == []


def test_info_and_the_nrrd_output_keep_the_axis_mins_origin(tmp_path, capsys):
    from tomoseg.cli import main
    from tomoseg.io import create_volume
    from tomoseg.io.placement import placement_difference
    from tomoseg.io.volume import origin_of

    path = _axis_mins_nrrd(tmp_path / "m.nrrd", units=["um", "um", "um"], centerings=["node"] * 3)
    assert main(["info", str(path)]) == 0
    assert "origin        3000 × 2000 × 1000 nm" in capsys.readouterr().out
    with open_volume(path) as v:
        with create_volume(tmp_path / "out.nrrd", v.shape, v.dtype, voxel_size=v.voxel_size, origin=origin_of(v),
                           orientation=v.orientation) as out:  # as segment writes its outputs
            out[:] = v.read()
        with open_volume(tmp_path / "out.nrrd") as w:
            assert w.voxel_size == pytest.approx(v.voxel_size)
            assert origin_nm(w.orientation) == pytest.approx((3000.0, 2000.0, 1000.0))
            assert placement_difference(v, "m.nrrd", w, "out.nrrd", v.voxel_size) is None
        plain = _nrrd(tmp_path / "plain.nrrd", ["space dimension: 3", DIAGONAL_UM, 'space units: "um" "um" "um"'])
        with open_volume(plain) as p:  # at 0: placed apart (was: both at 0, nothing said)
            assert placement_difference(v, "m.nrrd", p, "plain.nrrd", v.voxel_size) == \
                "origin (x, y, z nm): m.nrrd 1000, 2000, 3000; plain.nrrd 0, 0, 0"


def test_axis_mins_with_teems_centers_field(tmp_path):
    """teem (unu) writes ``centers``, which pynrrd does not parse (a string): node, cell, and ``???`` (unknown:
    cell, teem's default)."""
    path = _nrrd(tmp_path / "t.nrrd", ["spacings: 0.03 0.03 0.06", "axis mins: 1 2 3", "centers: node cell ???",
                                       'units: "um" "um" "um"'])
    with open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))
        assert v.origin_nm == pytest.approx((3030.0, 2015.0, 1000.0))


def _fiji_map(path, unit, size):
    """A probability map whose NRRD header gives ``space units`` with a character beyond ASCII, as Fiji writes
    them; ``size``: x's (and y's) voxel size in that unit."""
    m = np.zeros((8, 16, 16), np.uint8)
    m[2:5, 4:8, 4:8] = 255
    header = ("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 16 16 8\nencoding: raw\nspace dimension: 3\n"
              f"space directions: ({size},0,0) (0,{size},0) (0,0,{2 * size})\n"
              f'space units: "{unit}" "{unit}" "{unit}"\nspace origin: (1,2,3)\n\n')
    path.write_bytes(header.encode() + m.tobytes())
    return path


def _check_ascii_units(path, written, nm_per_unit, scale):
    """``path``, an NRRD output of a :func:`_fiji_map` input (voxel size scaled by ``scale``), has its units written
    ``written`` in an ASCII header, and pynrrd and tomoseg read it where its input lies."""
    import nrrd

    from tomoseg.io.volume import origin_of

    text = path.read_bytes().split(b"\n\n")[0]
    assert text.isascii(), text  # was: "\xc2\xb5m"
    assert f'space units: "{written}" "{written}" "{written}"'.encode() in text
    read = nrrd.read_header(str(path))
    assert read["space units"] == [written] * 3  # was ["m", "m", "m"]: a million times too large
    lengths = np.linalg.norm(read["space directions"], axis=1) * nm_per_unit
    assert lengths == pytest.approx([30.0 * scale, 30.0 * scale, 60.0 * scale])
    assert read["space origin"] == pytest.approx([1.0, 2.0, 3.0])  # as the input's, in the same unit
    with open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0 * scale, 30.0 * scale, 30.0 * scale))
        assert origin_of(v) == pytest.approx((3 * nm_per_unit, 2 * nm_per_unit, nm_per_unit))


@pytest.mark.parametrize("unit, written, factor", [("µm", "um", 1e3), ("μm", "um", 1e3), ("Å", "angstrom", 0.1)],
                         ids=["micro-sign", "greek-mu", "angstrom"])
@pytest.mark.parametrize("scale", [1.0, 2.0], ids=["as-read", "voxel-size"])
def test_an_nrrd_output_writes_its_inputs_units_in_ascii(tmp_path, unit, written, factor, scale):
    """Brief H7 item 4: an NRRD output kept its input's ``space units "µm"`` (Fiji) in UTF-8; pynrrd, which decodes
    the header as ASCII, read them back as metres. Written ``"um"`` (``"angstrom"`` for ``"Å"``): the same numbers
    in a unit every reader decodes. Written as segment's and analyze's outputs are (the input's orientation kept,
    its vectors scaled to a --voxel-size given: ``scale``)."""
    from tomoseg.io import create_volume
    from tomoseg.io.volume import origin_of

    with open_volume(_fiji_map(tmp_path / "m.nrrd", unit, 30.0 / factor)) as v:
        voxel_size = tuple(s * scale for s in v.voxel_size)
        with create_volume(tmp_path / "l.nrrd", v.shape, np.uint32, voxel_size=voxel_size, origin=origin_of(v),
                           orientation=v.orientation) as out:
            out[:] = v.read()
    _check_ascii_units(tmp_path / "l.nrrd", written, factor, scale)


@pytest.mark.slow
def test_analyze_labels_of_a_fiji_nrrd_are_written_in_ascii(tmp_path):
    from tomoseg.cli import main

    labels = tmp_path / "l.nrrd"
    assert main(["analyze", str(_fiji_map(tmp_path / "m.nrrd", "µm", 0.03)), "--out", str(tmp_path / "res"),
                 "--labels", str(labels), "-q"]) == 0
    _check_ascii_units(labels, "um", 1e3, 1.0)
