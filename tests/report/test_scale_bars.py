"""Scale bars on narrow and thin image panels (report.image_panels.add_scale_bar), as the phantom figure and the
tracking change map draw them: the bar and its label inside their panel, or neither drawn; never over a legend."""

import numpy as np
import pytest
from matplotlib.patches import Rectangle

VS = (29.33, 29.33, 29.33)


def _bars(fig):
    """Each image panel's scale bar and its label as drawn (laid out at 300 dpi, as saved): (panel box, bar box
    or None where not shown, label box or None), in display pixels."""
    fig.set_dpi(300)  # laid out as saved (DPI): at 100 dpi the texts fall elsewhere
    fig.canvas.draw()
    fig.canvas.draw()  # twice, as saving the PNG, SVG and PDF does (a label hidden by the first draw came back)
    r = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_facecolor()[:3] == (1.0, 1.0, 1.0)]
        if not ax.images or not bars:
            continue
        (bar,) = bars
        (label,) = [t for t in ax.texts if t.get_text()]
        assert bar.get_visible() == label.get_visible()  # both or neither
        found.append((ax.get_window_extent(r), bar.get_window_extent(r) if bar.get_visible() else None,
                      label.get_window_extent(r) if label.get_visible() else None))
    return found


def _inside(box, panel):
    return panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1


def _phantom_figure(monkeypatch, tmp_path, shape):
    import tomoseg.synthetic.figure as figure
    from tomoseg.synthetic import make_phantom

    drawn = {}
    monkeypatch.setattr(figure, "save_figure", lambda fig, path, *a, **k: drawn.setdefault("fig", fig))
    figure.phantom_figure(make_phantom(shape, rng=3, radius_max=5.0, object_fraction=0.001), tmp_path / "f.png",
                          voxel_size=VS)
    return drawn["fig"]


def _change_map(monkeypatch, tmp_path, shape):
    from tomoseg.track import figures

    rng = np.random.default_rng(0)
    n = 12
    status = np.array(["persisting"] * 9 + ["appeared", "vanished", "split"])
    table = {"match_id": np.arange(n), "status": status, "edge": np.zeros(n, int), "small": np.zeros(n, int),
             "before_label": np.arange(n), "after_label": np.arange(n),
             **{f"{w}_centroid_{a}": rng.uniform(0, s - 1, n) for w in ("before", "after")
                for a, s in zip("zyx", shape)}}
    drawn = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, *a, **k: drawn.setdefault("fig", fig))
    figures.change_map(table, tmp_path / "m.png", shape=shape, image=rng.normal(size=shape).astype(np.float32),
                       voxel_size=VS)
    return drawn["fig"]


@pytest.mark.parametrize("shape", [(16, 256, 64), (16, 512, 40), (16, 64, 256)])
def test_phantom_scale_bars_stay_inside_their_panels(monkeypatch, tmp_path, shape):
    """A 16 x 256 x 64 phantom: its slice panel is 0.7 inch wide and the label "200 nm", centred over a bar near
    the right edge, ran 0.1 inch past the image's edge (on the 40-pixel wide slice of a 16 x 512 x 40 one, past
    both). The label now moves along the bar's row into the panel, takes two lines where one is wider than the
    panel, and where it fits nowhere neither it nor its bar is drawn."""
    fig = _phantom_figure(monkeypatch, tmp_path, shape)
    bars = _bars(fig)
    assert len(bars) == 2  # the slice and the zoom
    for panel, bar, label in bars:
        for box in (bar, label):
            assert box is None or _inside(box, panel), (box, panel)
    if shape != (16, 512, 40):
        assert all(label is not None for _, _, label in bars)  # room for it: drawn


@pytest.mark.parametrize("shape", [(16, 256, 64), (256, 64, 64), (6, 256, 256)])
def test_change_map_scale_bars_stay_inside_their_panels_and_off_the_legend(monkeypatch, tmp_path, shape):
    """The change map of a thin volume (16 x 256 x 64): the top view's label ran past the panel's right edge; of a
    6-slice one, the side view's bar (1.2 % of the panel's longer side thick, 2.5 of that from the bottom) lay
    above the panel's top edge and its label on the title. Bar and label now stay inside their panel (the bar at
    most a fifth of a strip's height, the label left of it where there is no room over it), or neither is drawn,
    and neither touches the legend."""
    import matplotlib.legend

    fig = _change_map(monkeypatch, tmp_path, shape)
    bars = _bars(fig)
    legends = [lg.get_window_extent(fig.canvas.get_renderer()) for lg in fig.findobj(matplotlib.legend.Legend)]
    assert len(bars) == 2 and legends
    for panel, bar, label in bars:
        for box in (bar, label):
            if box is not None:
                assert _inside(box, panel), (box, panel)
                assert not any(box.overlaps(lg) for lg in legends)
    assert bars[0][2] is not None  # the top view has room for it
