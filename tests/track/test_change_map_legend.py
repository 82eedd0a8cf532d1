"""The change map's legend counts what it shows: hollow marks (links at an edge or below the minimum size, left out
of the counts) have an entry of their own. A phantom pair's one split group cut by the field of view was drawn as
two hollow triangles beside the legend's "split: 0 groups (0 → 0 objects)"."""

import numpy as np

from tomoseg.track import figures


def _links():
    """Two persisting pairs (one at an edge), and a split group (before 3 -> after 3, 4) at an edge."""
    t = {"match_id": np.array([1, 2, 3, 3]), "status": np.array(["persisting", "persisting", "split", "split"]),
         "before_label": np.array([1, 2, 3, 3]), "after_label": np.array([1, 2, 3, 4]),
         "edge": np.array([0, 1, 1, 1]), "small": np.zeros(4, int)}
    for side in ("before", "after"):
        for a, values in zip("zyx", ([5, 6, 7, 8], [10, 20, 30, 32], [10, 20, 30, 34])):
            t[f"{side}_centroid_{a}"] = np.asarray(values, float)
    return t


def test_hollow_marks_have_their_own_legend_entry(tmp_path, monkeypatch):
    import matplotlib.legend

    seen = {}
    save = figures.save_figure

    def keep(fig, path, *args, **kwargs):
        seen["labels"] = [t.get_text() for lg in fig.findobj(matplotlib.legend.Legend) for t in lg.get_texts()]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    figures.change_map(_links(), tmp_path / "map.png", shape=(16, 48, 48), voxel_size=(30.0, 30.0, 30.0))
    assert seen["labels"] == ["persisting: 1 pair", "persisting, not counted (edge or small): 1 pair",
                              "split, not counted (edge or small): 1 group"]


def test_the_printed_line_says_how_many_links_it_leaves_out():
    """``tomoseg track``'s line counted "split 0" beside a map showing a split cut by the field: it now adds the
    links left out of its counts (at an edge or below the minimum size), and nothing where there are none."""
    from tomoseg.cli.track import _not_counted

    links = _links()
    assert _not_counted(links) == "; not counted (at an edge or small): 2 links"
    links["edge"][:] = 0
    assert _not_counted(links) == ""
    links["small"][0] = 1
    assert _not_counted(links) == "; not counted (at an edge or small): 1 link"


def _tick_boxes(fig, axis):
    r = fig.canvas.get_renderer()
    return [t.get_window_extent(r) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


def test_the_views_tick_labels_do_not_run_together(tmp_path, monkeypatch):
    """Five ticks a view in µm ran together on a narrow top view ("0.40.81.21.6") and piled up on the side view
    of a few slices: the ticks are as many as each drawn axis holds, at round values of the unit."""
    seen = {}
    save = figures.save_figure

    def keep(fig, path, *args, **kwargs):
        fig.canvas.draw()
        seen["boxes"] = [(_tick_boxes(fig, ax.xaxis), _tick_boxes(fig, ax.yaxis)) for ax in fig.axes[:2]]
        seen["labels"] = [[t.get_text() for t in ax.get_xticklabels() if t.get_text()] for ax in fig.axes[:2]]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    for shape in ((6, 256, 40), (12, 40, 256), (16, 256, 64)):
        t = _links()
        for side in ("before", "after"):
            t[f"{side}_centroid_z"] = np.full(4, shape[0] / 2)
        figures.change_map(t, tmp_path / "map.png", shape=shape, voxel_size=(30.0, 30.0, 30.0))
        for xs, ys in seen["boxes"]:
            for boxes in (xs, ys):
                assert len(boxes) >= 1, shape
                for a, b in zip(boxes, boxes[1:]):
                    assert not a.overlaps(b), (shape, seen["labels"])
        for labels in seen["labels"]:
            assert all(float(v) == round(float(v), 6) for v in labels)
