"""The widgets' settings that the command line has (napari review V9): Segment's ROI, sample mask, backend and
precision; Analyze's connectivity, voxel size, sample mask and probability layers. Each is checked before the work
by the CLI's own check, and gives the CLI's result with the same options, voxel for voxel and row for row."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin import balls  # noqa: E402
from test_widget_review import _analyze, _segment_widget, _wait  # noqa: E402

VOXEL = (30.0, 30.0, 30.0)
NM = ("nm", "nm", "nm")


def _cylinder_scan(shape=(16, 160, 160)):
    """A bright cylinder (the sample, with a pore) in darker surroundings with dark spots that the network takes
    for pores where it runs: the automatic sample mask leaves the tiles of the corners out."""
    rng = np.random.default_rng(3)
    _, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    inside = np.broadcast_to((y - 79.5) ** 2 + (x - 79.5) ** 2 <= 24 ** 2, shape)
    image = np.where(inside, 160.0, 100.0) + rng.normal(0, 8, shape)
    image -= 90 * balls(shape, [(8, 80, 80)], 4)
    image -= 90 * balls(shape, [(8, 12, 12), (8, 148, 148), (8, 12, 148), (8, 148, 12)], 5)
    return image.astype(np.float32)


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """The scan as a file and ``tomoseg segment``'s maps of it with several options (tiles of 32, halo 8)."""
    from tomoseg import read_volume, write_volume
    from tomoseg.cli import main

    d = tmp_path_factory.mktemp("segmented")
    image = _cylinder_scan()
    write_volume(d / "scan.tif", image, voxel_size=VOXEL)
    maps = {}
    for name, flags in (("default", []), ("no_mask", ["--no-sample-mask"]), ("roi", ["--roi", "2:14,20:70,:"]),
                        ("torch_bf16", ["--backend", "torch", "--precision", "bf16"])):
        out = d / f"{name}.zarr"
        assert main(["segment", str(d / "scan.tif"), str(out), "--device", "cpu", "--tile-size", "32", "--halo",
                     "8", "-q", *flags]) == 0
        maps[name] = read_volume(out)
    return image, maps


def _segment(qtbot, image):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_image(image, name="scan", scale=VOXEL, units=NM)
    return viewer, _segment_widget(qtbot, viewer)  # cpu, tiles of 32, halo 8


def test_segment_skips_tiles_outside_the_sample_as_the_cli_does_unless_told(qtbot, segmented):
    """The CLI's default sample mask (tiles wholly outside the sample: probability 0, the network not run) in the
    widget, on by default; unticked, every tile is computed, as --no-sample-mask."""
    image, cli = segmented
    assert (cli["default"] > 127).sum() < (cli["no_mask"] > 127).sum()  # the mask matters on this scan
    viewer, widget = _segment(qtbot, image)
    _wait(qtbot, widget, widget.run())  # the defaults: the CLI's map (before V9, the widget ran every tile)
    np.testing.assert_array_equal(viewer.layers["scan probability"].data, cli["default"])
    assert widget.sample_mask.isChecked() and "--no-sample-mask" in widget.sample_mask.toolTip()
    assert "note: the sample mask (found automatically" in widget.status.text()
    widget.sample_mask.setChecked(False)
    _wait(qtbot, widget, widget.run())
    np.testing.assert_array_equal(viewer.layers["scan probability [1]"].data, cli["no_mask"])
    assert "sample mask" not in widget.status.text()


def test_segment_roi_as_the_cli_writes_it(qtbot, segmented):
    """--roi in the widget: the layers have the image's size and place, probability 0 outside the box, equal to
    ``tomoseg segment --roi``'s map; a wrong ROI is refused before the work with the CLI's message, in the
    widget's terms."""
    from test_widget_review import _same_place

    image, cli = segmented
    viewer, widget = _segment(qtbot, image)
    assert widget.roi.text() == "" and widget.roi.toolTip().startswith("segment only this box")
    widget.roi.setText("2:14,20:70,:")
    assert not widget.sample_mask.isEnabled()  # an ROI replaces the sample mask, as on the command line
    _wait(qtbot, widget, widget.run())
    prob = viewer.layers["scan probability"]
    np.testing.assert_array_equal(prob.data, cli["roi"])
    assert not prob.data[:2].any() and not prob.data[:, :20].any() and prob.data[2:14, 20:70].any()
    _same_place(prob, viewer.layers["scan"])
    assert "note: ROI 2:14,20:70,0:160: probability 0 outside it (the network ran on " in widget.status.text()

    widget.roi.setText("0:100,:,:")
    assert widget.run() is None and widget.run_button.isEnabled()
    assert widget.status.text() == ("error: ROI '0:100,:,:': z range 0:100 reaches past the volume's end (0:16); "
                                    "use 0:16 or 0: (to the end)")
    widget.roi.setText("2:14,20:70")
    assert widget.run() is None
    assert widget.status.text().startswith("error: ROI '2:14,20:70': give three ranges z0:z1,y0:y1,x0:x1")
    widget.roi.setText("")
    assert widget.sample_mask.isEnabled()


