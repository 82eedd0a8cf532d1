"""Screenshots of the tomoseg napari plugin for docs/viewers.md (a real render, not a mock-up).

Run on a machine without a display with:  xvfb-run -a -s "-screen 0 1700x1000x24" env QT_QPA_PLATFORM=xcb \
    python docs/scripts/napari_screenshots.py docs/figures

A phantom with exact truth is segmented by the default model in the Segment widget, the Analyze widget
measures the mask against the truth, and the slice with the most errors is shown: objects coloured by
equivalent radius (viridis), FP (vermillion x) and FN (sky-blue squares) marked, the table beside.
"""

import sys
from pathlib import Path

import numpy as np
import napari
from qtpy.QtWidgets import QApplication

from tomoseg.napari_plugin.sample import phantom
from tomoseg.napari_plugin.widgets import AnalyzeWidget, SegmentWidget


def wait(worker):
    done = []
    worker.finished.connect(lambda: done.append(1))
    while not done:
        QApplication.processEvents()


def main(out: Path, shape=(64, 192, 192)):
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="tomoseg in napari")
    viewer.window._qt_window.resize(1650, 950)
    for data, kw, kind in phantom(shape=shape):
        getattr(viewer, f"add_{kind}")(data, **kw)
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg, name="tomoseg: Segment", area="right")
    wait(seg.run())
    viewer.layers["phantom mask"].visible = False
    ana = AnalyzeWidget(viewer)
    viewer.window.add_dock_widget(ana, name="tomoseg: Analyze objects", area="right")
    ana.source.setCurrentText("phantom mask")
    ana.intensity.setCurrentText("phantom")
    ana.truth.setCurrentText("truth")
    ana.color_by.setCurrentText("equivalent radius")
    wait(ana.run())
    print(ana.status.text())
    det = viewer.layers["detections (TP/FP/FN)"]
    status = det.features["status"].to_numpy()
    z_err = np.round(det.data[status != "TP", 0]).astype(int)
    z = int(np.bincount(z_err).argmax()) if len(z_err) else shape[0] // 2
    viewer.dims.set_point(0, z * viewer.layers["phantom"].scale[0])
    # thick slice (+-4 voxels) so each marker shows on the slices its object spans
    viewer.dims.margin_left = viewer.dims.margin_right = (4 * viewer.layers["phantom"].scale[0],) + (0,) * 2
    viewer.layers["objects"].opacity = 0.65
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from skimage.io import imsave

    imsave(out / "napari-objects-by-radius-fp-fn.png", shot, check_contrast=False)
    viewer.dims.ndisplay = 3
    viewer.layers["phantom"].visible = False
    viewer.layers["detections (TP/FP/FN)"].visible = False
    viewer.dims.margin_left = viewer.dims.margin_right = (0, 0, 0)
    viewer.camera.angles = (0, 35, 60) if not hasattr(viewer, "scene") else viewer.camera.angles
    for _ in range(20):
        QApplication.processEvents()
    imsave(out / "napari-objects-3d.png", viewer.screenshot(canvas_only=True, flash=False), check_contrast=False)
    print(f"slice z = {z} (most FP + FN markers); wrote {out}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
