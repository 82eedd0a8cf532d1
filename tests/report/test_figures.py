"""Paper-ready figures: PNG at 300 dpi and SVG beside it, captions that say why a slice was chosen."""

import json
from pathlib import Path

import numpy as np
import pytest

from tomoseg.metrics import ConfusionMatrix
from tomoseg.report import build_report, figures, image_panels


def test_every_figure_as_png_300_dpi_and_svg(rng, tmp_path, objects_table):
    from PIL import Image

    vs = (29.33, 29.33, 29.33)
    t = objects_table(rng)
    image = rng.normal(size=(40, 64, 64)).astype(np.float32)
    truth = np.zeros((40, 64, 64), bool)
    truth[10:14, 20:30, 20:30] = True
    pred = np.zeros_like(truth)
    pred[30:33, 5:20, 5:20] = True
    made = [figures.confusion_figure(ConfusionMatrix(tp=5, fp=2, fn=1, tn=100), tmp_path / "confusion_matrix.png"),
            figures.size_histogram({"truth": t, "prediction": t}, tmp_path / "size_histogram.png", voxel_size=vs),
            figures.sphericity_figure({"truth": t}, tmp_path / "sphericity_vs_radius.png", voxel_size=vs),
            figures.fraction_along_z({"objects": rng.uniform(0, 0.01, 40)}, tmp_path / "fraction_along_z.png",
                                     voxel_size=vs),
            figures.orthoslices(image, truth, tmp_path / "orthoslices.png", centre=(12, 25, 25), voxel_size=vs,
                                reason="z = 12 is the slice with the most object voxels"),
            figures.objects_3d(t, (40, 64, 64), tmp_path / "objects_3d.png", voxel_size=vs),
            *figures.hit_map_figures(image, pred, truth, tmp_path, voxel_size=vs)]
    for png in made:
        assert png.suffix == ".png" and png.with_suffix(".svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        with Image.open(png) as im:
            assert im.info["dpi"] == pytest.approx((300, 300), abs=1)
            assert min(im.size) > 600
    captions = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))
    assert "most object voxels" in captions["hit_map_z10"] and "most errors" in captions["hit_map_z30"]
    assert "most object voxels" in captions["orthoslices"]


def test_report_uses_the_captions(rng, tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    truth = np.zeros((8, 32, 32), bool)
    truth[4, 10:20, 10:20] = True
    figures.hit_map_figures(None, np.zeros_like(truth), truth, figs)
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "the slice with the most object voxels (100) and the most errors" in html and "hit_map_z4.svg" in html


def test_scale_bar_lengths():
    assert figures.nice_length(730) == 500 and figures.nice_length(1999) == 1000
    assert image_panels._length_label(2000.0) == "2 µm" and image_panels._length_label(500.0) == "500 nm"


def test_report_shows_unmeasured_values_as_a_dash(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"objects_kept": 3, "mean_radius_nm": None,
                                                       "voxel_size_nm": None, "mean_radius_vox": 2.5}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert 'mean_radius_nm</span></td><td>–</td>' in html and "None" not in html


def test_orthoslices_are_drawn_at_the_voxels_physical_shape(rng, tmp_path, monkeypatch):
    """Each panel's aspect is its rows' voxel size over its columns': z/x, z/y, and y/x in the z plane (that
    panel was always drawn square, distorted where y and x voxels differ)."""
    import matplotlib.axes

    aspects = []
    original = matplotlib.axes.Axes.imshow

    def imshow(self, *a, **k):
        aspects.append(k.get("aspect"))
        return original(self, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", imshow)
    image = rng.normal(size=(10, 20, 30)).astype(np.float32)
    figures.orthoslices(image, image > 1, tmp_path / "o.png", voxel_size=(40.0, 20.0, 10.0))
    assert aspects[::2] == [pytest.approx(2.0), pytest.approx(4.0), pytest.approx(2.0)]  # image, then its outline


def test_objects_3d_box_at_the_voxel_faces_and_top_view_with_y_down(save_through, tmp_path):
    """V12: the box ran from 0 to n voxels (centroids are voxel centres, 0 .. n-1: half a voxel off), and the
    top view had y up, mirrored against the slices and napari."""
    made = {}
    save_through(lambda fig, path, caption=None, **kw: made.setdefault("fig", fig))
    t = {"label": np.array([1]), "centroid_z": np.array([1.0]), "centroid_y": np.array([2.0]),
         "centroid_x": np.array([3.0]), "equivalent_radius_vox": np.array([1.0]),
         "equivalent_radius_nm": np.array([30.0])}
    figures.objects_3d(t, (10, 20, 30), tmp_path / "o.png", voxel_size=(50.0, 30.0, 30.0))
    oblique, top, side = [ax for ax in made["fig"].axes if ax.get_label() != "<colorbar>"]
    assert oblique.name == "3d"  # the top and side views are 2D plots since the second figure look (H1)
    assert oblique.get_xlim() == pytest.approx((-0.015, 0.885)) and top.get_xlim() == pytest.approx((-0.015, 0.885))
    assert oblique.get_zlim() == pytest.approx((-0.025, 0.475)) and side.get_ylim() == pytest.approx((-0.025, 0.475))
    assert oblique.get_ylim() == pytest.approx((-0.015, 0.585)) and side.get_xlim() == pytest.approx((-0.015, 0.585))
    assert top.get_ylim() == pytest.approx((0.585, -0.015))  # top view: y grows downward
    assert top.get_title() == "along z (top, y down)"


def test_sphericity_caption_says_coloured_only_with_gray_values(rng, tmp_path, objects_table):
    """V8: the caption said "coloured by mean gray value" on a one-colour scatter."""
    t = objects_table(rng, 5)
    figures.sphericity_figure({"objects": t}, tmp_path / "with.png")
    figures.sphericity_figure({"objects": {**t, "mean_gray": np.full(5, np.nan)}}, tmp_path / "without.png")
    captions = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))
    assert "coloured by mean gray value" in captions["with"]
    assert "coloured" not in captions["without"] and "one colour: no gray values measured" in captions["without"]


