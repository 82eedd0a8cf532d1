"""The object functions called from Python (a notebook) as the CLI runs them: units, checked arguments, clear
errors (review api.md, A1 and A3-A7)."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.objects import AnalysisOptions, analyze, label_objects, measure_objects

NM_COLUMNS = ("volume_nm3", "equivalent_radius_nm", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm",
              "surface_voxel_nm2", "surface_mesh_nm2")


def _mask():
    """Three balls of radius 3 (123 voxels each) inside a 20 x 32 x 32 volume, none on the border."""
    z, y, x = np.mgrid[:20, :32, :32]
    mask = np.zeros((20, 32, 32), np.uint8)
    for c in ((6, 8, 8), (10, 20, 16), (13, 9, 24)):
        mask[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 9] = 1
    return mask


def test_without_a_voxel_size_the_nm_columns_are_nan():
    """A1: analyze() and measure_objects() filled the nm columns with voxel values (volume_nm3 = volume_vox)
    where the voxel size was unknown; the CLI, evaluate and track leave them empty."""
    a = analyze(_mask())
    assert a.selected["volume_vox"].tolist() == [123, 123, 123]
    for column in NM_COLUMNS:
        assert np.isnan(a.selected[column]).all() and np.isnan(a.objects[column]).all(), column
    assert a.summary["mean_radius_nm"] is None and a.summary["number_density_per_um3"] is None
    assert a.selected["sphericity_voxel"] == pytest.approx([a.selected["sphericity_voxel"][0]] * 3)
    assert 0.6 < a.selected["sphericity_voxel"][0] < 0.9  # dimensionless: measured on cubic voxels
    t = tomoseg.measure_objects(tomoseg.label_objects(_mask())[0])
    for column in NM_COLUMNS:
        assert np.isnan(t[column]).all(), column
    t = measure_objects(label_objects(_mask())[0], voxel_size=(10.0, 20.0, 30.0))
    assert t["volume_nm3"].tolist() == [123 * 6000.0] * 3
    b = analyze(_mask(), voxel_size=(10.0, 20.0, 30.0))
    assert b.selected["volume_nm3"].tolist() == [123 * 6000.0] * 3
    assert b.selected["sphericity_voxel"].tolist() != a.selected["sphericity_voxel"].tolist()


@pytest.mark.parametrize("bad, words", [
    ((-29.33, 29.33, 29.33), "must be three positive numbers"),
    ((0, 0, 0), "must be three positive numbers"),
    ((29.33, 29.33), "must be three positive numbers"),
    (29.33, "(29.33,) * 3 for cubic voxels"),
    ("29.33", "must be three"),
])
def test_a_wrong_voxel_size_is_refused(bad, words):
    """A3: a negative voxel size gave complex radii, 0 a ZeroDivisionError, a scalar a TypeError, two values an
    IndexError."""
    labels = label_objects(_mask())[0]
    for call in (lambda: analyze(_mask(), voxel_size=bad), lambda: measure_objects(labels, voxel_size=bad)):
        with pytest.raises(TomosegError, match="voxel size") as err:
            call()
        assert words in str(err.value)


def test_a_voxel_size_in_micrometres_is_warned_about_once():
    """A3: 0.02933 (µm meant) gave radii of 0.1 nm with no word; the CLI warns. The size is checked once: the
    functions it is handed to (measure, label_scan) do not warn again."""
    with pytest.warns(TomosegWarning, match="implausible") as record:
        a = analyze(_mask(), voxel_size=(0.02933,) * 3)
    assert len([w for w in record if issubclass(w.category, TomosegWarning)]) == 1
    assert "if µm were meant" in str(record[0].message)
    assert a.summary["mean_radius_nm"] == pytest.approx(a.summary["mean_radius_vox"] * 0.02933)
    with pytest.warns(TomosegWarning, match="implausible"):
        measure_objects(label_objects(_mask())[0], voxel_size=(0.02933,) * 3)


@pytest.mark.parametrize("value, words", [
    (0.5, "threshold 0.5: give an integer from 0 to 254 (probability x 255; default 127); 0.5 looks like a "
          "probability: on the 0-255 scale that is 127"),
    (300, "threshold 300: give an integer from 0 to 254"),
    (-1, "threshold -1: give an integer"),
    (True, "threshold True: give an integer"),
])
def test_a_threshold_off_the_0_255_scale_is_refused(value, words):
    """A4: AnalysisOptions(threshold=0.5) found 108 objects in a map of 8 (every value above 0), 300 none, with
    no word; SegmentOptions and the CLI refused them. One check for all, with the CLI's wording."""
    from tomoseg.evaluation import evaluate
    from tomoseg.inference import SegmentOptions

    for make in (lambda: AnalysisOptions(threshold=value), lambda: SegmentOptions(threshold=value),
                 lambda: evaluate(_mask(), _mask(), threshold=value)):
        with pytest.raises(TomosegError) as err:
            make()
        assert words in str(err.value)
    assert AnalysisOptions(threshold=np.int64(100)).threshold == 100


