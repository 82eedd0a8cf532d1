"""The napari plugin: its manifest, reader, layers and widgets, headless."""

from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
npe2 = pytest.importorskip("npe2")
pytest.importorskip("pytestqt")


def _qt_starts() -> bool:
    """Whether a Qt application starts offscreen here (a missing system library makes Qt abort the process,
    so ask a subprocess)."""
    import os
    import subprocess
    import sys

    code = "from qtpy.QtWidgets import QApplication; QApplication([])"
    try:
        run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                             capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return run.returncode == 0


if not _qt_starts():
    pytest.skip("Qt cannot start offscreen on this machine", allow_module_level=True)

from tomoseg.io.ome_zarr import write_ome_zarr  # noqa: E402
from tomoseg.napari_plugin import layers as L  # noqa: E402
from tomoseg.napari_plugin.reader import get_reader  # noqa: E402

MANIFEST = Path(__file__).parents[2] / "src" / "tomoseg" / "napari_plugin" / "napari.yaml"


def balls(shape, centres, r):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    m = np.zeros(shape, np.uint8)
    for c in centres:
        m[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r] = 1
    return m


@pytest.fixture(scope="module")
def plugin():
    """Register the manifest of this checkout (an editable install elsewhere may provide another)."""
    pm = npe2.PluginManager.instance()
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    if "tomoseg" in pm:
        pm.unregister("tomoseg")
    pm.register(manifest)
    return manifest


