"""The figures review (F1-F11): print-width fonts and editable SVG text, one colour scale in 3D, empty tables
said, orthoslices through the counted objects, stacked marks, per-tool figure names in a shared folder, the
report's numbering, links and number formats, track folders."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from tomoseg.cli import main
from tomoseg.io import write_volume
from tomoseg.metrics import ConfusionMatrix
from tomoseg.report import build_report, distributions, figures

VS = (29.33, 29.33, 29.33)


def svg_texts(path):
    svg = path.with_suffix(".svg").read_text(encoding="utf-8")
    width_pt = float(re.search(r'<svg[^>]*width="([\d.]+)pt"', svg).group(1))
    sizes = [float(s) for s in re.findall(r"<text[^>]*font-size: ([\d.]+)px", svg)]
    return width_pt, sizes


def test_every_figure_keeps_its_text_at_7_pt_or_more_at_column_width(rng, tmp_path, objects_table):
    """F6: the style was set inside _figure and gone by savefig: SVGs held no <text> (glyphs as paths), titles
    were 12 pt and ticks 6 pt on 10.5 in figures (2-4 pt at print width). Now every text is SVG text of
    >= 7 pt on a figure of at most 175 mm, and a PDF is written beside."""
    t = objects_table(rng)
    image = rng.normal(size=(40, 64, 64)).astype(np.float32)
    truth = np.zeros((40, 64, 64), bool)
    truth[10:14, 20:30, 20:30] = True
    made = [figures.confusion_figure(ConfusionMatrix(tp=5, fp=2, fn=1, tn=100), tmp_path / "cm.png"),
            figures.size_histogram({"truth": t, "prediction": t}, tmp_path / "h.png", voxel_size=VS),
            figures.sphericity_figure({"a": t, "b": t}, tmp_path / "s2.png", voxel_size=VS),
            figures.sphericity_figure({"a": t}, tmp_path / "s1.png", voxel_size=VS),
            figures.fraction_along_z({"objects": rng.uniform(0, 0.01, 40)}, tmp_path / "f.png", voxel_size=VS),
            figures.orthoslices(image, truth, tmp_path / "o.png", voxel_size=VS),
            figures.objects_3d(t, (40, 64, 64), tmp_path / "o3.png", voxel_size=VS),
            *figures.hit_map_figures(image, truth, truth, tmp_path, voxel_size=VS)]
    for png in made:
        width_pt, sizes = svg_texts(png)
        assert width_pt <= figures.DOUBLE_COLUMN * 72 + 0.01, png.name
        assert len(sizes) > 3 and min(sizes) >= 7, (png.name, sorted(set(sizes)))
        assert png.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    for one_column in ("cm", "h", "s1", "f"):
        assert svg_texts(tmp_path / f"{one_column}.png")[0] <= figures.SINGLE_COLUMN * 72 + 0.01


def test_3d_view_of_objects_of_one_radius_has_one_colour_in_every_view(tmp_path):
    """F2: with all radii equal the 2nd and 98th percentiles coincide; the colour bar widened only the last
    scatter's scale, so two views drew the object at the bottom of the colormap (dark purple, 'about 104 nm'
    for 115.7 nm). One widened scale now: the object is viridis' middle colour in all three views."""
    from matplotlib import colormaps

    t = {"label": np.array([1]), "centroid_z": np.array([20.0]), "centroid_y": np.array([32.0]),
         "centroid_x": np.array([32.0]), "equivalent_radius_vox": np.array([3.944]),
         "equivalent_radius_nm": np.array([115.68])}
    norm = figures.colour_scale(t["equivalent_radius_nm"])
    assert (norm.vmin, norm.vmax) == pytest.approx((115.68 - 5.784, 115.68 + 5.784))
    figures.objects_3d(t, (40, 64, 64), tmp_path / "one.png", voxel_size=VS)
    with Image.open(tmp_path / "one.png") as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    middle = np.array(colormaps["viridis"](0.5)[:3]) * 255
    bottom = np.array(colormaps["viridis"](0.0)[:3]) * 255
    panels = np.array_split(rgb[:, : int(rgb.shape[1] * 0.84)], 3, axis=1)  # the colour bar left out
    for panel in panels:
        assert (np.abs(panel - middle).max(axis=2) < 12).sum() > 20
        assert (np.abs(panel - bottom).max(axis=2) < 12).sum() == 0


