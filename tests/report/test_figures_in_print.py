"""The second figure look (H1): the 3D view of the objects, orthoslices of thin, flat and tall volumes, and the
ablation figure, as they come out on a journal page (the demo, the cement and concrete scans)."""

import numpy as np
import pytest
from PIL import Image

from tomoseg.report import figures


def _drawn(save_through, draw, texts_outside, check=None):
    """The figure ``draw()`` makes, drawn as it is saved (the files are written too): its texts past the edges,
    and what ``check(fig, renderer)`` says of it before it is closed."""
    seen = {}

    def keep(fig, path, *args, **kwargs):
        seen["outside"] = texts_outside(fig)
        seen["check"] = check(fig, fig.canvas.get_renderer()) if check else None
        return save(fig, path, *args, **kwargs)

    save = save_through(keep)
    draw()
    return seen


def _shown_ticks(axis):
    lo, hi = sorted(axis.get_view_interval())
    span = abs(hi - lo)
    return [t.label1 for t in axis.get_major_ticks()
            if lo - 1e-9 * span <= t.get_loc() <= hi + 1e-9 * span and t.label1.get_visible() and t.label1.get_text()]


def _table(rng, n, shape):
    return {"label": np.arange(1, n + 1), "equivalent_radius_vox": rng.uniform(1, 6, n),
            "equivalent_radius_nm": rng.uniform(30, 180, n),
            **{f"centroid_{a}": rng.uniform(0, s - 1, n) for a, s in zip("zyx", shape)}}


@pytest.mark.parametrize("shape, voxel_size, unit", [((96, 256, 256), (29.33,) * 3, "µm"),  # the demo
                                                     ((100, 100, 100), (5e4,) * 3, "mm"),  # concrete, 50 µm voxels
                                                     ((128, 128, 128), None, "voxels"),  # cement, no voxel size
                                                     ((5, 256, 256), (29.33,) * 3, "µm"),  # flat
                                                     ((400, 32, 32), (29.33,) * 3, "µm")])  # tall
def test_3d_view_labels_every_axis_with_its_unit_and_fills_the_figure(save_through, tmp_path, texts_outside, shape,
                                                                      voxel_size, unit):
    """The 3D view had a quarter of its height empty (three 3D axes, each projecting into the middle of its slot),
    the side view's horizontal axis without a label and the oblique view's z without one (the units were in the
    titles), and on a flat or tall box its ticks one over the other. The top and side views are now 2D plots to
    scale, every axis named with its unit, the colour bar with its own, no text past the edges or on another."""
    rng = np.random.default_rng(5)

    def check(fig, renderer):
        views = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert bar.get_ylabel() == ("equivalent radius (voxels)" if voxel_size is None else "equivalent radius (nm)")
        oblique, top, side = views
        assert {top.get_xlabel(), top.get_ylabel()} == {f"x ({unit})", f"y ({unit})"}
        assert {side.get_xlabel(), side.get_ylabel()} == {f"y ({unit})", f"z ({unit})"}
        shown = [a for a in (oblique.xaxis, oblique.yaxis, oblique.zaxis) if _shown_ticks(a)]
        assert len(shown) >= (1 if shape[0] > 5 * shape[1] else 2)  # a tall box: x, y too short for ticks
        for axis in shown:  # an oblique axis with ticks is named, with the unit
            assert axis.label.get_text() in (f"x ({unit})", f"y ({unit})", f"z ({unit})")
        for axis in (oblique.xaxis, oblique.yaxis, oblique.zaxis):  # (texts_outside reads 2D axes' labels only)
            if axis.label.get_text():
                b = axis.label.get_window_extent(renderer)
                assert fig.bbox.x0 <= b.x0 and b.x1 <= fig.bbox.x1 and fig.bbox.y0 <= b.y0 and b.y1 <= fig.bbox.y1
        for axis in (oblique.xaxis, oblique.yaxis, oblique.zaxis, top.xaxis, top.yaxis, side.xaxis, side.yaxis):
            boxes = [t.get_window_extent(renderer) for t in _shown_ticks(axis)]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), [t.get_text() for t in _shown_ticks(axis)]
        return True

    seen = _drawn(save_through, lambda: figures.objects_3d(_table(rng, 60, shape), shape, tmp_path / "o.png",
                                                          voxel_size=voxel_size), texts_outside, check)
    assert seen["check"] and seen["outside"] == []
    with Image.open(tmp_path / "o.png") as im:
        ink = np.asarray(im.convert("L")) < 250
    rows = np.flatnonzero(ink.any(axis=1))
    assert (rows[0] + ink.shape[0] - 1 - rows[-1]) / ink.shape[0] < 0.12  # was 0.27 on the demo


