"""napari's File -> Save through tomoseg's writers: the voxel size kept (napari's own writers drop it), labels as
unsigned integers, an image with its labels as one OME-Zarr, and another program's file never replaced."""

from pathlib import Path

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")
pytest.importorskip("napari")

from tomoseg.io import open_volume  # noqa: E402
from tomoseg.io.volume import origin_of  # noqa: E402

MANIFEST = Path(__file__).parents[2] / "src" / "tomoseg" / "napari_plugin" / "napari.yaml"


@pytest.fixture(scope="module")
def plugin():
    """Register the manifest of this checkout (an editable install elsewhere may provide another)."""
    pm = npe2.PluginManager.instance()
    if "tomoseg" in pm:
        pm.unregister("tomoseg")
    pm.register(npe2.PluginManifest.from_file(MANIFEST))


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 255, (16, 40, 48)).astype(np.uint8), name="scan", scale=(0.05, 0.03, 0.03),
                     units=("µm", "µm", "µm"))
    labels = np.zeros((16, 40, 48), np.int32)  # napari's labels are signed and wide
    labels[4:8, 10:20, 10:20] = 3
    labels[10:12, 30:34, 5:9] = 300
    viewer.add_labels(labels, name="objects (edited)", scale=(0.05, 0.03, 0.03), units=("µm", "µm", "µm"))
    return viewer


def test_a_labels_layer_is_saved_with_its_voxel_size(plugin, viewer, tmp_path):
    layer = viewer.layers["objects (edited)"]
    viewer.layers.selection = {layer}
    for name in ("objects.tif", "objects.zarr", "objects.nrrd"):
        assert viewer.layers.save(str(tmp_path / name), selected=True, plugin="tomoseg") == [str(tmp_path / name)]
        with open_volume(str(tmp_path / name)) as f:
            assert f.voxel_size == (50.0, 30.0, 30.0), name
            assert f.dtype == np.uint16 and np.array_equal(f[:, :, :], layer.data), name


def test_an_image_and_its_labels_are_saved_as_one_ome_zarr(plugin, viewer, tmp_path):
    import zarr

    path = str(tmp_path / "result.ome.zarr")
    viewer.layers.selection = set(viewer.layers)
    assert viewer.layers.save(path, selected=True, plugin="tomoseg") == [path]
    with open_volume(path) as f:
        assert f.voxel_size == (50.0, 30.0, 30.0) and np.array_equal(f[:, :, :], viewer.layers["scan"].data)
    labels = zarr.open_group(path + "/labels", mode="r")
    assert list(labels.keys()) == ["objects__edited_"]
    np.testing.assert_array_equal(labels["objects__edited_/0"][:], viewer.layers["objects (edited)"].data)
    # saved again (napari's dialog asked): tomoseg's own store is replaced
    viewer.layers["scan"].data = viewer.layers["scan"].data // 2
    viewer.layers.save(path, selected=True, plugin="tomoseg")
    with open_volume(path) as f:
        assert np.array_equal(f[:, :, :], viewer.layers["scan"].data)


def test_another_programs_file_is_never_replaced(plugin, viewer, tmp_path):
    from tomoseg.errors import TomosegError

    foreign = tmp_path / "scan.tif"
    foreign.write_bytes(b"not tomoseg's")
    viewer.layers.selection = {viewer.layers["scan"]}
    with pytest.raises(TomosegError, match="did not write"):
        viewer.layers.save(str(foreign), selected=True, plugin="tomoseg")
    assert foreign.read_bytes() == b"not tomoseg's"


def test_layers_without_a_physical_scale_record_no_voxel_size(plugin, tmp_path):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_labels(np.ones((4, 8, 8), np.int64), name="m")
    viewer.layers.selection = set(viewer.layers)
    viewer.layers.save(str(tmp_path / "m.zarr"), selected=True, plugin="tomoseg")
    with open_volume(str(tmp_path / "m.zarr")) as f:
        assert f.voxel_size is None and f.dtype == np.uint8


