"""The track radius figure as a scientist sees it (the look review): its legend hides no object, its ticks
read in the unit the radii reach."""

import numpy as np

from tomoseg.track import figures


def _matches(radius_before_nm, radius_after_nm):
    n = len(radius_before_nm)
    rb, ra = np.asarray(radius_before_nm, float), np.asarray(radius_after_nm, float)
    return {"match_id": np.arange(1, n + 1), "before_label": np.arange(1, n + 1), "after_label": np.arange(1, n + 1),
            "status": np.array(["persisting"] * n), "edge": np.zeros(n, int), "small": np.zeros(n, int),
            "before_radius_nm": rb, "after_radius_nm": ra,
            "before_volume_nm3": 4 / 3 * np.pi * rb ** 3, "after_volume_nm3": 4 / 3 * np.pi * ra ** 3}


def _drawn(monkeypatch, draw):
    """The saved figure's legends and axes boxes (on screen) and its texts; the files are written too."""
    import matplotlib.legend

    seen = {}
    save = figures.save_figure

    def keep(fig, path, *args, **kwargs):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        seen["legends"] = [lg.get_window_extent(r) for lg in fig.findobj(matplotlib.legend.Legend)]
        seen["axes"] = [ax.get_window_extent(r) for ax in fig.axes]
        seen["points"] = [ax.transData.transform(c.get_offsets()) for ax in fig.axes for c in ax.collections]
        seen["texts"] = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    draw()
    return seen


def test_radius_legend_hides_no_object(monkeypatch, tmp_path):
    """A phantom pair's object that grew from 85 to 116 nm lay under the legend's translucent box in the upper
    left (the corner where grown objects are drawn). The legend is now under the axes."""
    t = _matches([48, 52, 72, 83, 85, 95, 99, 111, 127], [79, 52, 74, 84, 116, 74, 97, 112, 127])
    seen = _drawn(monkeypatch, lambda: figures.radius_figure(t, tmp_path / "r.png"))
    assert seen["legends"]
    for box in seen["legends"]:
        assert not any(box.overlaps(a) for a in seen["axes"])
        for xy in seen["points"]:
            assert not any(box.contains(x, y) for x, y in xy)


def test_radius_ticks_of_a_lab_scan_in_micrometres(monkeypatch, tmp_path):
    """At 50 µm voxels the axes read 0 to 250000 nm; now 0 to 250 µm."""
    t = _matches([60e3, 90e3, 200e3], [62e3, 95e3, 180e3])
    seen = _drawn(monkeypatch, lambda: figures.radius_figure(t, tmp_path / "r.png"))
    assert "equivalent radius before (µm)" in seen["texts"] and "equivalent radius after (µm)" in seen["texts"]
    ticks = [float(x) for x in seen["texts"] if x.replace(".", "").isdigit()]
    assert ticks and max(ticks) < 1000
