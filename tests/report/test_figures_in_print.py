"""The second figure look (H1): the 3D view of the objects, orthoslices of thin, flat and tall volumes, and the
ablation figure, as they come out on a journal page (the demo, the cement and concrete scans)."""

import numpy as np
import pytest
from PIL import Image

from tomoseg.report import figures


def _drawn(monkeypatch, draw, texts_outside, check=None):
    """The figure ``draw()`` makes, drawn as it is saved (the files are written too): its texts past the edges,
    and what ``check(fig, renderer)`` says of it before it is closed."""
    seen = {}
    save = figures.save_figure

    def keep(fig, path, *args, **kwargs):
        seen["outside"] = texts_outside(fig)
        seen["check"] = check(fig, fig.canvas.get_renderer()) if check else None
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
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
def test_3d_view_labels_every_axis_with_its_unit_and_fills_the_figure(monkeypatch, tmp_path, texts_outside, shape,
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

    seen = _drawn(monkeypatch, lambda: figures.objects_3d(_table(rng, 60, shape), shape, tmp_path / "o.png",
                                                          voxel_size=voxel_size), texts_outside, check)
    assert seen["check"] and seen["outside"] == []
    with Image.open(tmp_path / "o.png") as im:
        ink = np.asarray(im.convert("L")) < 250
    rows = np.flatnonzero(ink.any(axis=1))
    assert (rows[0] + ink.shape[0] - 1 - rows[-1]) / ink.shape[0] < 0.12  # was 0.27 on the demo


@pytest.mark.parametrize("shape, voxel_size", [((3, 128, 128), None), ((3, 128, 128), (29.33,) * 3),
                                               ((5, 256, 256), (29.33,) * 3), ((256, 8, 256), None),
                                               ((400, 32, 32), (29.33,) * 3), ((96, 256, 256), (29.33,) * 3)])
def test_orthoslices_of_thin_flat_and_tall_volumes_keep_panels_and_titles_apart(monkeypatch, tmp_path,
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

    seen = _drawn(monkeypatch, lambda: figures.orthoslices(image, image > 2.5, tmp_path / "o.png", title="scan 7",
                                                           voxel_size=voxel_size), texts_outside, check)
    height, bar_labels = seen["check"]
    assert seen["outside"] == [] and height <= 6.0
    assert bar_labels == (1 if voxel_size else 0)
