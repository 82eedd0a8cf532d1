"""Run by test_plugin.py in a subprocess with a private Xvfb display: napari's real viewer and OpenGL canvas
(``make_napari_viewer``). Not collected on its own (the name does not start with ``test_``)."""

import numpy as np


def test_plugin_on_make_napari_viewer(make_napari_viewer, qtbot):
    from tomoseg.napari_plugin.sample import phantom
    from tomoseg.napari_plugin.widgets import AnalyzeWidget, SegmentWidget

    viewer = make_napari_viewer(show=True)  # drawn on the private Xvfb display
    for data, kw, kind in phantom(shape=(24, 96, 96)):
        getattr(viewer, f"add_{kind}")(data, **kw)
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg)
    seg.tile_size.setValue(32)
    seg.halo.setValue(8)
    seg.device.setCurrentText("cpu")
    with qtbot.waitSignal(seg.run().finished, timeout=120_000):
        pass
    assert {"phantom probability", "phantom mask"} <= {l.name for l in viewer.layers}
    ana = AnalyzeWidget(viewer)
    viewer.window.add_dock_widget(ana)
    ana.source.setCurrentText("phantom mask")
    ana.truth.setCurrentText("truth")
    with qtbot.waitSignal(ana.run().finished, timeout=60_000):
        pass
    assert {"objects", "detections (TP/FP/FN)"} <= {l.name for l in viewer.layers}
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 0  # something was drawn
