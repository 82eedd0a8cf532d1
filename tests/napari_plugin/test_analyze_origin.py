"""The Analyze widget's ``centroid_*_nm`` start where ``tomoseg analyze``'s do: at the layer's origin (brief H5,
item 4). The reader translates each layer to its file's origin (an NRRD space origin, an OME-Zarr translation), and
the CLI adds that origin to the nm columns, but the widget called ``analyze`` without it: its table (and the CSV it
saves) counted from voxel (0, 0, 0), a few µm away from the CLI's and from where the layer draws the objects. Real
files read by the plugin's reader into napari's own layers; the widget in a headless ViewerModel."""

import csv

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin import balls  # noqa: E402  (also skips the module where Qt cannot start offscreen)

from tomoseg.cli import main  # noqa: E402
from tomoseg.io.ome_zarr import write_ome_zarr  # noqa: E402
from tomoseg.napari_plugin import reader  # noqa: E402
from tomoseg.napari_plugin.layers import analysis_layers, layer_origin_nm, level0, voxel_size_nm  # noqa: E402

VOXEL = (60.0, 30.0, 30.0)  # z, y, x nm
ORIGIN = (1500.0, -2000.0, 12250.0)  # z, y, x nm
SHAPE = (12, 24, 24)


def _mask():
    return balls(SHAPE, [(3, 6, 7), (8, 16, 15)], 2.5).astype(np.uint8)


def _nrrd(path, data):
    z, y, x = VOXEL
    header = (f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {data.shape[2]} {data.shape[1]} {data.shape[0]}\n"
              f"encoding: raw\nspace dimension: 3\nspace directions: ({x},0,0) (0,{y},0) (0,0,{z})\n"
              f"space units: \"nm\" \"nm\" \"nm\"\nspace origin: ({ORIGIN[2]},{ORIGIN[1]},{ORIGIN[0]})\n\n")
    path.write_bytes(header.encode() + np.ascontiguousarray(data, np.uint8).tobytes())
    return path


FILES = {"nrrd": lambda p, m: _nrrd(p / "m.nrrd", m),
         "ome-zarr": lambda p, m: write_ome_zarr(p / "m.ome.zarr", m, voxel_size=VOXEL, origin=ORIGIN)}


def _cli_rows(path, out):
    assert main(["analyze", str(path), "--csv", str(out), "--read-as", "mask", "-q"]) == 0
    with open(out, newline="") as f:
        return {int(r["label"]): r for r in csv.DictReader(f)}


def _layer(path):
    from napari.layers import Layer

    [layer_data] = reader.read(str(path))
    return Layer.create(*layer_data)


@pytest.mark.parametrize("fmt", FILES)
def test_the_layers_origin_gives_the_clis_centroids_in_nm(tmp_path, fmt):
    path = FILES[fmt](tmp_path, _mask())
    rows = _cli_rows(path, tmp_path / "o.csv")
    layer = _layer(path)
    assert layer_origin_nm(layer) == pytest.approx(ORIGIN)
    _, table, _ = analysis_layers(np.asarray(level0(layer.data)), voxel_size=voxel_size_nm(layer),
                                  origin=layer_origin_nm(layer))
    assert len(table["label"]) == len(rows) == 2
    for i, label in enumerate(table["label"]):
        for a in "zyx":
            assert table[f"centroid_{a}_nm"][i] == pytest.approx(float(rows[int(label)][f"centroid_{a}_nm"]), abs=1e-6)


def test_a_rotated_or_untranslated_layer_has_no_origin(tmp_path):
    from napari.layers import Labels

    mask = _mask()
    assert layer_origin_nm(Labels(mask, scale=VOXEL, units=("nm",) * 3)) is None
    assert layer_origin_nm(Labels(mask, scale=VOXEL, translate=ORIGIN, units=("nm",) * 3, rotate=10.0)) is None
    assert layer_origin_nm(Labels(mask, scale=VOXEL, translate=ORIGIN)) is None  # napari's default unit: pixel
    um = Labels(mask, scale=[v / 1000 for v in VOXEL], translate=[o / 1000 for o in ORIGIN], units=("um",) * 3)
    assert layer_origin_nm(um) == pytest.approx(ORIGIN)


@pytest.mark.parametrize("fmt", FILES)
def test_the_analyze_widgets_table_starts_where_the_clis_does(qtbot, tmp_path, fmt):
    from napari.components import ViewerModel

    from tomoseg.napari_plugin.widgets import AnalyzeWidget

    path = FILES[fmt](tmp_path, _mask())
    rows = _cli_rows(path, tmp_path / "o.csv")
    viewer = ViewerModel()
    viewer.add_layer(_layer(path))
    widget = AnalyzeWidget(viewer)
    qtbot.addWidget(widget)
    widget.source.setCurrentText(viewer.layers[0].name)
    widget.read_as.setCurrentText("mask")
    assert widget.run() is not None
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    qtbot.wait(20)  # the slots queued after finished
    table = widget.objects
    assert table is not None and len(table["label"]) == 2, widget.status.text()
    for i, label in enumerate(table["label"]):
        for a in "zyx":  # were the CLI's minus the origin: counted from voxel (0, 0, 0)
            assert table[f"centroid_{a}_nm"][i] == pytest.approx(float(rows[int(label)][f"centroid_{a}_nm"]), abs=1e-6)
    assert widget.save_table(tmp_path / "w.csv")
    with open(tmp_path / "w.csv", newline="") as f:
        saved = {int(r["label"]): r for r in csv.DictReader(f)}
    assert {k: r["centroid_x_nm"] for k, r in saved.items()} == {k: r["centroid_x_nm"] for k, r in rows.items()}
