"""Cancel in the dock widgets (review N4): a running Segment stops between tiles, adds no layer, says so, and the
widget runs again; closing the widget (or the window holding it) cancels the job. Headless: napari's ViewerModel
with offscreen Qt, as the other widget tests."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin import balls  # noqa: E402  (also skips the module where Qt cannot start offscreen)

SHAPE = (32, 256, 256)  # 64 tiles of 32^3 (tile size 32)


def _scan(shape=SHAPE):
    rng = np.random.default_rng(0)
    c = tuple(s // 2 for s in shape)
    return (rng.normal(150, 10, shape) - 90 * balls(shape, [c], 4)).astype(np.float32)


def _segment(qtbot, viewer, closed_by_qtbot=True):
    from tomoseg.napari_plugin.widgets import SegmentWidget

    widget = SegmentWidget(viewer)
    if closed_by_qtbot:  # at the test's end (not one deleted by the test)
        qtbot.addWidget(widget)
    widget.tile_size.setValue(32)
    widget.halo.setValue(8)
    widget.device.setCurrentText("cpu")
    return widget


def _idle(widget):
    return widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def _record(worker):
    """The worker's progress and whether it aborted (superqt's GeneratorWorker.aborted)."""
    seen = {"steps": [], "aborted": False}
    worker.yielded.connect(seen["steps"].append)
    worker.aborted.connect(lambda: seen.update(aborted=True))
    return seen


def test_cancel_stops_a_segmentation_between_tiles_adds_nothing_and_the_widget_runs_again(qtbot):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_image(_scan(), name="scan")
    widget = _segment(qtbot, viewer)
    assert widget.cancel_button.text() == "Cancel" and not widget.cancel_button.isEnabled()  # idle: nothing to stop
    worker = widget.run()
    assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    seen = _record(worker)

    def after_the_first_tile(value):
        if value[0] > 0 and widget.cancel_button.isEnabled():
            widget.cancel_button.click()
            assert not widget.cancel_button.isEnabled() and "cancelling" in widget.status.text()

    worker.yielded.connect(after_the_first_tile)
    with qtbot.captureExceptions() as exceptions:
        qtbot.waitUntil(lambda: _idle(widget), timeout=120_000)
        qtbot.wait(20)
    assert exceptions == []
    total = int(np.prod(SHAPE))
    done = [s[0] for s in seen["steps"]]
    assert seen["aborted"] and any(d > 0 for d in done)
    assert max(done) <= total // 2  # stopped a few tiles after the first of 64, not at the end
    assert [l.name for l in viewer.layers] == ["scan"]  # no result layer
    assert widget.status.text().startswith("cancelled") and "no layers added" in widget.status.text()
    assert widget.progress.value() == 0 and widget.cancel_button.text() == "Cancel"

    worker = widget.run()  # and again, to the end
    seen = _record(worker)
    qtbot.waitUntil(lambda: _idle(widget), timeout=120_000)
    qtbot.wait(20)
    assert [l.name for l in viewer.layers] == ["scan", "scan probability", "scan mask"]
    assert not seen["aborted"] and seen["steps"][-1] == (total, total)
    assert widget.status.text().startswith("done") and widget.progress.value() == 1000


def _in_a_dock(qtbot, widget):
    """Docked as napari docks a plugin's widget: a QDockWidget of a main window; returns both."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    dock = QDockWidget("Segment", window)
    dock.setWidget(widget)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return window, dock


def _in_a_window(widget):
    """A child of a window (a napari viewer's), deleted with it."""
    from qtpy.QtWidgets import QVBoxLayout, QWidget

    window = QWidget()
    QVBoxLayout(window).addWidget(widget)
    return window


@pytest.mark.parametrize("how", ["close the widget", "close its dock", "delete its window"])
def test_closing_the_widget_cancels_a_running_segmentation(qtbot, how):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_image(_scan(), name="scan")
    widget = _segment(qtbot, viewer, closed_by_qtbot=how != "delete its window")
    if how == "close its dock":
        window, dock = _in_a_dock(qtbot, widget)
    elif how == "delete its window":
        window = _in_a_window(widget)
    worker = widget.run()
    seen = _record(worker)
    qtbot.waitUntil(lambda: any(s[0] > 0 for s in seen["steps"]), timeout=120_000)
    with qtbot.captureExceptions() as exceptions:
        with qtbot.waitSignal(worker.finished, timeout=60_000):
            if how == "close the widget":
                widget.close()
            elif how == "close its dock":  # as napari's Window.remove_dock_widget (the dock's close button):
                widget.setParent(None)  # the widget taken out of its dock, no close event; the dock deleted
                dock.deleteLater()
            else:
                window.deleteLater()  # the widget, its child, deleted with it
        qtbot.wait(20)
    assert exceptions == []
    assert seen["aborted"] and max(s[0] for s in seen["steps"]) < int(np.prod(SHAPE))
    assert [l.name for l in viewer.layers] == ["scan"]


def test_cancel_stops_an_analysis_and_the_widget_runs_again(qtbot):
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import AnalyzeWidget

    viewer = ViewerModel()
    shape = (24, 64, 64)
    viewer.add_labels(balls(shape, [(6, 16, 16), (18, 48, 40)], 3), name="mask")
    viewer.add_labels(balls(shape, [(6, 16, 16), (12, 48, 16)], 3), name="truth")
    widget = AnalyzeWidget(viewer)
    qtbot.addWidget(widget)
    widget.source.setCurrentText("mask")
    widget.truth.setCurrentText("truth")
    worker = widget.run()
    seen = _record(worker)
    widget.cancel_button.click()  # before its first step: the job stops at its next step, whatever it reached
    with qtbot.captureExceptions() as exceptions:
        qtbot.waitUntil(lambda: _idle(widget), timeout=60_000)
        qtbot.wait(20)
    assert exceptions == []
    assert worker.abort_requested and [l.name for l in viewer.layers] == ["mask", "truth"]
    assert widget.status.text().startswith("cancelled") and widget.table.rowCount() == 0
    assert widget.progress.maximum() == 1000  # the busy bar stopped

    worker = widget.run()
    seen = _record(worker)
    qtbot.waitUntil(lambda: _idle(widget), timeout=60_000)
    qtbot.wait(20)
    assert "TP 1, FP 1, FN 1" in widget.status.text() and widget.table.rowCount() == 2
    assert seen["steps"]  # the steps it went through, each a point where Cancel takes effect


def test_the_rate_and_time_left_count_from_the_first_tile_not_from_run(qtbot, monkeypatch):
    """Reading the layer, loading the model and the statistics took 10 s; then 1 of 4 Mvox in 1 s: 1 Mvox/s and
    3 s left (counted from Run: 0.09 Mvox/s and 33 s left)."""
    import tomoseg.napari_plugin.widgets as widgets
    from napari.components import ViewerModel

    widget = _segment(qtbot, ViewerModel())
    clock = iter([110.0, 111.0])
    monkeypatch.setattr(widgets.time, "monotonic", lambda: next(clock))
    widget._t0 = widget._t_tiles = 100.0
    widget._step((0, 4_000_000))      # statistics done, at 110 s
    widget._step((1_000_000, 4_000_000))  # the first tile, at 111 s
    assert widget.status.text() == "1.00 of 4.00 Mvox, 1.00 Mvox/s, about 3 s left"