def test_manifest_and_entry_point(plugin):
    assert plugin.name == "tomoseg"
    ids = {c.id for c in plugin.contributions.commands}
    assert {"tomoseg.get_reader", "tomoseg.segment_widget", "tomoseg.analyze_widget", "tomoseg.phantom_sample"} <= ids
    for cmd in plugin.contributions.commands:  # every command's target imports
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))
    pyproject = (MANIFEST.parents[3] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'tomoseg = "tomoseg.napari_plugin:napari.yaml"' in pyproject


def test_npe2_picks_tomoseg_reader_for_ome_zarr(plugin, tmp_path):
    img = np.zeros((20, 150, 150), np.uint8)
    mask = balls(img.shape, [(10, 40, 40), (10, 100, 100)], 4)
    objects = mask.astype(np.uint32) * np.where(np.arange(150)[None, None, :] < 70, 1, 2).astype(np.uint32)
    path = write_ome_zarr(tmp_path / "r.ome.zarr", img, labels={"mask": mask, "objects": objects},
                          voxel_size=(30.0, 30.0, 30.0),
                          label_colors={"objects": {1: (255, 0, 0, 255), 2: (0, 0, 255, 255)}},
                          label_properties={"objects": {1: {"equivalent_radius_nm": 120.0},
                                                        2: {"equivalent_radius_nm": 121.0}}})
    readers = npe2.PluginManager.instance().iter_compatible_readers([str(path)])
    assert "tomoseg" in {r.plugin_name for r in readers}
    layers = npe2.read([str(path)], plugin_name="tomoseg", stack=False)  # through npe2, as napari does
    assert get_reader(str(path)) is not None and get_reader(str(tmp_path / "x.png")) is None
    assert [(kw["name"], kind) for _, kw, kind in layers] == [("r", "image"), ("mask", "labels"),
                                                               ("objects", "labels")]
    data, kw, _ = layers[2]
    # a small label image opens as an editable copy of level 0 in memory (napari review V4), not as its pyramid
    assert not kw["multiscale"] and isinstance(data, np.ndarray) and kw["scale"] == (30.0, 30.0, 30.0)
    np.testing.assert_array_equal(data, objects)
    assert kw["colormap"][2] == (0.0, 0.0, 1.0, 1.0)
    assert kw["features"]["equivalent_radius_nm"].tolist() == [120.0, 121.0]


def test_layers_mark_tp_fp_and_fn():
    shape = (24, 64, 64)
    truth = balls(shape, [(12, 16, 16), (12, 16, 48), (12, 48, 16)], 3)           # three true objects
    pred = balls(shape, [(12, 16, 16), (12, 16, 48), (12, 48, 48)], 3)            # two found, one false
    layers, table, counts = L.analysis_layers(pred, truth=truth, voxel_size=(30.0, 30.0, 30.0))
    assert counts == {"objects": 3, "TP": 2, "FP": 1, "FN": 1}
    (labels, lkw, lkind), (pts, pkw, pkind), (det, dkw, dkind) = layers
    assert (lkind, pkind, dkind) == ("labels", "points", "points")
    assert sorted(np.unique(labels)[1:].tolist()) == sorted(table["label"].tolist())
    fn = dkw["features"]["status"] == "FN"
    assert np.allclose(det[fn][0], (12, 48, 16))                                   # at the missed true object
    fp = dkw["features"]["status"] == "FP"
    assert np.allclose(det[fp][0], (12, 48, 48)) and np.array(dkw["symbol"])[fp][0] == "x"
    assert lkw["scale"] == (30.0, 30.0, 30.0)
    # objects coloured by radius: the colour of each label follows its radius on viridis
    big = balls(shape, [(12, 16, 16)], 5) | balls(shape, [(12, 48, 48)], 2)
    (_, kw, _), _ = L.analysis_layers(big)[0][:2]
    r = dict(zip(kw["features"]["index"], kw["features"]["equivalent_radius_vox"]))
    small, large = sorted(r, key=r.get)
    assert kw["colormap"][large][1] > kw["colormap"][small][1]  # viridis: yellow (high green) for large


def test_segment_widget_runs_in_a_thread_and_adds_layers(qtbot):
    """Headless (offscreen Qt) on napari's viewer model: no OpenGL needed."""
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import SegmentWidget

    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    image = (rng.normal(150, 10, (16, 96, 96)) - 90 * balls((16, 96, 96), [(8, 48, 48)], 4)).astype(np.float32)
    viewer.add_image(image, name="scan", scale=(30.0, 30.0, 30.0))
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    widget.tile_size.setValue(32)
    widget.halo.setValue(8)
    widget.device.setCurrentText("cpu")
    steps = []
    worker = widget.run()
    worker.yielded.connect(steps.append)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert [l.name for l in viewer.layers] == ["scan", "scan probability", "scan mask"]
    prob, mask = viewer.layers["scan probability"], viewer.layers["scan mask"]
    assert prob.data.dtype == np.uint8 and tuple(mask.scale) == (30.0, 30.0, 30.0)
    assert np.array_equal(mask.data, prob.data > 127)
    # the mask in one fixed colour (napari's default label colours are random per layer), background clear
    assert np.allclose(mask.colormap.map(np.array([0, 1]))[:, 3], [0, 1])
    assert np.allclose(mask.colormap.map(np.array([1]))[0, :3], (0.902, 0.624, 0.0), atol=0.01)
    assert widget.progress.value() == 1000 and "Mvox/s" in widget.status.text()
    assert len(steps) >= 3 and steps[-1][0] == steps[-1][1] == image.size  # progress tile by tile


def test_analyze_widget_table_jumps_to_the_object(qtbot):
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import AnalyzeWidget

    viewer = ViewerModel()
    shape = (24, 64, 64)
    viewer.add_labels(balls(shape, [(6, 16, 16), (18, 48, 40)], 3), name="mask", scale=(30.0, 30.0, 30.0))
    viewer.add_labels(balls(shape, [(6, 16, 16), (12, 48, 16)], 3), name="truth", scale=(30.0, 30.0, 30.0))
    widget = AnalyzeWidget(viewer)
    qtbot.addWidget(widget)
    widget.source.setCurrentText("mask")
    widget.truth.setCurrentText("truth")
    worker = widget.run()
    assert worker is not None
    # until the widget is idle again: a quick job may emit finished before a waitSignal could connect to it
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    qtbot.wait(20)  # the slots queued after finished
    assert "TP 1, FP 1, FN 1" in widget.status.text()
    assert {"objects", "objects (centroids)", "detections (TP/FP/FN)"} <= {l.name for l in viewer.layers}
    assert widget.table.rowCount() == 2
    widget.table.selectRow(1)
    z = widget.objects["centroid_z"][1] * 30.0
    assert viewer.dims.point[0] == pytest.approx(z, abs=30.0)
    assert viewer.layers["objects"].selected_label == widget.objects["label"][1]


def _napari_pytest_plugin_autoloads() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "napari" for ep in entry_points(group="pytest11"))


@pytest.mark.slow
def test_segment_and_analyze_on_naparis_canvas(tmp_path):
    """napari's full viewer with its OpenGL canvas (``make_napari_viewer``), in a subprocess with a private Xvfb
    display (software OpenGL); skipped where Xvfb is not installed."""
    import os
    import shutil
    import subprocess
    import sys

    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed: no OpenGL canvas without a display")
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as fh:
            display = fh.readline().strip()
        env = {**os.environ, "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__).with_name("canvas_check.py")),
               "--rootdir", str(Path(__file__).parents[2]), "--basetemp", str(tmp_path / "t")]
        if not _napari_pytest_plugin_autoloads():
            cmd[3:3] = ["-p", "napari.utils._testsupport"]
        run = subprocess.run(cmd, env=env, capture_output=True, encoding="utf-8", timeout=400)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