def test_identical_points_are_one_mark_counted(rng, tmp_path):
    """F7: 14,415 objects of two sizes were two dots, nothing saying each stood for ~7,000."""
    r = np.array([1.0, 1.0, 1.0, 2.0, 2.5])
    psi = np.array([0.8, 0.8, 0.8, 0.6, 0.6])
    gray = np.array([10.0, 20.0, np.nan, 5.0, 7.0])
    pr, pp, counts, mean_gray = distributions._stack_identical(r, psi, gray)
    assert pr.tolist() == [1.0, 2.0, 2.5] and counts.tolist() == [3, 1, 1]
    assert mean_gray.tolist() == [15.0, 5.0, 7.0]
    n = 600
    t = {"label": np.arange(n), "equivalent_radius_vox": np.repeat([0.78, 1.19], n // 2),
         "sphericity_voxel": np.repeat([0.77, 0.59], n // 2), "mean_gray": np.full(n, np.nan)}
    figures.sphericity_figure({"objects": t}, tmp_path / "s.png")
    caption = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))["s"]
    assert "one mark whose area is proportional to their number (legend; at most 25 objects' area), up to 300 objects at one point" in caption and "translucent" in caption
    assert (tmp_path / "s.svg").exists()  # 2 marks, not 600


def test_empty_tables_say_why(tmp_path):
    """F4: with no object kept the histogram's axis ran -0.04..0.04 objects and the 3D view was empty boxes."""
    empty = {"label": np.zeros(0, int), "equivalent_radius_vox": np.zeros(0), "equivalent_radius_nm": np.zeros(0),
             "sphericity_voxel": np.zeros(0), "mean_gray": np.zeros(0), "centroid_z": np.zeros(0),
             "centroid_y": np.zeros(0), "centroid_x": np.zeros(0)}
    note = "no objects kept (2 touch the border, 0 under 8 voxels)"
    figures.size_histogram({"objects": empty}, tmp_path / "h.png", voxel_size=VS, empty_note=note)
    figures.sphericity_figure({"objects": empty}, tmp_path / "s.png", empty_note=note)
    figures.objects_3d(empty, (10, 20, 20), tmp_path / "o.png", voxel_size=VS, empty_note=note)
    captions = json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))
    for name in ("h", "s", "o"):
        assert captions[name].endswith(f"Empty: {note}.")
        assert "2 touch the border" in (tmp_path / f"{name}.svg").read_text(encoding="utf-8")


def test_planes_through_the_largest_counted_object_and_not_counted_outlines():
    """F8, F4: y and x went through the volume's centre (no object in two of three panels) and z was chosen
    from every object's voxels, excluded ones too."""
    from tomoseg.report.slices import choose_planes, excluded_in_plane

    objects = {"label": np.array([1, 2, 3]), "volume_vox": np.array([500, 30, 8]),
               "bbox_z0": np.array([0, 10, 12]), "bbox_z1": np.array([6, 14, 14]),
               "bbox_y0": np.array([0, 40, 5]), "bbox_y1": np.array([10, 44, 7]),
               "bbox_x0": np.array([0, 50, 5]), "bbox_x1": np.array([10, 54, 7]),
               "centroid_y": np.array([4.0, 41.6, 6.0]), "centroid_x": np.array([5.0, 52.4, 6.0])}
    kept = {k: v[1:] for k, v in objects.items()}  # object 1 touches the border: not counted
    centre, why = choose_planes(kept, (20, 64, 64))
    assert centre == (12, 42, 52) and "label 2, 30 voxels" in why and "2 of them" in why
    mask = np.zeros((64, 64), bool)
    mask[2:8, 2:8] = True     # object 1's piece in plane z = 3
    mask[5:7, 5:7] = False
    mask[40:44, 50:54] = True  # object 2's
    left_out = excluded_in_plane(objects, kept["label"])(0, 3, mask)
    assert left_out.sum() == 32 and left_out[2:8, 2:8].sum() == 32 and not left_out[40:44, 50:54].any()
    assert choose_planes({k: v[:0] for k, v in kept.items()}, (20, 64, 64), np.r_[np.zeros(5), 0.1, np.zeros(14)]) \
        == ((5, 32, 32), "no object is counted; z = 5 is the slice with the most voxels of the objects not counted")
    lo, hi = figures.gray_range(np.arange(101.0), np.full((2, 2), np.nan))
    assert (lo, hi) == pytest.approx((1.0, 99.0))


def test_small_fractions_keep_their_digits():
    """F11: a 261-voxel FP fraction printed as 0.000."""
    assert figures.format_fraction(1.5937e-4) == "1.59e-04" and figures.format_fraction(0.25) == "0.250"


