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


def test_a_renamed_layer_runs_under_its_new_name_and_a_removed_one_is_said(qtbot):
    """V5: after a rename the combo boxes listed the old name and Run raised ``KeyError: 'scan' is not in list``;
    now they follow the rename, hold the layer itself, and a layer gone is a status line."""
    from test_widget_review import _scan, _segment_widget

    viewer = _viewer()
    image = viewer.add_image(_scan((8, 32, 32)), name="scan")
    mask = viewer.add_labels(balls((8, 32, 32), [(4, 16, 16)], 2), name="mask")
    segment = _segment_widget(qtbot, viewer)
    analyze = _analyze(qtbot, viewer, "mask")
    image.name, mask.name = "sample A", "sample A mask"
    assert segment.image.currentText() == "sample A" and segment.image.layer() is image
    assert analyze.source.currentText() == "sample A mask" and analyze.source.layer() is mask
    with qtbot.captureExceptions() as exceptions:
        _wait(qtbot, segment, segment.run())
        _wait(qtbot, analyze, analyze.run(), 60_000)
    assert exceptions == []
    assert {"sample A probability", "sample A mask", "objects"} <= {l.name for l in viewer.layers}
    assert segment.status.text().startswith("done in ") and analyze.status.text().startswith("1 objects")
    viewer.layers.remove(image)
    assert segment.image.count() == 1 and segment.image.layer() is viewer.layers["sample A probability"]
    segment.image.setCurrentIndex(-1)
    assert segment.run() is None and segment.status.text() == "open an image (a 3D volume) first"


def test_rerunning_analyze_with_a_row_selected_and_fewer_rows(qtbot):
    """V6: row 8 selected in a table with a status column, then a run without truth that keeps 4 rows raised
    ``IndexError: index 8 is out of bounds``; now the table is refilled with nothing selected and no jump."""
    viewer = _viewer()
    shape = (16, 64, 64)
    big = [(8, 12, 12), (8, 12, 52), (8, 52, 12), (8, 52, 52)]
    small = [(8, 12, 32), (8, 32, 12), (8, 32, 32), (8, 32, 52), (8, 52, 32)]
    mask = np.maximum(balls(shape, big, 5), balls(shape, small, 2))
    viewer.add_labels(mask, name="mask")
    viewer.add_labels(mask, name="truth")
    widget = _analyze(qtbot, viewer, "mask", truth="truth")
    widget.min_voxels.setValue(1)
    _wait(qtbot, widget, widget.run(), 60_000)
    assert widget.table.rowCount() == 9
    headers = [widget.table.horizontalHeaderItem(j).text() for j in range(widget.table.columnCount())]
    widget.table.selectRow(8)
    point = viewer.dims.point
    widget.truth.setCurrentText("(none)")
    widget.min_voxels.setValue(100)
    with qtbot.captureExceptions() as exceptions:
        _wait(qtbot, widget, widget.run(), 60_000)
    assert exceptions == []
    assert widget.table.rowCount() == 4 and widget.table.selectedIndexes() == []
    assert widget.status.text().startswith("4 objects") and viewer.dims.point == point
    widget.table.selectRow(3)  # the new table's rows jump to the new objects
    labels = widget.layers[0]
    assert labels.selected_label == int(widget.objects["label"][3])
    assert headers[:2] == ["label", "TP/FP"]  # V12: the status beside the label, not off-screen


def test_analyze_offers_a_mask_first_and_warns_of_a_gray_image(qtbot):
    """V7: the first layer (the gray scan) was the default source, read as a probability map without a word;
    now the newest labels layer is offered, and a gray image chosen gets a warning in the status."""
    viewer = _viewer()
    rng = np.random.default_rng(0)
    gray = np.clip(rng.normal(150, 20, SHAPE), 0, 255).astype(np.uint8)
    viewer.add_image(gray, name="scan")
    widget = _analyze(qtbot, viewer, "scan")
    viewer.add_labels(balls(SHAPE, CENTRES, 3), name="scan mask")  # as Segment adds it, after the widget opened
    assert widget.source.currentText() == "scan"  # chosen in code (the user's choice): kept
    fresh = _analyze(qtbot, viewer, "scan mask")
    from tomoseg.napari_plugin.widgets import AnalyzeWidget, WARNING_COLOUR

    offered = AnalyzeWidget(viewer)
    qtbot.addWidget(offered)
    assert offered.source.currentText() == "scan mask"
    _wait(qtbot, widget, widget.run(), 60_000)
    share = np.count_nonzero(gray > 127) / gray.size
    assert widget.status.text().split("\n")[1] == (
        f"warning: {share:.0%} of the voxels of layer 'scan' are above 127: a gray image rather than a probability "
        "map? Choose Segment's probability map or mask as 'mask or probability' (or read as: probability, if this "
        "is one)")
    assert WARNING_COLOUR in widget.status.styleSheet()
    _wait(qtbot, fresh, fresh.run(), 60_000)
    assert "\n" not in fresh.status.text() and fresh.status.styleSheet() == ""


def test_a_2d_image_is_named_as_not_3d_and_cuda_is_offered_only_with_a_gpu(qtbot):
    """V11: with only a 2D image open, Segment said "open an image first"; the device list offers cuda only where
    PyTorch sees a GPU, as the precision list offers fp16."""
    from test_widget_review import _segment_widget

    viewer = _viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="img2d")
    segment = _segment_widget(qtbot, viewer)
    analyze = _analyze(qtbot, viewer, "img2d")
    assert segment.run() is None and segment.status.text() == (
        "error: Segment takes 3D volumes (z, y, x); 'img2d' (2D) is not 3D: open a volume (a stack of slices)")
    assert analyze.run() is None and analyze.status.text() == (
        "error: Analyze takes 3D volumes (z, y, x); 'img2d' (2D) is not 3D: open a volume (a stack of slices)")
    import torch

    if torch.cuda.is_available():
        return
    # without a GPU cuda is not offered (it was, and stopped the run with "no CUDA GPU is visible to PyTorch")
    assert [segment.device.itemText(i) for i in range(segment.device.count())] == ["auto", "cpu"]


def test_the_objects_table_saves_as_the_cli_writes_it(qtbot, tmp_path):
    """V8: napari's File > Save keeps 12 of the table's 26 columns (the layer's features) and no units; the
    Analyze widget's "Save table as CSV..." writes the whole table as `tomoseg analyze --csv` does, with its
    safety: a user's own CSV at that name is never replaced."""
    from tomoseg.cli import main
    from tomoseg.io import write_volume

    mask = balls(SHAPE, CENTRES, 3)
    write_volume(tmp_path / "mask.tif", mask, voxel_size=(30.0, 30.0, 30.0))
    assert main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "cli.csv"), "-q"]) == 0
    viewer = _viewer()
    viewer.add_labels(mask, name="mask", scale=(30.0, 30.0, 30.0), units=("nm", "nm", "nm"))
    widget = _analyze(qtbot, viewer, "mask")
    assert not widget.save.isEnabled() and not widget.save_table(tmp_path / "early.csv")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert widget.save.isEnabled() and widget.save_table(tmp_path / "widget.csv")
    assert (tmp_path / "widget.csv").read_text() == (tmp_path / "cli.csv").read_text()
    assert "saved 4 objects" in widget.status.text()
    (tmp_path / "mine.csv").write_text("sample,notes\nA,keep me\n")
    assert not widget.save_table(tmp_path / "mine.csv")
    assert (tmp_path / "mine.csv").read_text() == "sample,notes\nA,keep me\n"
    assert "is not an objects table written by tomoseg" in widget.status.text()
