"""An OME-Zarr image's translation (where its voxel (0, 0, 0) lies: a region cut from a larger scan) is its
origin, as an NRRD's space origin is: the objects' ``centroid_*_nm`` columns start there, and segment's Zarr
outputs keep it (with their pyramid's levels moved to their block centres). It was ignored: positions in nm
counted from the cut's corner."""

import csv

import numpy as np
import pytest
import zarr

from tomoseg.cli import main
from tomoseg.io import open_volume

SCALE_UM = [0.06, 0.03, 0.03]          # z, y, x in micrometer
TRANSLATION_UM = [1.5, -2.0, 12.25]    # level 0's
OUTER_SCALE = [2.0, 1.0, 1.0]          # the multiscale's own transform, applied after the dataset's
OUTER_TRANSLATION_UM = [0.5, 0.0, 0.0]


def _store(path, data, outer=False):
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=data, chunks=(8, 16, 16))
    ms = {"axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
          "datasets": [{"path": "0", "coordinateTransformations": [
              {"type": "scale", "scale": SCALE_UM}, {"type": "translation", "translation": TRANSLATION_UM}]}]}
    if outer:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": OUTER_SCALE},
                                           {"type": "translation", "translation": OUTER_TRANSLATION_UM}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def _balls(shape, centres, r=2.6):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    out = np.zeros(shape, np.uint8)
    for c in centres:
        out[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r] = 1
    return out


