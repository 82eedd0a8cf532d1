"""The napari reader places each layer where its file places its voxel (0, 0, 0) (``translate``, nm) at its voxel
size (``scale``), so that a label image and its scan cut at other origins overlay (brief H2, item 3): two NRRDs of
different space origins, an OME-Zarr with a translation and its ``labels/``. Before, every layer had its scale but
no translation: a cut drawn at the corner of the whole scan. Real LayerData tuples; no viewer."""

import numpy as np
import pytest
import zarr

from tomoseg.io.ome_zarr import write_ome_zarr
from tomoseg.napari_plugin import reader

VOXEL = (60.0, 30.0, 30.0)  # z, y, x nm


def _nrrd(path, data, origin_xyz, kind="uint16"):
    z, y, x = VOXEL
    header = (f"NRRD0004\ntype: {kind}\ndimension: 3\nsizes: {data.shape[2]} {data.shape[1]} {data.shape[0]}\n"
              f"encoding: raw\nendian: little\nspace dimension: 3\n"
              f"space directions: ({x},0,0) (0,{y},0) (0,0,{z})\nspace units: \"nm\" \"nm\" \"nm\"\n"
              f"space origin: ({origin_xyz[0]},{origin_xyz[1]},{origin_xyz[2]})\n\n")
    path.write_bytes(header.encode() + data.astype("<" + np.dtype(kind).str[1:]).tobytes())
    return path


def _world(kwargs, index):
    """Where a layer puts the centre of voxel ``index`` (z, y, x), as napari maps data to world: scale × index +
    translate."""
    return np.asarray(kwargs["scale"]) * np.asarray(index) + np.asarray(kwargs.get("translate", (0.0, 0.0, 0.0)))


def test_two_nrrds_of_different_origins_overlay(tmp_path):
    scan = np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10)
    labels = np.zeros((3, 4, 5), np.uint32)
    labels[1, 2, 3] = 7
    # the label image is a box cut from the scan at voxel (2, 3, 4): its origin is the scan's + (4, 3, 2) voxels
    _nrrd(tmp_path / "scan.nrrd", scan, (1000.0, 2000.0, 3000.0))
    _nrrd(tmp_path / "cut_labels.nrrd", labels, (1000.0 + 4 * 30, 2000.0 + 3 * 30, 3000.0 + 2 * 60), "uint32")
    [(_, scan_kw, scan_type)] = reader.read(str(tmp_path / "scan.nrrd"))
    [(data, lab_kw, lab_type)] = reader.read(str(tmp_path / "cut_labels.nrrd"))
    assert (scan_type, lab_type) == ("image", "labels")
    assert scan_kw["scale"] == pytest.approx(VOXEL) and lab_kw["scale"] == pytest.approx(VOXEL)
    assert scan_kw["translate"] == pytest.approx((3000.0, 2000.0, 1000.0))  # z, y, x; was none: at 0
    label_voxel = tuple(int(i) for i in np.argwhere(np.asarray(data) == 7)[0])
    assert _world(lab_kw, label_voxel) == pytest.approx(_world(scan_kw, (2 + 1, 3 + 2, 4 + 3)))


def test_napari_layers_made_from_them_overlay(tmp_path):
    """The same, through napari's own layers (no viewer): the label voxel and its scan voxel at one world point."""
    Layer = pytest.importorskip("napari.layers").Layer

    _nrrd(tmp_path / "scan.nrrd", np.zeros((6, 8, 10), np.uint16), (1000.0, 2000.0, 3000.0))
    cut = (1000.0 + 4 * 30, 2000.0 + 3 * 30, 3000.0 + 2 * 60)
    _nrrd(tmp_path / "cut_labels.nrrd", np.ones((3, 4, 5), np.uint32), cut, "uint32")
    scan = Layer.create(*reader.read(str(tmp_path / "scan.nrrd"))[0])
    labels = Layer.create(*reader.read(str(tmp_path / "cut_labels.nrrd"))[0])
    assert np.allclose(labels.data_to_world((1, 2, 3)), scan.data_to_world((3, 5, 7)))


def test_an_ome_zarr_translation_and_its_labels(tmp_path):
    image = np.arange(8 * 16 * 16, dtype=np.uint8).reshape(8, 16, 16)
    mask = (image > 100).astype(np.uint8)
    origin = (1500.0, -2000.0, 12250.0)
    path = write_ome_zarr(tmp_path / "cut.ome.zarr", image, labels={"mask": mask}, voxel_size=VOXEL, origin=origin)
    layers = reader.read(str(path))
    assert [t for _, _, t in layers] == ["image", "labels"]
    for _, kw, _ in layers:
        assert kw["scale"] == pytest.approx(VOXEL)
        assert kw["translate"] == pytest.approx(origin)


def test_without_an_origin_or_a_voxel_size_no_translation(tmp_path):
    g = zarr.open_group(str(tmp_path / "plain.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("0", data=np.zeros((4, 8, 8), np.uint8), chunks=(4, 8, 8))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space"} for n in "zyx"],  # no unit: no voxel size
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 1.0]}, {"type": "translation", "translation": [5.0, 0.0, 0.0]}]}]}]}
    [(_, kw, _)] = reader.read(str(tmp_path / "plain.ome.zarr"))
    assert kw["scale"] == (1.0, 1.0, 1.0) and "translate" not in kw
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    [(_, kw, _)] = reader.read(str(tmp_path / "v.npy"))
    assert "translate" not in kw


def test_the_objects_table_of_a_translated_scan_lies_on_its_objects(tmp_path):
    """``analyze`` of an OME-Zarr with a translation writes centroid_*_nm from that origin; its points layer lies
    where the table says, on the objects of the label layer read from the same store."""
    from tomoseg.cli import main

    mask = np.zeros((10, 16, 16), np.uint8)
    mask[2:5, 3:7, 9:13] = 1
    mask[5:8, 10:14, 2:6] = 1  # two objects: the table's voxel size is a slope, its origin the intercept
    origin = (600.0, -900.0, 3000.0)
    path = write_ome_zarr(tmp_path / "m.ome.zarr", mask, voxel_size=VOXEL, origin=origin)
    assert main(["analyze", str(path), "--csv", str(tmp_path / "o.csv"), "--read-as", "mask", "-q"]) == 0
    [(points, kw, kind)] = reader.get_reader(str(tmp_path / "o.csv"))(str(tmp_path / "o.csv"))
    assert kind == "points" and kw["translate"] == pytest.approx(origin)
    table = reader._read_objects_table(tmp_path / "o.csv")
    first = int(np.argmin(table["centroid_z"]))
    nm = [table[f"centroid_{a}_nm"][first] for a in "zyx"]
    assert _world(kw, points[first]) == pytest.approx(nm, abs=1e-3)  # where the table says
    [(_, image_kw, _)] = reader.read(str(path))
    assert _world(image_kw, (3.0, 4.5, 10.5)) == pytest.approx(nm, abs=1e-3)  # the box's centre in the image layer