@pytest.mark.parametrize("shape, voxel_size", [((3, 128, 128), None), ((3, 128, 128), (29.33,) * 3),
                                               ((5, 256, 256), (29.33,) * 3), ((256, 8, 256), None),
                                               ((400, 32, 32), (29.33,) * 3), ((96, 256, 256), (29.33,) * 3)])
def test_orthoslices_of_thin_flat_and_tall_volumes_keep_panels_and_titles_apart(save_through, tmp_path,
                                                                                 texts_outside, shape, voxel_size):
    """A volume of 3 or 5 slices gave strips floating mid-height, each with a scale bar lying over the strip and
    next to its title; a 256 x 8 x 256 volume's x panel (8 columns) was pushed past the right edge with its title
    (13 points out); a tall one made an 8-inch figure. Now the panels share one scale, their tops and titles in
    one line, one scale bar 2 points thick, every panel and text inside a figure of at most 6 inches, no text
    on another."""
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)

    def check(fig, renderer):
        panels = [ax for ax in fig.axes]
        boxes = [ax.get_window_extent(renderer) for ax in panels]
        for b in boxes:
            assert fig.bbox.x0 <= b.x0 and b.x1 <= fig.bbox.x1 + 0.5 and fig.bbox.y0 <= b.y0 and b.y1 <= fig.bbox.y1
        assert max(b.y1 for b in boxes) - min(b.y1 for b in boxes) < 1  # tops in line
        scale = {round(b.width / w, 6) for b, w in zip(boxes, (shape[2], shape[2], shape[1]))} if not voxel_size \
            else None
        assert scale is None or max(scale) / min(scale) < 1.01  # one scale (square voxels here)
        texts = [ax.title for ax in panels] + [t for ax in panels for t in ax.texts]
        extents = [t.get_window_extent(renderer) for t in texts if t.get_text()]
        for i, a in enumerate(extents):
            for b in extents[i + 1:]:
                assert not a.overlaps(b), [t.get_text() for t in texts]
        return fig.get_size_inches()[1], sum(len(ax.texts) for ax in panels)

    seen = _drawn(save_through, lambda: figures.orthoslices(image, image > 2.5, tmp_path / "o.png", title="scan 7",
                                                           voxel_size=voxel_size), texts_outside, check)
    height, bar_labels = seen["check"]
    assert seen["outside"] == [] and height <= 6.0
    assert bar_labels == (1 if voxel_size else 0)


# The small defects left (H4): size histogram, orthoslices of tall and flat volumes.

def _histogram_table(counts_per_bin):
    """A table whose radii fill bins of 0.5 voxel with the given numbers of objects (bin k: radius 0.75 + 0.5 k)."""
    r = np.concatenate([np.full(n, 0.75 + 0.5 * k) for k, n in enumerate(counts_per_bin)])
    return {"label": np.arange(1, len(r) + 1), "equivalent_radius_vox": r}


@pytest.mark.parametrize("tables", [{"prediction": _histogram_table([3, 9, 4])},
                                    {"ground truth": _histogram_table([3, 9, 4]),
                                     "prediction": _histogram_table([5, 2, 7])}])
