"""Label images read from tomoseg's Zarr and OME-Zarr stores (napari review V4, V10): small ones open as editable
copies in memory (painting works and the store is left as it was); large ones as napari's non-editable multiscale
labels, never as a read-only array that looks editable; a damaged store is one message naming what is missing."""

import shutil

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from test_plugin import balls  # noqa: E402  (also skips the module where Qt cannot start offscreen)

VS = (29.33, 29.33, 29.33)
SHAPE = (20, 150, 150)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """``tomoseg analyze`` of a mask: its label image (``labels.zarr``) and its OME-Zarr (``result.ome.zarr``)."""
    from tomoseg import write_volume
    from tomoseg.cli import main

    d = tmp_path_factory.mktemp("stores")
    write_volume(d / "mask.tif", balls(SHAPE, [(10, 40, 40), (10, 100, 100), (10, 40, 110)], 5), voxel_size=VS)
    assert main(["analyze", str(d / "mask.tif"), "--csv", str(d / "objects.csv"), "--labels",
                 str(d / "labels.zarr"), "--ome-zarr", str(d / "result.ome.zarr"), "-q"]) == 0
    return d


def _open(viewer, path):
    from tomoseg.napari_plugin.reader import get_reader

    return [getattr(viewer, f"add_{kind}")(data, **kw) for data, kw, kind in get_reader(str(path))(str(path))]


def test_small_label_images_open_as_editable_copies_and_the_store_is_untouched(stores):
    """V4: painting on ``objects``, ``mask`` (result.ome.zarr) and ``labels`` (labels.zarr) raised "store was opened
    in read-only mode"; now it paints in memory, and the files keep their values."""
    from napari.components import ViewerModel

    from tomoseg import read_volume

    viewer = ViewerModel()
    _open(viewer, stores / "result.ome.zarr")
    _open(viewer, stores / "labels.zarr")
    assert [l.name for l in viewer.layers] == ["result", "mask", "objects", "labels"]
    for name in ("mask", "objects", "labels"):
        layer = viewer.layers[name]
        assert layer.editable and not layer.multiscale and isinstance(layer.data, np.ndarray), name
        assert tuple(layer.scale) == VS and layer.data.shape == SHAPE
        layer.paint((10, 75, 75), 7, refresh=False)  # the call napari's brush makes
        assert layer.data[10, 75, 75] == 7, name
    before = read_volume(stores / "labels.zarr")
    assert before[10, 75, 75] == 0 and read_volume(stores / "result.ome.zarr/labels/objects")[10, 75, 75] == 0
    assert sorted(np.unique(before).tolist()) == [0, 1, 2, 3]


def test_large_label_images_open_as_non_editable_pyramids(stores, monkeypatch):
    """V4: above the reader's in-memory limit a label image stays lazy, as napari's multiscale labels (napari does
    not paint on them: ``editable`` False), also where the store has a single level."""
    from napari.components import ViewerModel

    from tomoseg.napari_plugin import reader

    from tomoseg import write_volume

    one = stores / "one_level.zarr"  # a label image of one level (a single chunk: no pyramid)
    if not one.exists():
        write_volume(one, balls((16, 64, 64), [(8, 32, 32)], 4).astype(np.uint32), voxel_size=VS)
    monkeypatch.setattr(reader, "LAZY_VOXELS", 1000)  # the limit, not the data, under test: these are above it
    viewer = ViewerModel()
    _open(viewer, stores / "result.ome.zarr")
    _open(viewer, stores / "labels.zarr")
    _open(viewer, one)
    for name in ("mask", "objects", "labels", "one_level"):
        layer = viewer.layers[name]
        assert type(layer).__name__ == "Labels" and layer.multiscale and not layer.editable, name
        assert tuple(layer.scale) == VS and layer.data[0].shape == ((16, 64, 64) if name == "one_level" else SHAPE)


def test_a_damaged_ome_zarr_is_one_message_naming_what_is_missing(stores, tmp_path):
    """V10: a store without its level 1, and one without labels/objects, gave a bare ``KeyError '1'`` and
    ``KeyError 'labels/objects'``; now a TomosegError names the store and what is missing."""
    from tomoseg.errors import TomosegError
    from tomoseg.napari_plugin.reader import get_reader

    no_level = tmp_path / "no_level.ome.zarr"
    shutil.copytree(stores / "result.ome.zarr", no_level)
    shutil.rmtree(no_level / "1")
    with pytest.raises(TomosegError) as e:
        get_reader(str(no_level))(str(no_level))
    assert str(e.value) == (f"{no_level}: the image lacks resolution level 1 (its metadata lists 2: 0, 1); the store "
                            "is incomplete (an interrupted copy or write?): copy it again, or write it again with "
                            "tomoseg (analyze --ome-zarr, segment to a .ome.zarr)")
    no_labels = tmp_path / "no_labels.ome.zarr"
    shutil.copytree(stores / "result.ome.zarr", no_labels)
    shutil.rmtree(no_labels / "labels" / "objects")
    with pytest.raises(TomosegError) as e:
        get_reader(str(no_labels))(str(no_labels))
    assert str(e.value).startswith(f"{no_labels}: its metadata lists the label image 'objects' (labels/objects/), "
                                   "which is missing; the store is incomplete")