@pytest.fixture(scope="module")
def balls(tmp_path_factory):
    """A mask with 3 balls (one on the border), its gray image, and a 'prediction' 0-255 map."""
    d = tmp_path_factory.mktemp("balls")
    zz, yy, xx = np.mgrid[:24, :48, :48]
    mask = np.zeros((24, 48, 48), np.uint8)
    for c, r in (((12, 12, 34), 4), ((8, 30, 12), 3), ((12, 0, 0), 4)):
        mask[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] = 1
    image = np.where(mask, 60, 180).astype(np.uint8)
    write_volume(str(d / "mask.tif"), mask, voxel_size=VS)
    write_volume(str(d / "img.tif"), image, voxel_size=VS)
    write_volume(str(d / "prob.tif"), np.where(mask, 230, 10).astype(np.uint8), voxel_size=VS)
    border = np.zeros_like(mask)
    border[0:3, 0:3, 0:3] = 1
    border[10:14, 45:48, 10:14] = 1
    write_volume(str(d / "border.tif"), border, voxel_size=VS)
    return d


def test_analyze_and_evaluate_in_one_folder_keep_their_own_figures(balls, tmp_path, capsys):
    """F1: both wrote figures/size_histogram.png and sphericity_vs_radius.png, and analyze's results were
    kept beside evaluate's though their --min-voxels differed (the report then mixed two populations)."""
    d, out = balls, tmp_path / "comb"
    assert main(["analyze", str(d / "prob.tif"), "--intensity", str(d / "img.tif"), "--out", str(out), "-q"]) == 0
    analyze_hist = (out / "figures" / "size_histogram.png").read_bytes()
    assert main(["evaluate", str(d / "prob.tif"), str(d / "mask.tif"), "--out", str(out), "--overwrite",
                 "--report", "-q"]) == 0
    assert (out / "figures" / "size_histogram.png").read_bytes() == analyze_hist
    assert (out / "figures" / "evaluate_size_histogram.png").exists()
    captions = json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert {"size_histogram", "evaluate_size_histogram", "evaluate_sphericity_vs_radius"} <= set(captions)
    assert json.loads((out / "evaluation.json").read_text(encoding="utf-8"))["settings"]["min_voxels"] == 8
    # the same prediction with another --min-voxels: analyze's results would be other objects; they go
    assert main(["evaluate", str(d / "prob.tif"), str(d / "mask.tif"), "--out", str(out), "--overwrite",
                 "--min-voxels", "100", "-q"]) == 0
    assert not (out / "summary.json").exists() and not (out / "figures" / "size_histogram.png").exists()


def test_report_shows_objects_prediction_when_its_rows_differ(tmp_path):
    """F1: objects_prediction.csv was left out of every report beside an objects.csv."""
    from tomoseg.report.html import same_rows
    from tomoseg.table import write_csv

    t = {"label": np.arange(1, 4), "volume_vox": np.array([9, 10, 11]), "centroid_z": np.array([1.5, 2.0, 3.0])}
    write_csv(t, tmp_path / "objects.csv")
    write_csv(t, tmp_path / "objects_prediction.csv")
    assert same_rows(tmp_path / "objects.csv", tmp_path / "objects_prediction.csv")
    assert "Table: objects_prediction.csv" not in build_report(tmp_path).read_text(encoding="utf-8")
    write_csv({k: v[:2] for k, v in t.items()}, tmp_path / "objects_prediction.csv", overwrite=True)
    assert not same_rows(tmp_path / "objects.csv", tmp_path / "objects_prediction.csv")
    assert "Table: objects_prediction.csv" in build_report(tmp_path).read_text(encoding="utf-8")