def test_segment_backend_and_precision_as_the_cli_offers_them(qtbot, segmented):
    """--backend and --precision: the choices that run here (openvino where installed, fp16 with CUDA), the CLI's
    defaults, and the CLI's map with the same choices."""
    from tomoseg.inference.backends import cuda_available, openvino_available

    image, cli = segmented
    viewer, widget = _segment(qtbot, image)
    items = [widget.backend.itemText(i) for i in range(widget.backend.count())]
    assert items == ["auto", "openvino", "torch"] if openvino_available() else ["auto", "torch"]
    items = [widget.precision.itemText(i) for i in range(widget.precision.count())]
    assert items == ["f32", "bf16", "fp16"] if cuda_available() else ["f32", "bf16"]
    assert (widget.backend.currentText(), widget.precision.currentText()) == ("auto", "f32")
    assert widget.precision.toolTip().startswith("f32 (exact")  # the CLI's own help text
    widget.backend.setCurrentText("torch")
    widget.precision.setCurrentText("bf16")
    _wait(qtbot, widget, widget.run())
    np.testing.assert_array_equal(viewer.layers["scan probability"].data, cli["torch_bf16"])


@pytest.fixture()
def files(tmp_path):
    """Two cubes that touch at a corner only (one object with connectivity 26, two with 6), a ball, a
    probability map and a sample mask of the left half, as files without a voxel size."""
    from tomoseg import write_volume

    shape = (24, 48, 48)
    mask = balls(shape, [(12, 12, 36)], 4)
    mask[8:12, 8:12, 8:12] = 1
    mask[12:16, 12:16, 12:16] = 1
    prob = np.where(mask > 0, 200, 30).astype(np.uint8)
    prob[12:16, 12:16, 12:16] = 160
    sample = np.zeros(shape, np.uint8)
    sample[:, :, :24] = 1
    for name, data in (("mask", mask), ("prob", prob), ("sample", sample)):
        write_volume(tmp_path / f"{name}.tif", data)
    return tmp_path, mask, prob, sample


def _cli_csv(d, *flags):
    from tomoseg.cli import main

    assert main(["analyze", str(d / "mask.tif"), "--csv", str(d / "cli.csv"), "--min-voxels", "1", "-q",
                 "--overwrite", *flags]) == 0
    return (d / "cli.csv").read_text()


def _widget_csv(qtbot, widget, d):
    _wait(qtbot, widget, widget.run(), 60_000)
    assert widget.save_table(d / "widget.csv"), widget.status.text()
    return (d / "widget.csv").read_text()


def test_analyze_connectivity_as_the_cli(qtbot, files):
    from napari.components import ViewerModel

    d, mask, _, _ = files
    viewer = ViewerModel()
    viewer.add_labels(mask, name="mask")
    widget = _analyze(qtbot, viewer, "mask")
    widget.min_voxels.setValue(1)
    items = [widget.connectivity.itemText(i) for i in range(widget.connectivity.count())]
    assert items == ["6", "18", "26"] and widget.connectivity.currentText() == "26"
    assert widget.connectivity.toolTip().startswith("voxels that touch by a face (6)")
    assert _widget_csv(qtbot, widget, d) == _cli_csv(d)
    assert len(widget.objects["label"]) == 2
    widget.connectivity.setCurrentText("6")
    assert _widget_csv(qtbot, widget, d) == _cli_csv(d, "--connectivity", "6")
    assert len(widget.objects["label"]) == 3