def test_a_probability_map_is_not_taken_for_a_mask():
    """A5: label_objects and confusion_matrix counted every nonzero voxel of a probability map as object (1
    object, precision 0.002, for predict's float map). They refuse it, naming the threshold."""
    mask = _mask().astype(bool)
    p = np.where(mask, 0.9, 0.01).astype(np.float32)
    p8 = np.where(mask, 230, 3).astype(np.uint8)
    for given in (p, p8):
        for call in (lambda: tomoseg.label_objects(given), lambda: tomoseg.confusion_matrix(given, mask),
                     lambda: tomoseg.confusion_matrix(mask, given)):
            with pytest.raises(TomosegError, match=r"a probability map\? Pass p > 0.5 .*, p8 > 127"):
                call()
    cm = tomoseg.confusion_matrix(p8 > 127, label_objects(mask)[0])  # a uint32 label image: nonzero = object
    assert (cm.tp, cm.fp, cm.fn) == (369, 0, 0)
    assert tomoseg.label_objects(mask.astype(np.float32))[1] == 3 and tomoseg.label_objects(p > 0.5)[1] == 3
    with pytest.raises(TomosegError, match="negative values"):
        tomoseg.label_objects(-mask.astype(np.int16))


def test_analyze_reads_a_zarr_array_by_its_values(tmp_path, monkeypatch):
    """A6: a zarr Array's ``path`` (its place in the store: '' at the root, '0' in an OME-Zarr group) was taken
    for a file: analyze crashed with pathlib's "PosixPath('.') has an empty name", or looked for
    ./0.provenance.json in the working folder."""
    import zarr

    expected = analyze(_mask()).summary["objects"]
    assert expected == 3
    in_memory = zarr.array(_mask(), chunks=(10, 16, 16))
    assert analyze(in_memory).summary["objects"] == expected
    root = zarr.open_array(str(tmp_path / "m.zarr"), mode="w", shape=(20, 32, 32), chunks=(10, 16, 16),
                           dtype="uint8")
    root[:] = _mask()
    assert analyze(root).summary["objects"] == expected
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("0", shape=(20, 32, 32), chunks=(10, 16, 16), dtype="uint8")[:] = _mask() * 200  # a map
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0.provenance.json").write_text("{not json", encoding="utf-8")  # not this array's record
    a = analyze(zarr.open(str(tmp_path / "g.zarr"), mode="r")["0"])
    assert a.summary["objects"] == expected and a.summary["read_as"] == "probability"


@pytest.mark.parametrize("given, words", [
    (lambda m: m.tolist(), None),                                # a nested list: read as an array
    (lambda m: m[0], "volume must be 3D (z, y, x), got shape (32, 32)"),
    (lambda m: m[:0], "volume is empty (shape (0, 32, 32))"),
    (lambda m: m.astype(np.complex64), "volume: holds complex values (complex64)"),
    (lambda m: "mask.npy", "volume: 'mask.npy' is a path; this function takes an array: tomoseg.read_volume"),
    (lambda m: 3, "volume: a int is not an array"),
])
def test_analyze_names_a_wrong_volume_argument(given, words):
    """A7: a list gave AttributeError ('list' object has no attribute 'shape'), a 2D array numpy's AxisError."""
    if words is None:
        assert analyze(given(_mask())).summary["objects"] == 3
        return
    with pytest.raises(TomosegError) as err:
        analyze(given(_mask()))
    assert words in str(err.value)


def test_options_given_as_a_dict_are_refused_naming_the_class():
    """A7: options={"min_voxels": 1} gave AttributeError: 'dict' object has no attribute 'read_as'."""
    with pytest.raises(TomosegError, match=r"options: give a AnalysisOptions, not a dict \(AnalysisOptions\(\*\*opt"):
        analyze(_mask(), options={"min_voxels": 1})


def test_evaluate_and_track_check_their_arrays():
    """A7's leftover: evaluate and track took a path, a 2D image or a list without check (deep tracebacks or
    'images must be 3D' for a list); they now use the same check as analyze and predict."""
    import numpy as np
    import pytest

    import tomoseg
    from tomoseg.errors import TomosegError
    from tomoseg.evaluation import evaluate

    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:5, 4:8, 4:8] = 1
    with pytest.raises(TomosegError, match="pred: 'p.tif' is a path"):
        evaluate("p.tif", mask)
    with pytest.raises(TomosegError, match=r"labels must be 3D \(z, y, x\), got shape \(16, 16\)"):
        evaluate(mask, mask[0])
    assert evaluate(mask.tolist(), mask)["voxel"]["recall"] == 1.0  # a nested list is an array
    with pytest.raises(TomosegError, match="after: holds complex values"):
        tomoseg.track(mask, mask.astype(np.complex64), before_labels=mask, after_labels=mask)
    with pytest.raises(TomosegError, match="before: 'b.tif' is a path"):
        tomoseg.track("b.tif", mask)
