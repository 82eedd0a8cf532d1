"""The look review (real CT: a lab scan of cement, a binned concrete scan at 50 µm voxels): what a scientist
sees in the report's tables and the figures' legends and axes."""

import json

import numpy as np
import pytest


from tomoseg.report import build_report, distributions, figures, image_panels


def test_report_writes_one_column_of_large_numbers_in_one_format(tmp_path):
    """Concrete at 50 µm voxels: the objects table's equivalent_radius_nm column read 8.419e+04 and 114,270 one
    row apart (scientific from 10,000 to 99,999, grouped digits from 100,000), and the voxel size read
    5e+04 × 5e+04 × 5e+04. Every number from 10,000 up is now written in grouped digits."""
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 2, "voxel_size_nm": [50000.0, 50000.0, 50000.0],
                                                       "mean_radius_nm": 94271.6, "mean_radius_vox": 1.885}))
    (tmp_path / "objects.csv").write_text("label,volume_vox,equivalent_radius_nm,mean_gray\n"
                                          "1,20,84190.3,14790.2\n2,50,114270.1,16520.7\n")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "e+0" not in html
    assert "<td>84,190</td>" in html and "<td>114,270</td>" in html and "<td>14,790</td>" in html
    assert "voxel_size_nm</span></td><td>50,000 × 50,000 × 50,000</td>" in html
    assert "mean_radius_nm</span></td><td>94,272</td>" in html
    assert "mean_radius_vox</span></td><td>1.885</td>" in html


def _drawn(save_through, draw):
    """The figure ``draw()`` makes, drawn as it is saved (the real files are written too)."""
    seen = []

    def keep(fig, path, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        seen.append({"axes": [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_label() != "<colorbar>"],
                     "legends": [(lg, lg.get_window_extent(renderer)) for lg in _legends(fig)]})
        return save(fig, path, *args, **kwargs)

    save = save_through(keep)
    draw()
    return seen[0]


def _legends(fig):
    import matplotlib.legend

    return fig.findobj(matplotlib.legend.Legend)


def test_sphericity_legends_lie_outside_the_data_and_list_each_entry_once(save_through, tmp_path):
    """Cement (915 objects, many at the same radius and sphericity): the size legend ("objects at a point")
    sat in the upper left on a translucent box over the densest marks near ψ = 2/3, and the 2/3 line's legend
    listed the sizes 1, 2, 6 a second time. Both legends are now under the axes, each entry once."""
    rng = np.random.default_rng(3)
    r = np.round(rng.uniform(1.2, 6, 900), 1)  # quantized, as small voxel objects: stacked marks
    psi = np.round(0.75 - 0.02 * r + rng.normal(0, 0.03, 900), 2)
    table = {"label": np.arange(1, 901), "equivalent_radius_vox": r, "sphericity_voxel": psi,
             "mean_gray": rng.uniform(40, 75, 900)}
    for tables in ({"objects": table}, {"truth": table, "prediction": table}):
        seen = _drawn(save_through, lambda: figures.sphericity_figure(tables, tmp_path / "s.png"))
        texts = [t.get_text() for lg, _ in seen["legends"] for t in lg.get_texts()]
        assert len(texts) == len(set(texts)), texts
        assert "objects at a point" in [lg.get_title().get_text() for lg, _ in seen["legends"]]
        for lg, box in seen["legends"]:
            for axes_box in seen["axes"]:
                assert not box.overlaps(axes_box), (lg.get_title().get_text(), box, axes_box)
        boxes = [box for _, box in seen["legends"]]
        assert not boxes[0].overlaps(boxes[1])


def test_lengths_of_a_lab_scan_in_micrometres_and_millimetres(save_through, tmp_path):
    """Concrete at 50 µm voxels: the radius axes read 50000 to 250000 nm, the 3D view's colour bar 180000 nm,
    the scale bars 1000 µm, the 3D view's axes and the fraction along z 0 to 4000 µm. Each length is now in the
    unit it reaches: 50 to 250 µm, 1 mm, 0 to 4 mm."""
    vs = (5e4, 5e4, 5e4)
    rng = np.random.default_rng(1)
    r = rng.uniform(1.2, 4.5, 60)
    t = {"label": np.arange(1, 61), "equivalent_radius_vox": r, "equivalent_radius_nm": r * 5e4,
         "sphericity_voxel": rng.uniform(0.6, 0.8, 60), "mean_gray": rng.uniform(1e4, 3e4, 60),
         "centroid_z": rng.uniform(0, 99, 60), "centroid_y": rng.uniform(0, 99, 60),
         "centroid_x": rng.uniform(0, 99, 60)}
    texts = {}

    def keep(draw, name):
        def spy(fig, path, *args, **kwargs):
            fig.canvas.draw()
            texts[name] = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
            return save(fig, path, *args, **kwargs)

        save = save_through(spy)
        draw()
        save_through(save)

    keep(lambda: figures.size_histogram({"objects": t}, tmp_path / "h.png", voxel_size=vs), "h")
    keep(lambda: figures.sphericity_figure({"objects": t}, tmp_path / "s.png", voxel_size=vs), "s")
    keep(lambda: figures.objects_3d(t, (100, 100, 100), tmp_path / "o.png", voxel_size=vs), "o")
    image = rng.normal(size=(100, 100, 100)).astype(np.float32)
    keep(lambda: figures.orthoslices(image, image > 2, tmp_path / "sl.png", voxel_size=vs), "sl")
    keep(lambda: figures.fraction_along_z({"objects": rng.uniform(0, 0.01, 100)}, tmp_path / "f.png", voxel_size=vs),
         "f")
    for name in ("h", "s"):
        assert "equivalent radius (µm)" in texts[name] and "equivalent radius (nm)" not in texts[name]
    assert "equivalent radius (µm)" in texts["o"]
    assert "1 mm" in texts["sl"] and "1000 µm" not in texts["sl"]
    ticks = [float(x.replace("−", "-")) for x in texts["h"] + texts["o"]
             if x.replace("−", "").replace(".", "").isdigit()]
    assert max(ticks) < 1000  # no 50000 ... 250000 nm, no 0 ... 4000 µm
    assert "x (mm)" in texts["o"] and "z (mm)" in texts["f"]
    assert image_panels._length_label(1e6) == "1 mm" and image_panels._length_label(2000.0) == "2 µm"


@pytest.mark.parametrize("shape", [(128, 128, 128), (96, 256, 256), (40, 64, 64)])
@pytest.mark.parametrize("voxel_size", [None, (29.33, 29.33, 29.33), (60.0, 30.0, 30.0)])
def test_orthoslices_titles_inside_the_figure_and_plane_lines_seen_on_bright_and_dark(save_through, tmp_path, shape,
                                                                                     voxel_size, texts_outside):
    """Cement 128³, the demo (96 × 256 × 256): the panel titles ("z = 100") reached 0.4 to 2.5 pt over the top
    edge of the figure (cut in the PNG). And the lines where the other two planes cut were white at 60 %: on the
    bright sample they could not be seen, while the legend drew them dark gray. They are now white dashes with
    black gaps, in the legend too."""
    seen = {}

    def keep(fig, path, *args, **kwargs):
        seen["outside"] = texts_outside(fig)
        seen["lines"] = [ln for ax in fig.axes for ln in ax.lines]
        seen["legend"] = [h for lg in fig.legends for h in lg.legend_handles if h.get_label() == "the other two planes"]
        return save(fig, path, *args, **kwargs)

    save = save_through(keep)
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    figures.orthoslices(image, image > 2.5, tmp_path / "o.png", voxel_size=voxel_size)
    assert seen["outside"] == []
    assert len(seen["lines"]) == 6 and len(seen["legend"]) == 1
    for line in seen["lines"] + seen["legend"]:
        assert line.get_color() == "white" and line.get_gapcolor() == "black" and line.get_linestyle() == "--"


def test_report_says_the_analysis_settings_in_words(tmp_path):
    """The report's settings line was their JSON: Settings: {"threshold": 127, "connectivity": 26,
    "exclude_border": true, "min_voxels": 8, "read_as": "auto"}."""
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 3, "settings": {
        "threshold": 127, "connectivity": 26, "exclude_border": True, "min_voxels": 8, "read_as": "auto"}}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "Settings: object where the map exceeds 127 of 255; voxels touching by a face, an edge or a corner " \
           "(26-connectivity) are one object; objects touching the border left out; objects under 8 voxels left " \
           "out; input read as: auto</p>" in html
    assert "{&quot;" not in html


