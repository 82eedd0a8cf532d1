"""OME-Zarr ``coordinateTransformations`` whose values cannot be used (brief H5, items 2 and 3). A ``scale`` or
``translation`` holding a string or null (``["a", 1, 1]``, ``[null, 0, 0]``) refused the store with "Zarr metadata
cannot be used (ValueError: could not convert string to float: 'a')", naming neither the attribute nor what to do;
one with the wrong number of values (``[0, 0]`` for the axes z, y, x) was taken as (0, 0, 0), silently. OME-NGFF
gives one number per axis (t and c included): anything else leaves the voxel size or the origin unknown, with a note
for ``info`` and one warning naming the file and the value from every command, like a boolean (HP7); a store whose
axes are t, c, z, y, x and whose translation has five values is read as before."""

import csv
import re

import numpy as np
import pytest
import zarr

from tomoseg.cli import main
from tomoseg.errors import TomosegWarning
from tomoseg.io import open_volume

LEVEL = "the OME-NGFF {kind} of level '0' (coordinateTransformations) is {value}"
ORIGIN_UNKNOWN = "origin unknown (positions in nm are counted from voxel (0, 0, 0))"
SIZE_UNKNOWN = "voxel size unknown: pass --voxel-size Z Y X"


def _ome(path, data, scale, translation=None, axes="zyx", outer_scale=None):
    """An OME-Zarr 0.5 image of ``data`` (with a leading 1 for each axis beyond z, y, x) in micrometres."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=data.reshape((1,) * (len(axes) - 3) + data.shape), chunks=(1,) * (len(axes) - 3)
                   + data.shape)
    transforms = [{"type": "scale", "scale": scale}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": translation})
    kinds = {"t": {"type": "time"}, "c": {"type": "channel"}}
    ms = {"axes": [{"name": n, **kinds.get(n, {"type": "space", "unit": "micrometer"})} for n in axes],
          "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    if outer_scale is not None:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": outer_scale}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


@pytest.fixture
def vol():
    return np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)


@pytest.mark.parametrize("translation, why", [
    (["a", 0, 0], "and 'a' is not a number"),
    ([None, 0, 0], "and null is not a number"),
    ([0, 0], "2 values for the 3 axes (z, y, x) of the multiscale (OME-NGFF: one per axis)"),
    ([0.5, 1, 2, 3], "4 values for the 3 axes (z, y, x)"),
], ids=["string", "null", "two-values", "four-values"])
def test_an_unusable_translation_leaves_the_origin_unknown_and_says_so(tmp_path, vol, translation, why):
    path = _ome(tmp_path / "t.ome.zarr", vol, [0.06, 0.03, 0.03], translation)
    said = LEVEL.format(kind="translation", value=translation)
    with pytest.warns(TomosegWarning, match=re.escape(f"{path}: {said}, {why}")) as caught, \
            open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))  # the scale is fine: kept
        assert v.origin_nm is None and not v.ngff_at_zero  # was (0, 0, 0) for [0, 0]; a refusal for text and null
        assert any(n.startswith(f"{said}, {why}") and ORIGIN_UNKNOWN in n for n in v.notes), v.notes
    assert len(caught) == 1
    assert np.array_equal(v.read(), vol)


@pytest.mark.parametrize("scale, why", [
    (["a", 0.03, 0.03], "and 'a' is not a number"),
    ([None, 0.03, 0.03], "and null is not a number"),
    ([0.03, 0.03], "2 values for the 3 axes (z, y, x)"),
], ids=["string", "null", "two-values"])
def test_an_unusable_scale_leaves_the_voxel_size_unknown_and_voxel_size_replaces_it(tmp_path, vol, capsys, scale,
                                                                                     why):
    path = _ome(tmp_path / "s.ome.zarr", vol, scale, [1, 2, 3])
    said = f"{LEVEL.format(kind='scale', value=scale)}, {why}"
    with pytest.warns(TomosegWarning, match=re.escape(f"{path}: {said}")), open_volume(path) as v:
        assert v.voxel_size is None
        assert v.origin_nm == pytest.approx((1000.0, 2000.0, 3000.0))  # the translation is fine: in the axes' unit
        assert any(n.startswith(said) and n.endswith(SIZE_UNKNOWN) for n in v.notes), v.notes
    assert main(["info", str(path)]) == 0  # was: exit 1, "Zarr metadata cannot be used (ValueError: ...)"
    captured = capsys.readouterr()
    assert f"note          {said}" in captured.out and captured.err.count(f"warning: {path}: {said}") == 1
    assert main(["info", str(path), "--voxel-size", "60", "30", "30"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_analyze_counts_from_voxel_0_and_warns_once_naming_the_file(tmp_path, capsys):
    mask = np.zeros((6, 10, 10), np.uint8)
    mask[2:4, 3:6, 3:6] = 1
    path = _ome(tmp_path / "m.ome.zarr", mask, [0.06, 0.03, 0.03], [0, 0])
    assert main(["analyze", str(path), "--out", str(tmp_path / "a"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"warning: {path}: {LEVEL.format(kind='translation', value=[0, 0])}, 2 values") == 1, err
    with open(tmp_path / "a" / "objects.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["centroid_z_nm"]) == pytest.approx(2.5 * 60.0)  # from voxel (0, 0, 0), and said so


def test_the_multiscale_scale_that_scales_a_translation_cannot_be_used(tmp_path, vol):
    path = _ome(tmp_path / "o.ome.zarr", vol, [0.06, 0.03, 0.03], [1, 2, 3], outer_scale=["x", 1, 1])
    with pytest.warns(TomosegWarning) as caught, open_volume(path) as v:
        assert v.voxel_size is None and v.origin_nm is None  # was: refused, "Zarr metadata cannot be used"
    said = [str(w.message) for w in caught]
    assert any("scale of the multiscale (coordinateTransformations) is ['x', 1, 1], and 'x' is not a number" in m
               for m in said), said
    assert any("it scales the translation of level '0'" in m and ORIGIN_UNKNOWN in m for m in said), said


def test_one_value_per_axis_with_time_and_channel_is_read_as_before(tmp_path, vol):
    path = _ome(tmp_path / "tczyx.ome.zarr", vol, [1, 1, 0.06, 0.03, 0.03], [0, 0, 1, 2, 3], axes="tczyx")
    with open_volume(path) as v:  # no warning (warnings are errors in the tests)
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))
        assert v.origin_nm == pytest.approx((1000.0, 2000.0, 3000.0))
        assert v.notes == []


def test_three_values_for_five_axes_are_not_guessed(tmp_path, vol):
    """OME-NGFF gives t and c a value too: [1, 2, 3] for t, c, z, y, x is not z, y, x by any rule."""
    path = _ome(tmp_path / "tczyx.ome.zarr", vol, [1, 1, 0.06, 0.03, 0.03], [1, 2, 3], axes="tczyx")
    with pytest.warns(TomosegWarning, match=re.escape("[1, 2, 3], 3 values for the 5 axes (t, c, z, y, x)")), \
            open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0)) and v.origin_nm is None


NOT_A_LIST = "not a list (OME-NGFF: one number per axis)"


def _ome_with(path, data, transforms):
    """An OME-Zarr 0.5 image (z, y, x in micrometres) whose level '0' has ``transforms`` as written."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=data, chunks=data.shape)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]}
    return path


