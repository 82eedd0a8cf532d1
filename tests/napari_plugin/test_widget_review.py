"""The dock widgets against the napari review (N1, N2, N3, N5, N6, N8): results placed by the source layer's
whole transform, errors as a status line (no re-raise into Qt), layer units converted to nm, float maps in
[0, 1] refused as the CLI refuses them, the layer read on the worker's thread. Headless: napari's ViewerModel."""

import threading

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin import balls  # noqa: E402  (also skips the module where Qt cannot start offscreen)

SCALE = (29.33, 30.0, 31.0)
TRANSLATE = (293.3, 1000.0, 2000.0)
ROTATE = 10.0  # degrees, about the first displayed axis


def _wait(qtbot, widget, worker, timeout=120_000):
    """Until the widget is idle again (its Run button enabled): a worker that fails at once may have emitted
    ``finished`` before a ``waitSignal`` could connect to it."""
    assert worker is not None and not widget.run_button.isEnabled()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=timeout)
    qtbot.wait(20)  # the slots queued after finished


def _corners(shape):
    return [np.array(c, float) for c in ((0, 0, 0), (shape[0] - 1, 0, 0), (0, shape[1] - 1, shape[2] - 1),
                                         tuple(s - 1 for s in shape), (2.5, 7.25, 3.0))]


def _same_place(layer, like):
    for p in _corners(like.data.shape):
        assert np.allclose(layer.data_to_world(p), like.data_to_world(p)), (layer.name, p)
    assert [str(u) for u in layer.units] == [str(u) for u in like.units]


def _segment_widget(qtbot, viewer):
    from tomoseg.napari_plugin.widgets import SegmentWidget

    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    widget.tile_size.setValue(32)
    widget.halo.setValue(8)
    widget.device.setCurrentText("cpu")
    return widget