def test_size_histogram_legend_is_centred_over_the_plot(save_through, tmp_path, texts_outside, tables):
    """The legend was centred on the figure, so a single series' sat left of the plot's centre (by half the
    count axis' labels): it is now centred over the plot, as the axis labels are, and inside the figure."""
    def check(fig, renderer):
        (ax,) = [a for a in fig.axes if a.get_label() != "<secondary>" and a.get_ylabel() == "objects"]
        (legend,) = fig.legends
        plot, box = ax.get_window_extent(renderer), legend.get_window_extent(renderer)
        return (box.x0 + box.x1) / 2 - (plot.x0 + plot.x1) / 2

    seen = _drawn(save_through, lambda: figures.size_histogram(tables, tmp_path / "h.png", voxel_size=(30.0,) * 3),
                  texts_outside, check)
    assert seen["outside"] == []
    assert abs(seen["check"]) < 1.0  # pixels at 100 dpi; was -16.5 (one series), -14.4 (two)


@pytest.mark.parametrize("tallest", [7, 17, 23, 31, 50, 57, 180])
def test_size_histogram_counts_step_by_1_2_5(save_through, tmp_path, texts_outside, tallest):
    """The count axis stepped by 3, 4, 6 or 8 (0, 6, 12, ... for a bin of 50 objects): it now steps by 1, 2 or 5
    times a power of ten (2.5 only where it makes whole numbers: 25, 250), whole numbers only."""
    def check(fig, renderer):
        (ax,) = [a for a in fig.axes if a.get_ylabel() == "objects"]
        return [float(t.get_text().replace("−", "-")) for t in _shown_ticks(ax.yaxis)]

    seen = _drawn(save_through, lambda: figures.size_histogram({"prediction": _histogram_table([2, tallest, 1])},
                                                              tmp_path / "h.png"), texts_outside, check)
    ticks = np.array(seen["check"])
    assert len(ticks) >= 3 and np.all(ticks == np.round(ticks))
    (step,) = set(np.diff(ticks))
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert mantissa in (1, 2, 2.5, 5) and step == round(step), ticks