def test_report_shows_voxel_size_and_shape(tmp_path):
    """V9: lists (voxel size, shape) were left out of the report's table."""
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 3, "voxel_size_nm": [29.33, 29.33, 60.0],
                                                       "shape": [72, 128, 120]}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert 'voxel_size_nm</span></td><td>29.33 × 29.33 × 60</td>' in html
    assert 'shape</span></td><td>72 × 128 × 120</td>' in html


def test_figures_of_many_objects_stay_small_and_say_what_they_draw(rng, tmp_path, objects_table, save_through):
    """S3: the 3D view drew every object (666 k: 83 s, a 1.3 GB SVG; 30 k: 12 s, 60 MB) and the sphericity
    scatter grew the same way. Now a seeded sample of at most MAX_3D_OBJECTS in 3D, its title and caption saying
    how many of how many, and figures of more than VECTOR_MARKS marks as PNG only (the caption says so)."""
    import time

    n = 30_000
    t = objects_table(rng, n)
    titles = {}

    def keep(fig, path, caption=None, **kwargs):
        titles[path.stem] = [text.get_text() for text in fig.texts]
        return original(fig, path, caption, **kwargs)

    vs = (29.33, 29.33, 29.33)
    (tmp_path / "objects_3d.svg").write_text("an SVG of an earlier run")
    start = time.perf_counter()
    original = save_through(keep)
    figures.objects_3d(t, (40, 64, 64), tmp_path / "objects_3d.png", voxel_size=vs)
    figures.objects_3d(t, (40, 64, 64), tmp_path / "again.png", voxel_size=vs)
    figures.sphericity_figure({"objects": t}, tmp_path / "sphericity_vs_radius.png", voxel_size=vs)
    assert time.perf_counter() - start < 60  # 12 s for one 3D view of 30 k objects before; 3 s here
    drawn = figures.MAX_3D_OBJECTS
    assert drawn < n and titles["objects_3d"] == [f"{drawn:,} of {n:,} objects drawn (a random sample)"]
    captions = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))
    assert f"a random sample of {drawn:,} of the {n:,} objects" in captions["objects_3d"]
    assert f"PNG only: a vector file of its {3 * drawn:,} marks" in captions["objects_3d"]
    # the scatter a seeded sample too (MAX_SCATTER), its caption's sentences apart ("darker.PNG only" before)
    assert f". PNG only: a vector file of its {figures.MAX_SCATTER:,} marks" in captions["sphericity_vs_radius"]
    assert (tmp_path / "objects_3d.png").read_bytes() == (tmp_path / "again.png").read_bytes()  # seeded
    for name in ("objects_3d", "sphericity_vs_radius"):
        assert not (tmp_path / f"{name}.svg").exists() and not (tmp_path / f"{name}.pdf").exists(), name  # the earlier run's SVG too: not left to mislead
        assert (tmp_path / f"{name}.png").stat().st_size < 3e6, name
    few = objects_table(rng, 50)  # a few objects: all drawn, PNG and SVG, no sample title
    figures.objects_3d(few, (40, 64, 64), tmp_path / "few.png", voxel_size=vs)
    assert (tmp_path / "few.svg").stat().st_size < 2e6
    captions = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))
    assert "3D view of the 50 objects" in captions["few"] and "PNG only" not in captions["few"]


