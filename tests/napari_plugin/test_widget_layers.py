"""The dock widgets against the napari review of 3d8085b (V3, V5, V6, V7, V11): a user's edited layer is never
removed, renamed and removed layers, a table refilled while a row is selected, the source Analyze offers first,
what a 2D image is told. Real widgets on napari's ViewerModel, offscreen Qt."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin import balls  # noqa: E402  (also skips the module where Qt cannot start offscreen)
from test_widget_review import _analyze, _wait  # noqa: E402

SHAPE = (16, 40, 40)
CENTRES = [(8, 10, 10), (8, 10, 30), (8, 30, 10), (8, 30, 30)]


def _viewer():
    from napari.components import ViewerModel

    return ViewerModel()


def test_rerunning_analyze_keeps_the_users_edited_objects_layer(qtbot):
    """V3: the edited ``objects`` layer (object 1 erased, a new object painted as ID 99), analyzed again as the
    source and then the mask again with another min voxels: the edited layer stays in the viewer, the same
    object with the user's voxels, and the new results arrive under new names."""
    viewer = _viewer()
    viewer.add_labels(balls(SHAPE, CENTRES, 3), name="mask")
    widget = _analyze(qtbot, viewer, "mask")
    widget.min_voxels.setValue(1)
    _wait(qtbot, widget, widget.run(), 60_000)
    edited = viewer.layers["objects"]
    assert sorted(np.unique(edited.data).tolist()) == [0, 1, 2, 3, 4]
    edited.paint((8, 10, 10), 0, refresh=False)  # the brush napari's UI uses; erase most of object 1
    edited.data[edited.data == 1] = 0
    edited.paint((8, 20, 20), 99, refresh=False)
    mine = np.array(edited.data)
    assert (mine == 99).sum() > 0 and (mine == 1).sum() == 0

    widget.source.setCurrentText("objects")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert edited in viewer.layers and viewer.layers["objects"] is edited
    np.testing.assert_array_equal(edited.data, mine)
    assert [l.name for l in viewer.layers] == ["mask", "objects", "objects (centroids)", "objects [1]",
                                               "objects (centroids) [1]"]
    assert widget.layers[0] is viewer.layers["objects [1]"]
    assert "earlier results are kept" in widget.status.text()

    widget.source.setCurrentText("mask")
    widget.min_voxels.setValue(100)
    _wait(qtbot, widget, widget.run(), 60_000)
    assert edited in viewer.layers and viewer.layers["objects [1]"] in viewer.layers
    np.testing.assert_array_equal(edited.data, mine)
    assert len(viewer.layers) == 7 and widget.layers[0].name == "objects [2]"