def test_analyze_voxel_size_given_as_the_cli_takes_it(qtbot, files):
    """A layer without calibration (napari's pixel): the nm columns are empty unless a voxel size is given, and
    then they are ``--voxel-size``'s, units and all; a wrong one is refused before the work, in one line."""
    from napari.components import ViewerModel

    d, mask, _, _ = files
    viewer = ViewerModel()
    viewer.add_labels(mask, name="mask")
    widget = _analyze(qtbot, viewer, "mask")
    widget.min_voxels.setValue(1)
    assert widget.voxel_size.text() == "" and "0.65um" in widget.voxel_size.toolTip()
    widget.voxel_size.setText("30 30 0.031um")
    assert _widget_csv(qtbot, widget, d) == _cli_csv(d, "--voxel-size", "30", "30", "0.031um")
    assert widget.objects["equivalent_radius_nm"][0] > 0
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "voxel size 30 × 30 × 31 nm (given)" in widget.status.text()
    for text, error in (("30 30", "error: voxel size '30 30': give three lengths z y x in nm (30 30 30) or with a "
                                  "unit (0.03um 0.03um 0.03um), or leave it empty for the layer's scale"),
                        ("30 30 3O", "error: voxel size: '3O': unknown unit 'O'; use nm, um (or µm) or mm"),
                        ("0 30 30", "error: voxel size [0.0, 30.0, 30.0] must be three positive numbers (z, y, x) "
                                    "in nm")):
        widget.voxel_size.setText(text)
        assert widget.run() is None and widget.run_button.isEnabled()
        assert widget.status.text() == error

    viewer.add_labels(mask, name="nm", scale=(29.33, 29.33, 29.33), units=NM)
    widget.source.setCurrentText("nm")
    widget.voxel_size.setText("")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "voxel size 29.33 × 29.33 × 29.33 nm (the layer's scale)" in widget.status.text()


def test_analyze_sample_mask_and_probability_layers_as_the_cli(qtbot, files):
    """--sample-mask (objects marked in_sample) and --probability (a mask's confidence columns) as layers."""
    from napari.components import ViewerModel

    d, mask, prob, sample = files
    viewer = ViewerModel()
    viewer.add_labels(mask, name="mask")
    viewer.add_image(prob, name="prob")
    viewer.add_labels(sample, name="sample")
    widget = _analyze(qtbot, viewer, "mask", probability="prob", sample_mask="sample")
    widget.min_voxels.setValue(1)
    assert widget.sample_mask.toolTip().startswith("mask of the sample (nonzero inside)")
    csv = _widget_csv(qtbot, widget, d)
    assert csv == _cli_csv(d, "--probability", str(d / "prob.tif"), "--sample-mask", str(d / "sample.tif"))
    assert list(widget.objects["in_sample"]) == [True, False]
    assert widget.objects["mean_probability"][0] > 0

    viewer.add_labels(sample[:-1], name="short")
    widget.sample_mask.setCurrentText("short")
    assert widget.run() is None
    assert widget.status.text() == ("error: the sample mask 'short' is 23 x 48 x 48 voxels, 'mask' 24 x 48 x 48: "
                                    "choose layers of the same shape")


def test_analyze_takes_the_gray_images_voxel_size_where_the_map_has_none(qtbot, files):
    """As `tomoseg analyze MAP --intensity GRAY`: a map without calibration takes the gray image's voxel size."""
    from napari.components import ViewerModel

    from tomoseg import write_volume

    d, mask, _, _ = files
    gray = (mask * 50 + 100).astype(np.uint8)
    write_volume(d / "gray.tif", gray, voxel_size=(29.33, 29.33, 29.33))
    viewer = ViewerModel()
    viewer.add_labels(mask, name="mask")
    viewer.add_image(gray, name="gray", scale=(29.33, 29.33, 29.33), units=NM)
    widget = _analyze(qtbot, viewer, "mask")
    widget.intensity.setCurrentText("gray")
    widget.min_voxels.setValue(1)
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "voxel size 29.33 × 29.33 × 29.33 nm (the gray image 'gray''s scale)" in widget.status.text()
    assert widget.objects["equivalent_radius_nm"][0] > 0
    assert _widget_csv(qtbot, widget, d) == _cli_csv(d, "--intensity", str(d / "gray.tif"))