@pytest.mark.parametrize("scale, written", [("0.06, 0.03, 0.03", "'0.06, 0.03, 0.03'"), (0.03, "0.03"),
                                            ({"z": 0.06, "y": 0.03, "x": 0.03}, "{'z': 0.06, 'y': 0.03, 'x': 0.03}"),
                                            (None, "null")], ids=["string", "number", "object", "null"])
def test_a_scale_that_is_not_a_list_is_warned_of_naming_the_file_and_value(tmp_path, vol, capsys, scale, written):
    """Brief H7 item 1: a scale that was no list was passed over: the voxel size unknown without a word."""
    path = _ome_with(tmp_path / "s.ome.zarr", vol, [{"type": "scale", "scale": scale},
                                                     {"type": "translation", "translation": [1, 2, 3]}])
    said = f"{LEVEL.format(kind='scale', value=written)}, {NOT_A_LIST}; {SIZE_UNKNOWN}"
    with pytest.warns(TomosegWarning, match=re.escape(f"{path}: {said}")) as caught, open_volume(path) as v:
        assert v.voxel_size is None
        assert v.origin_nm == pytest.approx((1000.0, 2000.0, 3000.0))  # the translation is fine: kept
        assert said in v.notes
    assert len(caught) == 1
    assert main(["info", str(path), "--voxel-size", "60", "30", "30"]) == 0  # --voxel-size replaces it, silently
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("translation, written", [("1,2,3", "'1,2,3'"), (5, "5"), ({"z": 1}, "{'z': 1}"),
                                                  (None, "null")], ids=["string", "number", "object", "null"])