def _scan(shape=(16, 48, 48)):
    rng = np.random.default_rng(0)
    c = tuple(s // 2 for s in shape)
    return (rng.normal(150, 10, shape) - 90 * balls(shape, [c], 4)).astype(np.float32)


def test_segment_results_share_the_image_layers_whole_placement(qtbot):
    """N1: scale, translate and rotation of the image layer, not the scale only."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    image = viewer.add_image(_scan(), name="scan", scale=SCALE, translate=TRANSLATE, rotate=ROTATE,
                             units=("nm", "nm", "nm"))
    widget = _segment_widget(qtbot, viewer)
    _wait(qtbot, widget, widget.run())
    for name in ("scan probability", "scan mask"):
        _same_place(viewer.layers[name], image)
    assert np.allclose(viewer.layers["scan mask"].extent.world, image.extent.world)


def test_analyze_results_and_the_table_jump_share_the_source_placement(qtbot):
    """N1: objects, centroids and TP/FP/FN marks over their mask; the camera goes to the object in world."""
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import AnalyzeWidget

    viewer = ViewerModel()
    shape = (24, 64, 64)
    mask = viewer.add_labels(balls(shape, [(6, 16, 16), (18, 48, 40)], 3), name="mask", scale=SCALE,
                             translate=TRANSLATE, units=("nm", "nm", "nm"))
    viewer.add_labels(balls(shape, [(6, 16, 16), (12, 48, 16)], 3), name="truth", scale=SCALE,
                      translate=TRANSLATE, units=("nm", "nm", "nm"))
    widget = AnalyzeWidget(viewer)
    qtbot.addWidget(widget)
    widget.source.setCurrentText("mask")
    widget.truth.setCurrentText("truth")
    _wait(qtbot, widget, widget.run(), 60_000)
    for name in ("objects", "objects (centroids)", "detections (TP/FP/FN)"):
        layer = viewer.layers[name]
        assert np.allclose(layer.affine.affine_matrix @ np.diag([*layer.scale, 1]),
                           mask.affine.affine_matrix @ np.diag([*mask.scale, 1]))
        assert np.allclose(layer.translate, mask.translate) and np.allclose(layer.scale, mask.scale), name
    _same_place(viewer.layers["objects"], mask)
    pts = viewer.layers["objects (centroids)"]
    for i, lab in enumerate(widget.objects["label"]):  # each centroid point on its object's voxels
        voxel = np.round(mask.world_to_data(pts.data_to_world(pts.data[i]))).astype(int)
        assert viewer.layers["objects"].data[tuple(voxel)] == lab
    widget.table.selectRow(1)
    world = mask.data_to_world(np.array([widget.objects[f"centroid_{a}"][1] for a in "zyx"]))
    assert viewer.dims.point[0] == pytest.approx(world[0], abs=SCALE[0])
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 moved the camera to viewer.scene
    camera = scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
    assert np.allclose(camera.center[-2:], world[-2:])


def test_a_worker_error_is_a_status_line_and_the_widget_returns_to_idle(qtbot):
    """N2: a wrong model path: the TomosegError's text in the status, nothing re-raised into Qt's event loop
    (pytest-qt fails a test on an exception in a slot; a script's PyQt6 aborted), the Run button enabled."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_image(_scan((8, 32, 32)), name="scan")
    widget = _segment_widget(qtbot, viewer)
    widget.model.setText("nonexistent.safetensors")
    with qtbot.captureExceptions() as exceptions:
        _wait(qtbot, widget, widget.run())
    assert exceptions == []
    # V11: the shipped models named, not "model file not found" alone
    assert widget.status.text() == ("error: model 'nonexistent.safetensors': no such file; give one of the shipped "
                                    "models (default, v2, v1; empty: default) or the path of a .safetensors file")
    assert "\n" not in widget.status.text() and "Traceback" not in widget.status.text()
    assert widget.run_button.isEnabled()
    assert [l.name for l in viewer.layers] == ["scan"]


def _analyze(qtbot, viewer, source, **choices):
    from tomoseg.napari_plugin.widgets import AnalyzeWidget

    widget = AnalyzeWidget(viewer)
    qtbot.addWidget(widget)
    widget.source.setCurrentText(source)
    for attr, name in choices.items():
        getattr(widget, attr).setCurrentText(name)
    return widget


def test_analyze_reads_float_maps_as_the_cli_does_and_stops_its_progress_bar_on_a_refusal(qtbot):
    """N6 (every nonzero voxel of a float map was an object: blurred tails merged objects) and N8 (busy bar after
    an error). A map in [0, 1] is read as rint(p * 255); fractions beyond 1 are refused with the CLI's message."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    shape = (24, 64, 64)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    prob = np.zeros(shape, np.float32)
    for c in ((12, 20, 20), (12, 20, 34)):  # two smooth blobs whose tails touch
        prob = np.maximum(prob, np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 18.0))
    viewer.add_image(prob * 2, name="prob")
    widget = _analyze(qtbot, viewer, "prob")
    with qtbot.captureExceptions() as exceptions:
        _wait(qtbot, widget, widget.run(), 60_000)
    assert exceptions == []
    text = widget.status.text()
    assert text.startswith("error: ") and "fractional values from" in text and "to 2 (float64)" in text
    assert "objects" not in [l.name for l in viewer.layers]
    assert widget.run_button.isEnabled() and widget.progress.maximum() == 1000  # not busy for ever
    # the same map as tomoseg's uint8 0-255: thresholded, two objects, and the status says how it was read
    viewer.add_image(np.rint(prob * 255).astype(np.uint8), name="prob8")
    widget.source.setCurrentText("prob8")
    widget.min_voxels.setValue(1)
    _wait(qtbot, widget, widget.run(), 60_000)
    text = widget.status.text()
    assert "2 objects" in text and "read as a probability map (values 0-255): object where value > 127" in text
    # and as Fiji's 32-bit conversion of it (whole values 0-255 in float32; read as a mask, the tails merged the
    # blobs into one object): the same two objects, as tomoseg analyze finds them (review O1)
    viewer.add_image(np.rint(prob * 255).astype(np.float32), name="prob32")
    widget.source.setCurrentText("prob32")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "2 objects" in widget.status.text() and "(values 0-255, stored as float32)" in widget.status.text()
    # and as predict's float map in [0, 1]: the same two objects, read as rint(p * 255)
    viewer.add_image(prob, name="prob01")
    widget.source.setCurrentText("prob01")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "2 objects" in widget.status.text() and "probability map in [0, 1] (float64)" in widget.status.text()


def test_analyze_checks_the_shapes_before_it_starts(qtbot):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_labels(balls((24, 64, 64), [(6, 16, 16)], 3), name="mask")
    viewer.add_image(np.zeros((20, 64, 64), np.float32), name="small")
    widget = _analyze(qtbot, viewer, "mask", intensity="small")
    assert widget.run() is None
    assert "'small' is 20 x 64 x 64 voxels" in widget.status.text() and widget.run_button.isEnabled()


def test_analyze_converts_the_layer_scale_to_nm_with_its_units(qtbot):
    """N5: a µm layer (0.03 µm voxels) gives nm columns in nm, and the new layers stay in µm; a pixel layer with
    a scale leaves the voxel size unknown (nm columns empty, as the CLI leaves them)."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    mask = balls((24, 64, 64), [(12, 32, 32)], 5)
    viewer.add_labels(mask, name="um", scale=(0.03, 0.03, 0.03), units=("µm", "µm", "µm"))
    widget = _analyze(qtbot, viewer, "um")
    _wait(qtbot, widget, widget.run(), 60_000)
    t = widget.objects
    assert len(t["label"]) == 1
    assert t["equivalent_radius_nm"][0] == pytest.approx(30.0 * t["equivalent_radius_vox"][0])
    assert [str(u) for u in viewer.layers["objects"].units] == ["micrometer"] * 3
    assert [str(u) for u in viewer.layers.units] == ["micrometer"] * 3  # one unit: the scale bar stays

    viewer2 = ViewerModel()
    viewer2.add_labels(mask, name="px", scale=(2.0, 2.0, 2.0))  # napari's default unit: pixel
    widget2 = _analyze(qtbot, viewer2, "px")
    _wait(qtbot, widget2, widget2.run(), 60_000)
    assert np.isnan(widget2.objects["equivalent_radius_nm"][0])
    assert "voxel size unknown" in widget2.status.text()


def _lazy(array, threads: set):
    """A dask array that records the threads its chunks are read on."""
    da = pytest.importorskip("dask.array")

    def read(block):
        threads.add(threading.get_ident())
        return block

    return da.from_array(array, chunks=(4, *array.shape[1:])).map_blocks(read, dtype=array.dtype)


def test_the_layer_is_read_on_the_workers_thread_not_napari_s(qtbot):
    """N3: Run returned only after computing a lazy (dask) layer on the UI thread; the worker reads it now."""
    import dask

    from napari.components import ViewerModel

    with dask.config.set(scheduler="synchronous"):  # chunks computed on the thread that asks for them
        _lazy_layers_read_by_the_workers(qtbot, ViewerModel())


def _lazy_layers_read_by_the_workers(qtbot, viewer):
    threads: set = set()
    viewer.add_image(_lazy(_scan((8, 32, 32)), threads), name="scan", multiscale=False)
    viewer.add_labels(_lazy(balls((8, 32, 32), [(4, 16, 16)], 3), threads), name="mask", multiscale=False)
    threads.clear()  # napari's own slicing of the displayed plane
    widget = _segment_widget(qtbot, viewer)
    worker = widget.run()
    assert threading.get_ident() not in threads
    _wait(qtbot, widget, worker)
    assert "scan mask" in viewer.layers and threads and threading.get_ident() not in threads
    threads.clear()
    a = _analyze(qtbot, viewer, "mask")
    a.min_voxels.setValue(1)
    worker = a.run()
    assert threading.get_ident() not in threads
    _wait(qtbot, a, worker, 60_000)
    assert "objects" in viewer.layers and threads and threading.get_ident() not in threads


def test_segment_tiles_as_the_cli_does_unless_told(qtbot, monkeypatch):
    """N9: the widget's tile size was 128 where the CLI chooses per backend (224 OpenVINO, 160 PyTorch CPU, from
    the free memory on CUDA). Its default is now 'auto', the CLI's choice; a size given is used as given."""
    from napari.components import ViewerModel

    import tomoseg.inference.backends as backends
    from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig
    from tomoseg.inference.backends import resolve
    from tomoseg.inference.tiling import resolve_tiling, tile_grid
    from tomoseg.napari_plugin.widgets import SegmentWidget, segment_steps

    widget = SegmentWidget(ViewerModel())
    qtbot.addWidget(widget)
    assert widget.tile_size.value() == 0 and widget.tile_size.text() == "auto"

    class Zeros:  # the tiling, not the network, is under test
        def run_windows(self, windows, stats):
            for tile, _ in windows:
                yield tile, np.zeros([s.stop - s.start for s in tile.core], np.uint8)

    monkeypatch.setattr(backends, "make_backend", lambda *a: Zeros())
    shape = (64, 512, 512)
    image = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)

    def tiles(tile_size=None):
        options = SegmentOptions(backend=BackendConfig(device="cpu"), tiling=TilingConfig(tile_size=tile_size))
        return len(list(segment_steps(image, options=options))) - 2  # less the yields before the first tile

    backend, device = resolve(BackendConfig(device="cpu"))
    cli = tile_grid(shape, resolve_tiling(TilingConfig(), shape, 8, device=device, backend=backend), 8)
    old = tile_grid(shape, TilingConfig(tile_size=128), 8)
    assert tiles() == len(cli) != len(old)
    assert tiles(tile_size=128) == len(old)


def test_analyze_reads_a_layer_as_the_user_says(qtbot):
    """The CLI's --read-as in the widget: a mask saved with values 0 and 1000 (not a mask, a probability map or
    object IDs by its values) is refused under auto, naming the choice, and read as a mask when asked."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    mask = balls((24, 64, 64), [(8, 20, 20), (16, 44, 40)], 4).astype(np.uint16) * 1000
    mask[12, 60, 60] = 999  # a second value, so that it is no label image either
    viewer.add_image(mask, name="wide")
    widget = _analyze(qtbot, viewer, "wide")
    assert [widget.read_as.itemText(i) for i in range(widget.read_as.count())] == ["auto", "probability", "mask"]
    _wait(qtbot, widget, widget.run(), 60_000)
    assert widget.status.text().startswith("error: ") and "choose read as: mask" in widget.status.text()
    widget.read_as.setCurrentText("mask")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "2 objects" in widget.status.text() and "read as a mask (read as: mask)" in widget.status.text()
