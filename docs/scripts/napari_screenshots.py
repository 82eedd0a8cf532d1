"""Screenshots of the tomoseg napari plugin for docs/viewers.md (a real render, not a mock-up).

Run on a machine without a display with:  xvfb-run -a -s "-screen 0 1700x1000x24" env QT_QPA_PLATFORM=xcb \
    python docs/scripts/napari_screenshots.py docs/figures

A phantom with exact truth is segmented by the default model in the Segment widget, the Analyze widget
measures the mask against the truth, and the slice with the most errors is shown: objects coloured by
equivalent radius (viridis), TP (white discs), FP (vermillion x) and FN (sky-blue squares) marked, the table
beside. The 'noisy' phantom preset is used because on the default preset the model makes no false positive.
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
    for data, kw, kind in phantom(shape=shape, preset="noisy"):  # noisy: the model makes FP and FN
        getattr(viewer, f"add_{kind}")(data, **kw)
    for layer in viewer.layers:
        if hasattr(layer, "units"):  # napari >= 0.6: the scale bar in nm, not pixels
            layer.units = ("nm",) * 3
    seg = SegmentWidget(viewer)
    dock = viewer.window.add_dock_widget(seg, name="tomoseg: Segment", area="right")
    wait(seg.run())
    print(seg.status.text())
    viewer.window.remove_dock_widget(dock)  # room for the table
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
    # the slice with a false positive near it (they are rare), then the most objects cut by it, then the most
    # missed objects near it
    weight = {"FP": 100, "FN": 1, "TP": 0}
    zs = det.data[:, 0]
    obj = ana.objects
    score = [min(sum(1 for s, zz in zip(status, zs) if s == "FP" and abs(zz - z) <= 3), 1) * weight["FP"]
             + 10 * int(np.sum((obj["bbox_z0"] <= z) & (obj["bbox_z1"] > z)) if "bbox_z0" in obj else 0)
             + sum(1 for s, zz in zip(status, zs) if s == "FN" and abs(zz - z) <= 3) for z in range(shape[0])]
    z = int(np.argmax(score))
    print("markers near z:", {k: int(sum(1 for s, zz in zip(status, zs) if s == k and abs(zz - z) <= 4))
                              for k in weight})
    viewer.dims.set_point(0, z * viewer.layers["phantom"].scale[0])
    # thick slice (+-4 voxels) so each marker shows on the slices its object spans
    viewer.dims.margin_left = viewer.dims.margin_right = (4 * viewer.layers["phantom"].scale[0],) + (0,) * 2
    viewer.layers["objects"].opacity = 0.65
    viewer.scale_bar.visible = True
    viewer.layers.selection.active = viewer.layers["objects"]
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from skimage.io import imsave

    imsave(out / "napari-objects-by-radius-fp-fn.png", shot, check_contrast=False)
    viewer.layers["phantom"].visible = False
    viewer.dims.margin_left = viewer.dims.margin_right = (0, 0, 0)
    viewer.dims.ndisplay = 3
    for _ in range(10):
        QApplication.processEvents()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.angles = (-20, 40, 150)
    for _ in range(20):
        QApplication.processEvents()
    imsave(out / "napari-objects-3d.png", viewer.screenshot(canvas_only=True, flash=False), check_contrast=False)
    print(f"slice z = {z} (a false positive near it, then the most objects and FN markers); wrote {out}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