def test_a_translation_that_is_not_a_list_is_warned_of_and_not_taken_for_0(tmp_path, vol, translation, written):
    """Brief H7 item 1: a translation that was no list was passed over: the image taken to lie at 0 (NGFF's place
    for an image without one), silently."""
    path = _ome_with(tmp_path / "t.ome.zarr", vol, [{"type": "scale", "scale": [0.06, 0.03, 0.03]},
                                                     {"type": "translation", "translation": translation}])
    said = f"{LEVEL.format(kind='translation', value=written)}, {NOT_A_LIST}; {ORIGIN_UNKNOWN}"
    with pytest.warns(TomosegWarning, match=re.escape(f"{path}: {said}")) as caught, open_volume(path) as v:
        assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0))
        assert v.origin_nm is None and not v.ngff_at_zero  # was at 0: compared as such with another file's place
        assert any(n.startswith(said) for n in v.notes), v.notes
    assert len(caught) == 1


def test_a_multiscale_scale_that_is_not_a_list_leaves_size_and_origin_unknown(tmp_path, vol):
    path = _ome(tmp_path / "o.ome.zarr", vol, [0.06, 0.03, 0.03], [1, 2, 3], outer_scale="2")
    with pytest.warns(TomosegWarning) as caught, open_volume(path) as v:
        assert v.voxel_size is None and v.origin_nm is None  # was (60, 30, 30) and (1000, 2000, 3000) nm
    said = [str(w.message) for w in caught]
    assert any(f"scale of the multiscale (coordinateTransformations) is '2', {NOT_A_LIST}" in m for m in said), said
    assert any("(coordinateTransformations), '2', cannot be used, and it scales the translation of level '0'" in m
               for m in said), said


def test_an_unusable_multiscale_scale_leaves_the_multiscale_translation_alone(tmp_path, vol):
    """The multiscale's scale scales the levels' translations, not its own: with no translation on the level, the
    origin is the multiscale's translation, whatever that scale holds (was: refused, "Zarr metadata cannot be used
    (ValueError: could not convert string to float: 'x')": 0 was multiplied by it)."""
    path = _ome(tmp_path / "o.ome.zarr", vol, [0.06, 0.03, 0.03], outer_scale=["x", 1, 1])
    g = zarr.open_group(str(path), mode="a")
    ome = g.attrs["ome"]
    ome["multiscales"][0]["coordinateTransformations"].append({"type": "translation", "translation": [1, 2, 3]})
    g.attrs["ome"] = ome
    with pytest.warns(TomosegWarning, match=re.escape("is ['x', 1, 1], and 'x' is not a number")) as caught, \
            open_volume(path) as v:
        assert v.voxel_size is None
        assert v.origin_nm == pytest.approx((1000.0, 2000.0, 3000.0))
    assert len(caught) == 1