def test_analyze_of_objects_all_on_the_border(balls, tmp_path, capsys):
    """F4: 'mean radius nan ± nan voxels' on stdout; figures looking broken; the excluded object outlined as
    the segmentation. F9: the fraction curve saved as a table."""
    d, out = balls, tmp_path / "b"
    assert main(["analyze", str(d / "border.tif"), "--intensity", str(d / "img.tif"), "--out", str(out),
                 "--report", "-q"]) == 0
    line = capsys.readouterr().out
    assert "nan" not in line and "mean radius n/a (no objects)" in line
    captions = json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert "Empty: no objects kept (2 touch the border, 0 under 8 voxels)." in captions["size_histogram"]
    assert "not counted (touching the border" in captions["orthoslices"]
    assert "z = 10 is the slice with the most voxels of the objects not counted" in captions["orthoslices"]
    lines = (out / "fraction_along_z.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "z,z_um,fraction,fraction_all_objects" and len(lines) == 25
    z, z_um, f, f_all = lines[1].split(",")  # no object counted: the objects left out only in the last column
    assert (int(z), float(z_um), float(f), float(f_all)) == (0, 0.0, 0.0, pytest.approx(9 / (48 * 48)))
    assert float(lines[11].split(",")[1]) == pytest.approx(10 * 0.02933)


def test_analyze_of_one_object_prints_no_sd(tmp_path, capsys):
    one = np.zeros((24, 48, 48), np.uint8)
    one[10:14, 10:14, 10:14] = 1
    np.save(tmp_path / "one.npy", one)
    assert main(["analyze", str(tmp_path / "one.npy"), "--csv", str(tmp_path / "o.csv"), "-q"]) == 0
    assert "mean radius 2.48 voxels (one object: no s.d.)" in capsys.readouterr().out


def test_evaluate_without_an_image_draws_the_hit_map_alone(balls, tmp_path):
    """F4: the hit map kept an empty 'image' panel (half the figure blank)."""
    d, out = balls, tmp_path / "e"
    assert main(["evaluate", str(d / "prob.tif"), str(d / "mask.tif"), "--out", str(out), "-q"]) == 0
    hit = next((out / "figures").glob("hit_map_z*.png"))
    with Image.open(hit) as im:
        assert im.size[0] == int(figures.SINGLE_COLUMN * 300)  # 85 mm at 300 dpi, one panel
    assert ">image<" not in hit.with_suffix(".svg").read_text(encoding="utf-8")


def test_report_numbers_links_and_formats(balls, tmp_path):
    """F6, F9, F11: figures numbered and linked to their full-size files; accuracy to 6 decimals (0.9991 hid
    the difference between models), the volume fraction in %, readable names, Table 1 in nm."""
    d, out = balls, tmp_path / "r"
    assert main(["analyze", str(d / "prob.tif"), "--intensity", str(d / "img.tif"), "--out", str(out), "-q"]) == 0
    assert main(["evaluate", str(d / "prob.tif"), str(d / "mask.tif"), "--intensity", str(d / "img.tif"), "--out",
                 str(out), "--overwrite", "--report", "-q"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    e = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    figs = len(list((out / "figures").glob("*.png")))
    assert figs == 10 and f"<b>Figure {figs}.</b>" in html and f"<b>Figure {figs + 1}.</b>" not in html
    assert '<a href="figures/orthoslices.png">' in html and '<a href="figures/orthoslices.pdf">' in html
    assert '<figure class="full"><a href="figures/orthoslices.png">' in html
    assert '<a href="fraction_along_z.csv">fraction_along_z.csv</a>' in html
    assert f"<td>{e['voxel']['accuracy']:.6f}</td>" in html
    assert f"<td>{100 * s['volume_fraction']:.4g} %</td>" in html
    assert 'Number of objects <span class="note">objects</span>' in html
    assert f"<td>{e['table1']['prediction']['mean_radius_nm']:.4g}</td>" in html


def test_sphericity_marks_of_one_object_each_stay_small():
    """The marks grew with the objects at a point, but scaled to the largest count, so a figure where no two
    objects coincide drew every object as the largest mark (150 pt², overlapping discs)."""
    np.testing.assert_array_equal(figures.mark_areas([1, 1, 1]), [10, 10, 10])
    assert figures.mark_areas([]).size == 0


def test_sphericity_mark_area_is_proportional_to_the_objects_at_the_point(tmp_path, save_through):
    """Review S6: the area was scaled to the largest count, so with a largest count of 2 a pair got 250 pt²
    against 10 for one object (25x), and 5 objects elsewhere got the same 250. The area is proportional to
    the count (10 pt² per object), capped at 25 objects, with a legend of sizes."""
    np.testing.assert_array_equal(figures.mark_areas([1, 2]), [10, 20])
    np.testing.assert_array_equal(figures.mark_areas([1, 2, 5, 25, 300]), [10, 20, 50, 250, 250])
    assert figures.mark_legend_counts(2) == [1, 2]
    assert figures.mark_legend_counts(5) == [1, 2, 5]
    assert figures.mark_legend_counts(40) == [1, 10, 25]
    r = np.array([1.0, 1.0, 2.0, 3.0])
    table = {"label": np.arange(1, 5), "equivalent_radius_vox": r, "sphericity_voxel": np.array([0.5, 0.5, .6, .7]),
             "mean_gray": np.full(4, np.nan)}
    import matplotlib.legend

    seen = {}
    save_through(lambda fig, path, caption, **kw: seen.setdefault("fig", fig))
    figures.sphericity_figure({"prediction": table}, tmp_path / "s.png")
    ax = seen["fig"].axes[0]
    points = [c for c in ax.collections if len(c.get_offsets())]
    assert sorted(points[0].get_sizes().tolist()) == [10, 10, 20]  # the pair: twice one object's area
    legends = seen["fig"].findobj(matplotlib.legend.Legend)  # (under the axes: the look review)
    assert any(lg.get_title().get_text() == "objects at a point" and
               [t.get_text() for t in lg.get_texts()] == ["1", "2"] for lg in legends)
    import matplotlib.pyplot as plt

    plt.close(seen["fig"])