def _bar(ax):
    from matplotlib.patches import Rectangle

    (bar,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    (label,) = [t for t in ax.texts if t.get_text()]
    return bar, label


@pytest.mark.parametrize("shape", [(400, 32, 32), (400, 32, 48), (96, 256, 256), (8, 256, 256)])
def test_orthoslices_scale_bar_label_inside_its_image_or_clear_of_it(save_through, tmp_path, texts_outside, shape):
    """On a tall volume's 32-pixel panels the scale bar was 100 nm (0.04 inch) long, its label wider than the
    panel and straddling its edge. The label now lies wholly inside its image or wholly outside it (then under
    it, with a bar at least 0.15 inch long), on no other panel, title or the legend."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=shape).astype(np.float32)

    def check(fig, renderer):
        (ax,) = [a for a in fig.axes if a.texts]
        bar, label = _bar(ax)
        image_box, label_box = ax.get_window_extent(renderer), label.get_window_extent(renderer)
        bar_box = bar.get_window_extent(renderer)
        inside = (image_box.x0 <= label_box.x0 and label_box.x1 <= image_box.x1
                  and image_box.y0 <= label_box.y0 and label_box.y1 <= image_box.y1)
        clear = not label_box.overlaps(image_box)
        others = [a.get_window_extent(renderer) for a in fig.axes if a is not ax]
        others += [a.title.get_window_extent(renderer) for a in fig.axes] + \
            [lg.get_window_extent(renderer) for lg in fig.legends]
        return inside, clear, bar_box.width / fig.dpi, any(label_box.overlaps(o) for o in others)

    seen = _drawn(save_through, lambda: figures.orthoslices(image, image > 2.0, tmp_path / "o.png",
                                                           voxel_size=(29.33,) * 3), texts_outside, check)
    inside, clear, bar_inches, on_another = seen["check"]
    assert seen["outside"] == [] and not on_another
    assert inside or (clear and bar_inches >= 0.15), (inside, clear, bar_inches)


@pytest.mark.parametrize("shape", [(8, 256, 256), (96, 256, 256), (5, 256, 256)])
def test_orthoslices_of_a_flat_volume_end_under_the_tallest_panel(save_through, tmp_path, texts_outside, shape):
    """A flat volume's y and x panels (a few slices) left most of the figure empty under them, the legend a row
    of its own below the tallest panel (the demo's: 1.4 inch of white under y and x, then the legend). Where the
    legend fits under the short panels it now lies there, right under them, and the figure ends under the
    tallest panel."""
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)

    def check(fig, renderer):
        (legend,) = fig.legends
        lg = legend.get_window_extent(renderer)
        panels = [a.get_window_extent(renderer) for a in fig.axes]
        assert not any(lg.overlaps(p) for p in panels)
        above = [p for p in panels if p.x1 > lg.x0 and p.x0 < lg.x1]  # the panels over the legend
        return (min(p.y0 for p in panels) - fig.bbox.y0) / fig.dpi, (min(p.y0 for p in above) - lg.y1) / fig.dpi

    seen = _drawn(save_through, lambda: figures.orthoslices(image, image > 2.0, tmp_path / "o.png",
                                                           voxel_size=(29.33,) * 3), texts_outside, check)
    under_tallest, legend_gap = seen["check"]
    assert seen["outside"] == []
    assert under_tallest < 0.1  # inches of white under the tallest panel (was 0.34: the legend's row)
    assert 0 < legend_gap < 0.15  # the legend right under the short panels


def _turned_box(text, renderer):
    """The corners of ``text`` as drawn, turned by its rotation (its window extent is the upright box around it:
    for a slanted 3D axis label much larger than the text)."""
    from matplotlib.text import Text

    upright = Text(0, 0, text.get_text(), fontproperties=text.get_fontproperties(), figure=text.figure)
    size = upright.get_window_extent(renderer)
    centre = text.get_window_extent(renderer).get_points().mean(axis=0)
    a = np.deg2rad(text.get_rotation())
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (size.width / 2, size.height / 2)
    return centre + half @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def _apart(p, q, gap):
    """Convex polygons at least ``gap`` apart along one of their edges' normals."""
    for poly in (p, q):
        for k in range(4):
            e = poly[(k + 1) % 4] - poly[k]
            n = np.array([-e[1], e[0]]) / np.hypot(*e)
            if (p @ n).max() + gap <= (q @ n).min() or (q @ n).max() + gap <= (p @ n).min():
                return True
    return False


@pytest.mark.parametrize("shape, voxel_size", [((4, 256, 256), (29.33,) * 3), ((4, 64, 64), None),
                                               ((4, 512, 128), (5e4,) * 3), ((96, 256, 256), (29.33,) * 3)])
def test_3d_view_of_a_flat_box_keeps_axis_labels_off_tick_labels(save_through, tmp_path, texts_outside, shape,
                                                                 voxel_size):
    """Objects in a 4-slice volume: the oblique view's "x (µm)" lay on its "2.5" and "y (µm)" on "5.0" (the
    labels pulled in to 6 points under their ticks); on the demo's box they touched. Every axis label of the
    oblique view now lies at least half a point from every tick label drawn (its rotated box, not the upright box
    around it), and each labelled axis keeps a tick label."""
    rng = np.random.default_rng(5)

    def check(fig, renderer):
        oblique = fig.axes[0]
        axes = (oblique.xaxis, oblique.yaxis, oblique.zaxis)
        ticks = [(t.get_text(), _turned_box(t, renderer)) for a in axes for t in _shown_ticks(a)]
        touching = [(a.label.get_text(), text) for a in axes if a.label.get_text()
                    for text, box in ticks if not _apart(_turned_box(a.label, renderer), box, 0.5 * fig.dpi / 72)]
        labelled_without_ticks = [a.label.get_text() for a in axes if a.label.get_text() and not _shown_ticks(a)]
        return touching, labelled_without_ticks

    seen = _drawn(save_through, lambda: figures.objects_3d(_table(rng, 60, shape), shape, tmp_path / "o.png",
                                                          voxel_size=voxel_size), texts_outside, check)
    assert seen["check"] == ([], []) and seen["outside"] == []