@pytest.mark.parametrize("outer", [False, True], ids=["dataset", "dataset-and-multiscale"])
def test_the_translation_is_the_origin_of_the_nm_positions(tmp_path, outer):
    mask = _balls((24, 40, 40), [(8, 10, 12), (15, 28, 25)])
    path = _store(tmp_path / "cut.ome.zarr", mask, outer)
    if outer:
        scale = [s * o * 1000 for s, o in zip(SCALE_UM, OUTER_SCALE)]
        origin = [(t * o + u) * 1000 for t, o, u in zip(TRANSLATION_UM, OUTER_SCALE, OUTER_TRANSLATION_UM)]
    else:
        scale, origin = [s * 1000 for s in SCALE_UM], [t * 1000 for t in TRANSLATION_UM]
    with open_volume(path) as vol:
        assert np.allclose(vol.voxel_size, scale) and np.allclose(vol.origin_nm, origin)
    assert main(["analyze", str(path), "--out", str(tmp_path / "res"), "-q"]) == 0
    with open(tmp_path / "res" / "objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        for axis, a in enumerate("zyx"):
            assert float(row[f"centroid_{a}_nm"]) == pytest.approx(
                float(row[f"centroid_{a}"]) * scale[axis] + origin[axis], abs=0.01)


def test_segment_keeps_the_translation_in_its_zarr_outputs(tmp_path):
    import tomoseg

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    path = _store(tmp_path / "cut.ome.zarr", image)
    out = tmp_path / "prob.ome.zarr"
    assert main(["segment", str(path), str(out), "--tile-size", "32", "-q"]) == 0
    origin = [t * 1000 for t in TRANSLATION_UM]
    with open_volume(out) as vol:
        assert np.allclose(vol.origin_nm, origin) and np.allclose(vol.voxel_size, [s * 1000 for s in SCALE_UM])
    datasets = zarr.open_group(str(out), mode="r").attrs["ome"]["multiscales"][0]["datasets"]
    assert len(datasets) > 1
    level1 = {t["type"]: t for t in datasets[1]["coordinateTransformations"]}
    # a level-1 voxel is the mean of a 2x2x2 block: its centre lies half a level-0 voxel further
    assert np.allclose(level1["translation"]["translation"], [o + s * 500 for o, s in zip(origin, SCALE_UM)])


def test_segment_labels_lie_where_the_map_lies(tmp_path):
    """segment --labels: the label image of the map just written keeps the map's (the input's) translation; it
    was written at 0 while the map beside it kept it."""
    import tomoseg

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    path = _store(tmp_path / "cut.ome.zarr", image)
    out, labels = tmp_path / "prob.ome.zarr", tmp_path / "labels.zarr"
    assert main(["segment", str(path), str(out), "--labels", str(labels), "--tile-size", "32", "-q"]) == 0
    origin = [t * 1000 for t in TRANSLATION_UM]
    with open_volume(labels) as vol:
        assert np.allclose(vol.origin_nm, origin) and np.allclose(vol.voxel_size, [s * 1000 for s in SCALE_UM])
        assert vol.read().max() > 0
    level0 = zarr.open_group(str(labels), mode="r").attrs["ome"]["multiscales"][0]["datasets"][0]
    assert np.allclose({t["type"]: t for t in level0["coordinateTransformations"]}["translation"]["translation"],
                       origin)


def test_a_box_of_a_volume_has_the_origin_of_its_first_voxel(tmp_path):
    """io.volume.crop (evaluate's --roi box) gave the box the whole volume's origin: a position measured in the box
    from it was off by the box's start. Its origin is now the box's voxel (0, 0, 0): an OME-Zarr translation and an
    NRRD space origin (moved along the NRRD's direction vectors, rotated ones too)."""
    import nrrd

    from tomoseg.io.volume import crop, origin_of

    data = np.zeros((12, 20, 24), np.uint8)
    box = (slice(3, 9), slice(5, 20), slice(0, 10))
    with open_volume(_store(tmp_path / "t.ome.zarr", data)) as vol:
        whole = np.array(origin_of(vol))
        view = crop(vol, box)
        expected = whole + np.array([3, 5, 0]) * np.array(vol.voxel_size)
        np.testing.assert_allclose(origin_of(view), expected)
        assert view.shape == (6, 15, 10)
    rotated = np.array([[0.0, 0.03, 0.0], [-0.03, 0.0, 0.0], [0.0, 0.0, 0.06]])  # x and y axes turned by 90°
    for name, dirs in (("plain", np.diag([0.03, 0.03, 0.06])), ("rotated", rotated)):
        path = tmp_path / f"{name}.nrrd"
        nrrd.write(str(path), np.ascontiguousarray(data.transpose(2, 1, 0)), {
            "space dimension": 3, "space units": ["um"] * 3, "space directions": dirs,
            "space origin": np.array([12.25, -2.0, 1.5]), "kinds": ["domain"] * 3, "encoding": "raw"},
            index_order="F")
        with open_volume(path) as vol:
            view = crop(vol, box)
            moved = np.array([12.25, -2.0, 1.5]) + dirs.T @ np.array([0, 5, 3])  # x, y, z steps of the box's start
            np.testing.assert_allclose(view.orientation["space origin"], moved)
            if name == "plain":
                np.testing.assert_allclose(origin_of(view), moved[::-1] * 1000)


def test_segment_keeps_an_nrrd_inputs_space_origin_in_its_zarr_outputs(tmp_path):
    """An NRRD input's space origin (axis-aligned) is its origin as a translation is: segment's Zarr map kept the
    OME-Zarr input's translation but dropped the NRRD's."""
    import nrrd

    import tomoseg

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    path = tmp_path / "cut.nrrd"
    nrrd.write(str(path), np.ascontiguousarray(image.transpose(2, 1, 0)), {
        "space dimension": 3, "space units": ["um"] * 3, "space directions": np.diag(SCALE_UM[::-1]),
        "space origin": np.array(TRANSLATION_UM[::-1]), "kinds": ["domain"] * 3, "encoding": "raw"},
        index_order="F")
    out = tmp_path / "prob.ome.zarr"
    assert main(["segment", str(path), str(out), "--tile-size", "32", "-q"]) == 0
    with open_volume(out) as vol:
        assert np.allclose(vol.origin_nm, [t * 1000 for t in TRANSLATION_UM])


def test_segment_labels_keep_the_inputs_origin_where_the_maps_format_holds_none(tmp_path):
    """segment --labels with a map in a format that holds no origin (TIFF, HDF5): the label image took its place
    from the map, so a Zarr label image lost the input's translation (adversarial review, LO1)."""
    import tomoseg

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    path = _store(tmp_path / "cut.ome.zarr", image)
    labels = tmp_path / "labels.zarr"
    assert main(["segment", str(path), str(tmp_path / "prob.tif"), "--labels", str(labels), "--tile-size", "32",
                 "-q"]) == 0
    with open_volume(labels) as vol:
        assert vol.origin_nm is not None and np.allclose(vol.origin_nm, [t * 1000 for t in TRANSLATION_UM])
        assert vol.read().max() > 0


def test_segment_labels_keep_a_rotated_nrrd_inputs_place_with_a_zarr_map(tmp_path):
    """segment in.nrrd map.zarr --labels labels.nrrd: a Zarr map holds no rotation, and the label NRRD, placed from
    the map, had neither the input's space directions nor its origin (viewers that place images by them, 3D
    Slicer, drew it turned away from the scan); the map's own NRRD outputs keep them (LO1)."""
    import nrrd

    import tomoseg

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    dirs = np.array([[c * 0.03, s * 0.03, 0.0], [-s * 0.03, c * 0.03, 0.0], [0.0, 0.0, 0.06]])  # rows: x, y, z
    path = tmp_path / "scan.nrrd"
    nrrd.write(str(path), np.ascontiguousarray(image.transpose(2, 1, 0)), {
        "space dimension": 3, "space units": ["um"] * 3, "space directions": dirs,
        "space origin": np.array([12.25, -2.0, 1.5]), "kinds": ["domain"] * 3, "encoding": "raw"}, index_order="F")
    labels = tmp_path / "labels.nrrd"
    assert main(["segment", str(path), str(tmp_path / "prob.zarr"), "--labels", str(labels), "--tile-size", "32",
                 "-q"]) == 0
    header = nrrd.read_header(str(labels))
    factor = {"um": 1.0, "nm": 1e-3}[header["space units"][0]]
    np.testing.assert_allclose(np.asarray(header["space directions"], float) * factor, dirs, atol=1e-9)
    np.testing.assert_allclose(np.asarray(header["space origin"], float) * factor, [12.25, -2.0, 1.5], atol=1e-9)


def _pyramid(path, data, translation=True):
    """An OME-Zarr 0.4 (zarr v2) image of two levels whose translations are their block centres, the multiscale
    scaled and moved too, and a ``labels/objects`` image of its own translation (of none: ``translation=False``)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=2)

    def image(group, levels, at):
        for i, level in enumerate(levels):
            group.create_array(str(i), data=level, chunks=level.shape)
        f = [2 ** i for i in range(len(levels))]
        return [{"version": "0.4",
                 "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
                 "datasets": [{"path": str(i), "coordinateTransformations": [
                     {"type": "scale", "scale": [s * f[i] for s in SCALE_UM]}]
                     + ([{"type": "translation", "translation": [t + (f[i] - 1) * s / 2 for t, s in
                                                                  zip(at, SCALE_UM)]}] if translation else [])}
                              for i in range(len(levels))],
                 **({"coordinateTransformations": [{"type": "scale", "scale": OUTER_SCALE},
                                                   {"type": "translation", "translation": OUTER_TRANSLATION_UM}]}
                    if translation else {})}]

    g.attrs["multiscales"] = image(g, [data, data[::2, ::2, ::2]], TRANSLATION_UM)
    labels = g.create_group("labels")
    labels.attrs["labels"] = ["objects"]
    objects = labels.create_group("objects")
    objects.attrs["multiscales"] = image(objects, [(data > 0).astype(np.uint8)], [0.25, 0.5, 0.75])
    return path


@pytest.mark.parametrize("translation", [True, False], ids=["translated", "none"])
@pytest.mark.parametrize("level", ["0", "1", "labels/objects/0"])
def test_a_level_named_by_its_path_lies_where_store_colon_level_puts_it(tmp_path, level, translation):
    """Brief H7 item 2: ``image.ome.zarr/1`` (napari's and shell completion's spelling) had the voxel size of
    ``image.ome.zarr:1`` but no origin: its positions in nm counted from voxel (0, 0, 0), and evaluate's placement
    check compared it with nothing (an image without a translation lies at 0)."""
    data = np.arange(8 * 12 * 16, dtype=np.uint16).reshape(8, 12, 16)
    path = _pyramid(tmp_path / "p.ome.zarr", data, translation)
    with open_volume(f"{path}:{level}") as by_colon, open_volume(path / level) as by_path:
        assert by_path.voxel_size == pytest.approx(by_colon.voxel_size)
        if translation:
            assert by_colon.origin_nm is not None and not by_colon.ngff_at_zero
            assert by_path.origin_nm == pytest.approx(by_colon.origin_nm)  # was None
        else:
            assert by_colon.origin_nm is None and by_colon.ngff_at_zero
            assert by_path.origin_nm is None and by_path.ngff_at_zero  # was not at 0: placed nowhere
        assert np.array_equal(by_path.read(), by_colon.read())
    if translation and level == "1":  # the level's block centre, scaled and moved by the multiscale: (z, y, x) nm
        assert by_path.origin_nm == pytest.approx([((t + s / 2) * o + u) * 1000 for t, s, o, u in
                                                   zip(TRANSLATION_UM, SCALE_UM, OUTER_SCALE, OUTER_TRANSLATION_UM)])


def test_a_level_named_by_its_path_warns_of_a_translation_it_cannot_use(tmp_path):
    from tomoseg.errors import TomosegWarning

    data = np.zeros((4, 6, 8), np.uint8)
    path = _store(tmp_path / "t.ome.zarr", data)
    g = zarr.open_group(str(path), mode="a")
    ome = g.attrs["ome"]
    ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]["translation"] = [0, 0]
    g.attrs["ome"] = ome
    for spec in (f"{path}:0", path / "0"):
        with pytest.warns(TomosegWarning, match=r"translation of level '0' \(coordinateTransformations\) is \[0, 0\], "
                                                r"2 values") as caught, open_volume(spec) as v:
            assert v.voxel_size == pytest.approx((60.0, 30.0, 30.0)) and v.origin_nm is None
            assert not v.ngff_at_zero
        assert len(caught) == 1, [str(w.message) for w in caught]
