"""Layers of tomoseg's reader in one physical space: nm scales with nm units, CSV centroids on their objects,
masks as labels, each NGFF label image at its own scale (review V2, V4, V7, V11). No Qt: napari's ViewerModel."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from tomoseg.cli import main  # noqa: E402
from tomoseg.io import write_volume  # noqa: E402
from tomoseg.napari_plugin.reader import get_reader  # noqa: E402
from tomoseg.table import read_csv  # noqa: E402

VS = (60.0, 30.0, 30.0)


def _viewer(*paths):
    v = napari.components.ViewerModel()
    for p in paths:
        for data, kw, kind in get_reader(str(p))(str(p)):
            v._add_layer_from_data(data, kw, kind)
    return v


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    d = tmp_path_factory.mktemp("phys")
    m = np.zeros((12, 24, 24), np.uint8)
    m[2:5, 3:7, 4:9] = 1
    m[6:10, 12:20, 10:13] = 1
    m[4:8, 15:18, 17:22] = 1
    write_volume(str(d / "m.tif"), m * 255, voxel_size=VS)
    assert main(["analyze", str(d / "m.tif"), "--csv", str(d / "objects.csv"), "--ome-zarr",
                 str(d / "result.ome.zarr"), "--min-voxels", "1"]) == 0
    return d


def test_csv_points_sit_on_their_objects_in_nm(analysed):
    v = _viewer(analysed / "result.ome.zarr", analysed / "objects.csv")
    pts, = [layer for layer in v.layers if type(layer).__name__ == "Points"]  # the CSV
    labels = v.layers["objects"]  # the OME-Zarr's labels/objects
    t = read_csv(analysed / "objects.csv")
    assert len(t["label"]) == 3
    assert tuple(pts.scale) == VS == tuple(labels.scale)
    for i, lab in enumerate(t["label"]):
        world = pts.data_to_world(pts.data[i])
        assert np.allclose(world, [t[f"centroid_{a}_nm"][i] for a in "zyx"], rtol=1e-6)
        voxel = np.round(labels.world_to_data(world)).astype(int)
        assert np.asarray(labels.data)[tuple(voxel)] == lab


def test_csv_without_nm_columns_stays_in_voxels_and_says_so(tmp_path):
    assert main(["analyze", str(_mask(tmp_path)), "--csv", str(tmp_path / "o.csv"), "--min-voxels", "1"]) == 0
    (data, kw, kind), = get_reader(str(tmp_path / "o.csv"))(str(tmp_path / "o.csv"))
    assert kind == "points" and kw["scale"] == (1.0, 1.0, 1.0) and "units" not in kw
    assert kw["name"] == "o (voxels: no nm columns)"


def _mask(d):
    m = np.zeros((8, 16, 16), np.uint8)
    m[2:5, 3:7, 4:9] = 1
    write_volume(str(d / "plain.npy"), m)
    return d / "plain.npy"


def test_layers_carry_nanometre_units(analysed):
    v = _viewer(analysed / "result.ome.zarr", analysed / "m.tif", analysed / "objects.csv")
    assert len(v.layers) == 5
    for layer in v.layers:
        assert [str(u) for u in layer.units] == ["nanometer"] * 3, layer.name
    assert [str(u) for u in v.layers.units] == ["nanometer"] * 3  # the scale bar's unit
    from tomoseg.napari_plugin.sample import phantom

    for _, kw, _ in phantom(shape=(24, 96, 96)):
        assert kw["units"] == ("nm", "nm", "nm")


def test_an_ngff_mask_opens_as_labels(tmp_path):
    m = np.zeros((8, 16, 16), np.uint8)
    m[2:5, 3:7, 4:9] = 1
    write_volume(str(tmp_path / "mask.ome.zarr"), m, voxel_size=VS)  # as segment --mask writes it
    (_, kw, kind), = get_reader(str(tmp_path / "mask.ome.zarr"))(str(tmp_path / "mask.ome.zarr"))
    assert kind == "labels"


def test_each_ngff_label_image_at_its_own_scale(tmp_path):
    import zarr

    from tomoseg.io.ome_zarr import validate_ome_zarr, write_ome_zarr

    p = write_ome_zarr(tmp_path / "x.ome.zarr", np.zeros((16, 32, 32), np.uint8),
                       labels={"fine": np.zeros((16, 32, 32), np.uint8)}, voxel_size=(10.0, 10.0, 10.0))
    root = zarr.open_group(str(p), mode="r+")
    g = root["labels"].create_group("coarse")  # another tool's label image at half the resolution
    g.create_array("0", shape=(8, 16, 16), dtype=np.uint8, fill_value=0, dimension_names=["z", "y", "x"])
    attrs = dict(root["labels/fine"].attrs)
    ms = attrs["ome"]["multiscales"][0]
    ms["datasets"] = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [20.0, 20.0, 20.0]},
                                                                  {"type": "translation", "translation": [5.0] * 3}]}]
    g.attrs.update(attrs)
    root["labels"].attrs.update({"ome": {"version": "0.5", "labels": ["fine", "coarse"]}})
    validate_ome_zarr(p)
    v = _viewer(p)
    assert tuple(v.layers["fine"].scale) == (10.0, 10.0, 10.0)
    assert tuple(v.layers["coarse"].scale) == (20.0, 20.0, 20.0)
    assert np.allclose(v.layers["coarse"].extent.world[1] - v.layers["coarse"].extent.world[0], [140, 300, 300])
