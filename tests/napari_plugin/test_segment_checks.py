"""The Segment widget runs the checks ``tomoseg segment`` makes of the gray values and offers its objects and
fill-value settings (napari review V1, V2): a scan with -32768 outside the reconstructed cylinder, and one with
bright objects, segmented in the widget as the CLI segments them, with the CLI's warnings in the status."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_widget_review import _segment_widget, _wait  # noqa: E402

VOXEL = (29.33, 29.33, 29.33)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A small phantom as int16 with -32768 outside a cylinder (45 % of the voxels), and inverted (bright
    objects), as files, with the CLI's probability maps of them (with --fill-value, with --objects bright)."""
    from tomoseg import read_volume, write_volume
    from tomoseg.cli import main
    from tomoseg.synthetic import make_phantom

    d = tmp_path_factory.mktemp("scans")
    image = make_phantom((32, 96, 96), rng=2027).image.astype(np.float32)
    _, y, x = np.ogrid[:32, :96, :96]
    fill = image.astype(np.int16)
    fill[np.broadcast_to((y - 47.5) ** 2 + (x - 47.5) ** 2 > 40 ** 2, image.shape)] = -32768
    write_volume(d / "scan_fill.h5", fill, voxel_size=VOXEL)
    write_volume(d / "scan_bright.tif", (255 - image).astype(np.uint8), voxel_size=VOXEL)
    cli = {}
    for name, scan, flags in (("fill", "scan_fill.h5", ["--fill-value", "-32768"]),
                              ("bright", "scan_bright.tif", ["--objects", "bright"])):
        assert main(["segment", str(d / scan), str(d / f"{name}.zarr"), "--device", "cpu", "-q", *flags]) == 0
        cli[name] = read_volume(d / f"{name}.zarr")
    return d, cli


def _open(viewer, path):
    from tomoseg.napari_plugin.reader import get_reader

    for data, kwargs, kind in get_reader(str(path))(str(path)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def test_segment_warns_of_a_fill_value_and_takes_one(qtbot, scans):
    """V1: with the defaults the mask is empty, and the status now says why, as the CLI does, naming the widget's
    fill value setting; with fill value -32768 the map equals ``tomoseg segment --fill-value -32768``'s."""
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import WARNING_COLOUR

    d, cli = scans
    viewer = ViewerModel()
    _open(viewer, d / "scan_fill.h5")
    widget = _segment_widget(qtbot, viewer)
    widget.tile_size.setValue(0)  # the CLI's choice, as the CLI run
    widget.halo.setValue(48)
    assert widget.fill_value.text() == "" and widget.objects.currentText() == "model's default"
    _wait(qtbot, widget, widget.run())
    lines = widget.status.text().split("\n")
    assert lines[0].startswith("done in ")
    assert ("warning: layer 'scan_fill': 45.5% of the voxels hold the single value -32768, the lowest in the volume: "
            "a fill value (outside the reconstructed cylinder, padded slices)? It is taken as gray value and shrinks "
            "the objects' contrast; if it means no data, set fill value to -32768 (left out of the statistics, "
            "probability 0)") in lines
    assert any(line.startswith("warning: layer 'scan_fill': its gray-value histogram differs") for line in lines)
    assert WARNING_COLOUR in widget.status.styleSheet()
    assert not viewer.layers["scan_fill mask"].data.any()

    widget.fill_value.setText("-32768")
    _wait(qtbot, widget, widget.run())
    np.testing.assert_array_equal(viewer.layers["scan_fill probability [1]"].data, cli["fill"])
    assert viewer.layers["scan_fill mask [1]"].data.sum() == (cli["fill"] > 127).sum() > 0
    assert "note: layer 'scan_fill': 134144 voxels (45.49%) are NaN, infinite or the fill value -32768: no data, " \
        "left out of the statistics and given probability 0" in widget.status.text().split("\n")
    assert "warning" not in widget.status.text() and widget.status.styleSheet() == ""

    widget.fill_value.setText("minus one")
    assert widget.run() is None and widget.run_button.isEnabled()
    assert widget.status.text() == ("error: fill value 'minus one' is not a number: give the gray value that means no "
                                    "data (e.g. -32768), or leave it empty")
    widget.fill_value.setText("nan")  # refused by the CLI's check before any work (review V9)
    assert widget.run() is None and widget.run_button.isEnabled()
    assert widget.status.text() == ("error: fill value nan: give a finite gray value (NaN and infinities are always "
                                    "treated as no data)")


def test_segment_warns_of_bright_objects_and_finds_them_when_told(qtbot, scans):
    """V2: bright objects gave an empty mask reported as done; now the CLI's mirrored-histogram warning names the
    widget's objects setting, and objects: bright gives ``tomoseg segment --objects bright``'s map."""
    from napari.components import ViewerModel

    d, cli = scans
    viewer = ViewerModel()
    _open(viewer, d / "scan_bright.tif")
    widget = _segment_widget(qtbot, viewer)
    widget.tile_size.setValue(0)
    widget.halo.setValue(48)
    assert [widget.objects.itemText(i) for i in range(widget.objects.count())] == ["model's default", "dark",
                                                                                   "bright"]
    _wait(qtbot, widget, widget.run())
    lines = widget.status.text().split("\n")
    warning, = [line for line in lines if line.startswith("warning: ")]
    assert warning.startswith("warning: layer 'scan_bright': its gray-value histogram differs from the model's "
                              "training data")
    assert warning.endswith("are the objects brighter than the matrix? Then choose objects: bright")
    widget.objects.setCurrentText("bright")
    _wait(qtbot, widget, widget.run())
    np.testing.assert_array_equal(viewer.layers["scan_bright probability [1]"].data, cli["bright"])
    assert (cli["bright"] > 127).sum() > 0 and "warning" not in widget.status.text()