def test_like_objects_stack_whatever_the_voxel_size():
    """Cement: with --voxel-size the sphericities of like objects differed in the 16th digit (from the nm
    surface), so 796 marks were drawn for the 774 points drawn without one, the largest stack 5 objects, not 6."""
    psi = np.array([2 / 3, 2 / 3 + 5.6e-16, 2 / 3 - 2.2e-16, 0.6])
    r = np.array([1.2, 1.2, 1.2, 1.2])
    points_r, points_psi, counts, gray = distributions._stack_identical(r, psi, np.array([10.0, 20.0, 30.0, 40.0]))
    assert counts.tolist() == [1, 3] and gray.tolist() == [40.0, 20.0]
    assert points_psi[1] == np.float64(round(2 / 3, 9))


def test_report_says_a_lab_scan_s_density_per_cubic_millimetre_too(tmp_path):
    """Concrete at 50 µm voxels: the report's density read 1.000e-09 (per µm³) alone; analyze's line says 1 /mm³."""
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 125, "number_density_per_um3": 1e-09,
                                                       "number_density_corrected_per_um3": 1.1565e-09}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "number_density_per_um3</span></td><td>1.000e-09 (1 per mm³)</td>" in html
    assert "number_density_corrected_per_um3</span></td><td>1.157e-09 (1.157 per mm³)</td>" in html
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 9, "number_density_per_um3": 17.29}))
    assert "number_density_per_um3</span></td><td>17.29</td>" in build_report(tmp_path).read_text(encoding="utf-8")
