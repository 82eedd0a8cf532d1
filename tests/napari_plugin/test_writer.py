"""napari's File -> Save through tomoseg's writers: the voxel size kept (napari's own writers drop it), labels as
unsigned integers, an image with its labels as one OME-Zarr, and another program's file never replaced."""

from pathlib import Path

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")
pytest.importorskip("napari")

from tomoseg.io import open_volume  # noqa: E402

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