def test_the_segment_widgets_layers_are_saved_with_their_runs_record(plugin, qtbot, tmp_path):
    """The Segment widget's probability and mask layers, saved through napari's File -> Save, get the record
    `tomoseg segment` writes beside its map (model, threshold, normalization, tiling, sample mask, notes), so that
    `tomoseg analyze` and `report` say what made the map: before, a map made in napari had no record at all. A
    layer painted since is saved without one (the record would not describe it)."""
    from napari.components import ViewerModel
    from test_widget_review import _scan, _segment_widget, _wait

    from tomoseg.io.segment_record import segmentation_of

    viewer = ViewerModel()
    viewer.add_image(_scan(), name="scan", scale=(30.0, 30.0, 30.0), units=("nm", "nm", "nm"))
    widget = _segment_widget(qtbot, viewer)
    _wait(qtbot, widget, widget.run())
    for layer_name, file_name, written in (("scan probability", "prob.zarr", "probability"),
                                           ("scan mask", "mask.tif", "mask")):
        layer = viewer.layers[layer_name]
        viewer.layers.selection = {layer}
        path = str(tmp_path / file_name)
        assert viewer.layers.save(path, selected=True, plugin="tomoseg") == [path]
        seg = segmentation_of(path)
        assert seg is not None, file_name
        assert seg["threshold"] == widget.threshold.value() and len(seg["model"]["sha256"]) == 64
        assert seg["normalization"]["mean"] > 0 and seg["tiling"]["tile_size"] == 32 and seg["tiling"]["halo"] == 8
        assert seg["input"] == "layer 'scan'" and seg["sample_mask"]["method"].startswith("auto")
        from tomoseg.io.output_guard import tomoseg_provenance

        record = tomoseg_provenance(path)
        assert record["via"] == "napari Segment widget" and record["outputs"][written] == path
    mask = viewer.layers["scan mask"]
    mask.data[0, 0, 0] = 1 - mask.data[0, 0, 0]  # painted
    viewer.layers.selection = {mask}
    painted = str(tmp_path / "painted.tif")
    viewer.layers.save(painted, selected=True, plugin="tomoseg")
    assert segmentation_of(painted) is None


@pytest.mark.parametrize("source", ["cut.ome.zarr", "cut.nrrd"])
def test_a_layer_read_with_an_origin_is_saved_with_it(plugin, tmp_path, source):
    """The reader gives a file's origin as the layer's translate (brief H2); saving the layer kept the scale and
    dropped the translation, so the saved label image no longer overlaid its scan. Zarr, OME-Zarr and NRRD keep it."""
    from napari.components import ViewerModel

    from tomoseg import create_volume
    from tomoseg.napari_plugin import reader

    data = np.zeros((6, 8, 10), np.uint8)
    data[2:4, 3:5, 4:7] = 1
    origin = (120.0, -60.0, 3000.0)
    with create_volume(str(tmp_path / source), data.shape, data.dtype, voxel_size=(60.0, 30.0, 30.0),
                       origin=origin) as w:
        w[:, :, :] = data
    viewer = ViewerModel()
    for layer_data in reader.read(str(tmp_path / source)):
        viewer._add_layer_from_data(*layer_data)
    viewer.layers.selection = {viewer.layers[0]}
    for name in ("saved.zarr", "saved.nrrd"):
        assert viewer.layers.save(str(tmp_path / name), selected=True, plugin="tomoseg") == [str(tmp_path / name)]
        with open_volume(str(tmp_path / name)) as f:
            assert f.voxel_size == pytest.approx((60.0, 30.0, 30.0)), name
            assert origin_of(f) == pytest.approx(origin), name  # was None: at 0
            assert np.array_equal(f[:, :, :], data), name
    assert viewer.layers[0]._type_string == "image"
    path = str(tmp_path / "saved.ome.zarr")  # the multi-layer writer (an image and any labels)
    assert viewer.layers.save(path, selected=True, plugin="tomoseg") == [path]
    with open_volume(path) as f:
        assert origin_of(f) == pytest.approx(origin)