def test_report_previews_a_long_table_from_its_first_rows(tmp_path):
    """S4: the preview of objects.csv read every row as Python strings (about 2 KB a row: `report` of 227 k
    objects at 551 MiB); now the first rows are read and the rest counted as they stream past."""
    from tomoseg.table import read_csv, read_csv_head, write_csv

    n = 5000
    t = {"label": np.arange(1, n + 1), "volume_vox": np.arange(n) * 3, "sphericity_voxel": np.linspace(0, 1, n),
         "name": np.array(["a,b"] * n, dtype=object)}
    write_csv(t, tmp_path / "objects.csv")
    head, total = read_csv_head(tmp_path / "objects.csv", 10)
    whole = read_csv(tmp_path / "objects.csv")
    assert total == n and list(head) == list(whole)
    for c in head:
        assert len(head[c]) == 10 and head[c].dtype == whole[c].dtype and head[c].tolist() == whole[c][:10].tolist()
    everything, total = read_csv_head(tmp_path / "objects.csv", 10 * n)  # more rows asked than there are
    assert total == n and all(everything[c].tolist() == whole[c].tolist() for c in whole)
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert f"10 of {n} rows" in html


def _image_aspects(save_through, draw) -> list:
    """The aspect (a pixel's height over its width on screen) of each image panel of the figure ``draw()``
    makes, as it is saved."""
    seen = []

    def keep(fig, path, *args, **kwargs):
        seen.extend(ax.get_aspect() for ax in fig.axes if ax.images)
        return save(fig, path, *args, **kwargs)

    save = save_through(keep)
    draw()
    return seen


def _black_width_over_height(png) -> float:
    """Width over height, in the PNG, of its largest black region (the hit map of a slice without objects)."""
    from PIL import Image
    from scipy import ndimage

    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"))
    regions, _ = ndimage.label(rgb.max(axis=2) < 8)
    largest = regions == np.argmax(np.bincount(regions.ravel())[1:]) + 1
    ys, xs = np.nonzero(largest)
    return (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)


@pytest.mark.parametrize("voxel_size", [(100.0, 30.0, 60.0), (50.0, 50.0, 50.0), None])
def test_hit_maps_are_drawn_at_the_pixels_physical_shape(rng, tmp_path, save_through, voxel_size):
    """Hit maps (and the image beside them) were drawn with square pixels: a scan of 30 nm y and 60 nm x pixels
    came out squeezed 2x across. Each panel's aspect is y over x, and in the PNG the slice (60 rows, 40
    columns) is as wide over tall as it is in nm: 40 * 60 / (60 * 30) = 4/3, not 40/60."""
    vy, vx = (voxel_size or (1.0, 1.0, 1.0))[1:]
    truth = np.zeros((3, 60, 40), bool)
    truth[1, 20:30, 10:20] = True
    image = rng.normal(size=truth.shape).astype(np.float32)
    made = []
    aspects = _image_aspects(save_through, lambda: made.extend(figures.hit_map_figures(image, truth, truth, tmp_path,
                                                                                      voxel_size=voxel_size)))
    assert made and aspects == [pytest.approx(vy / vx)] * 2 * len(made)  # the image and the hit map of each
    empty = figures.hit_map_figure(None, truth[0], truth[0], tmp_path / "empty.png", voxel_size=voxel_size)
    assert _black_width_over_height(empty) == pytest.approx(40 * vx / (60 * vy), rel=0.02)


def test_scale_bar_as_thick_on_screen_whatever_the_pixels_shape(tmp_path, save_through):
    """The bar's thickness was taken in rows: on pixels half as tall as wide it came out half as thick (and
    four times as thick on the z-over-x panels of the orthoslices). Two slices of the same size in nm, one of
    square pixels and one of pixels half as tall, get the same bar on screen, as long as the nm it says."""
    from matplotlib.patches import Rectangle

    bars = {}

    def keep(fig, path, *args, **kwargs):
        ax = fig.axes[0]
        (bar,) = [p for p in ax.patches if isinstance(p, Rectangle)]
        bars[Path(path).stem] = (bar.get_width(), bar.get_height() * ax.get_aspect())  # columns, in columns
        return save(fig, path, *args, **kwargs)

    save = save_through(keep)
    square, flat = np.zeros((30, 40), bool), np.zeros((60, 40), bool)  # both 1.8 x 2.4 µm
    figures.hit_map_figure(None, square, square, tmp_path / "square.png", voxel_size=(60.0, 60.0, 60.0))
    figures.hit_map_figure(None, flat, flat, tmp_path / "flat.png", voxel_size=(60.0, 30.0, 60.0))
    assert bars["flat"] == pytest.approx(bars["square"])
    assert bars["flat"][0] * 60.0 == 200.0  # 200 nm of 60 nm columns (a fifth of 2.4 µm, rounded down to 1-2-5)