def test_analyze_of_a_map_segmented_in_a_box_analyses_the_box_as_the_cli(qtbot, tmp_path):
    """Review S1 in napari: a map segmented with an ROI (by `tomoseg segment --roi`, opened by tomoseg's reader,
    or by the Segment widget's ROI) is analysed inside its box, as `tomoseg analyze` does from the provenance
    record: objects cut by the box's faces left out, fractions over the box; 'whole volume' as --no-roi."""
    from napari.components import ViewerModel

    from tomoseg import write_volume
    from tomoseg.cli import main
    from tomoseg.napari_plugin.reader import read

    image = _cylinder_scan()
    write_volume(tmp_path / "scan.tif", image, voxel_size=VOXEL)
    box = "2:14,56:80,:"  # its face y = 80 cuts the pore at (8, 80, 80)
    assert main(["segment", str(tmp_path / "scan.tif"), str(tmp_path / "roi.zarr"), "--device", "cpu",
                 "--tile-size", "32", "--halo", "8", "-q", "--roi", box]) == 0
    (data, kwargs, kind), = read(tmp_path / "roi.zarr")
    assert kwargs["metadata"] == {"tomoseg": {"roi": [[2, 14], [56, 80], [0, 160]]}}
    viewer = ViewerModel()
    getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = _analyze(qtbot, viewer, "roi")
    widget.min_voxels.setValue(1)

    def cli(*flags):
        assert main(["analyze", str(tmp_path / "roi.zarr"), "--csv", str(tmp_path / "cli.csv"), "--min-voxels", "1",
                     "-q", "--overwrite", *flags]) == 0
        return (tmp_path / "cli.csv").read_text()

    def analysed(widget):  # the table the widget saves, and its status line after the run
        _wait(qtbot, widget, widget.run(), 60_000)
        status = widget.status.text()
        assert widget.save_table(tmp_path / "widget.csv"), widget.status.text()
        return (tmp_path / "widget.csv").read_text(), status

    csv, status = analysed(widget)
    assert csv == cli()
    assert "analysed inside the box 2:14,56:80,0:160 it was segmented in" in status
    assert len(widget.objects["label"]) == 0  # the pore, cut by the box's face: a border object
    assert not widget.no_roi.isChecked() and widget.no_roi.toolTip() == cli_help_no_roi()
    widget.no_roi.setChecked(True)
    csv, status = analysed(widget)
    assert csv == cli("--no-roi") and "analysed inside the box" not in status
    assert len(widget.objects["label"]) == 1  # counted whole (its part in the box) without the box

    # the Segment widget's ROI: its layers name the box, and Analyze of its map is the CLI's of segment --roi's
    seg_viewer, seg = _segment(qtbot, image)
    seg.roi.setText(box)
    _wait(qtbot, seg, seg.run())
    prob = seg_viewer.layers["scan probability"]
    assert prob.metadata["tomoseg"]["roi"] == [[2, 14], [56, 80], [0, 160]]
    assert seg_viewer.layers["scan mask"].metadata["tomoseg"]["roi"] == prob.metadata["tomoseg"]["roi"]
    widget = _analyze(qtbot, seg_viewer, "scan probability")
    widget.min_voxels.setValue(1)
    assert analysed(widget)[0] == cli()


def cli_help_no_roi():
    from tomoseg.napari_plugin.forms import cli_help

    return cli_help("analyze", "no_roi")


def test_analyze_voxel_size_field_against_the_layer_scale(qtbot, files):
    """Review U1 in the widget: a voxel size typed in µm as nm (3.25 for a layer at 3.25 µm) measured 1000x too
    small, said only as 'voxel size 3.25 × 3.25 × 3.25 nm (given)'."""
    from napari.components import ViewerModel

    d, mask, _, _ = files
    viewer = ViewerModel()
    viewer.add_labels(mask, name="ct", scale=(3.25, 3.25, 3.25), units=("micrometer",) * 3)
    widget = _analyze(qtbot, viewer, "ct")
    widget.min_voxels.setValue(1)
    widget.voxel_size.setText("3.25 3.25 3.25")
    _wait(qtbot, widget, widget.run(), 60_000)
    status = widget.status.text()
    assert "voxel size 3.25 × 3.25 × 3.25 nm (given)" in status
    assert ("warning: layer 'ct': voxel size 3.25 × 3.25 × 3.25 nm is 1,000x smaller than the layer's 3250 × 3250 × 3250 "
            "nm: if µm were meant, write voxel size 3.25um 3.25um 3.25um (or the nm: 3250 3250 3250)") in status
    widget.voxel_size.setText("3000 3250 3250")
    _wait(qtbot, widget, widget.run(), 60_000)
    assert "note: layer 'ct': voxel size 3000 × 3250 × 3250 nm replaces the layer's 3250 × 3250 × 3250 nm" in \
        widget.status.text()
