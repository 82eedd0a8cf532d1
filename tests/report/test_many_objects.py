"""The size and sphericity figures of many objects, or of a few far larger than the rest: bounded in bars and
marks, readable, and saying what they leave out."""

import json

import numpy as np
import pytest

from tomoseg.report import figures


def _table(radii, rng):
    n = len(radii)
    return {"label": np.arange(1, n + 1), "equivalent_radius_vox": np.asarray(radii, float),
            "sphericity_voxel": rng.random(n), "mean_gray": rng.random(n) * 255}


@pytest.fixture
def drawn(save_through):
    """The figure as saved: its axes, and its caption."""
    seen = {}

    def keep(fig, path, caption, *args, **kwargs):
        seen["fig"], seen["caption"] = fig, caption
        return save(fig, path, caption, *args, **kwargs)

    save = save_through(keep)
    return seen


def test_one_pore_far_larger_than_the_rest_leaves_the_histogram_readable(tmp_path, rng, drawn):
    """A connected pore of radius 480 voxels among objects of 1-8 made 960 bars of 0.5 voxel (minutes to draw;
    the small objects a sliver at the left): the axis ends where 99.5 % of the objects are, and the figure says
    how many lie beyond and how far."""
    radii = np.r_[1 + 7 * rng.random(2000), 480.0]
    figures.size_histogram({"objects": _table(radii, rng)}, tmp_path / "h.png", voxel_size=(30.0,) * 3)
    ax = drawn["fig"].axes[0]
    bars = [p for p in ax.patches]
    assert len(bars) <= figures.MAX_BINS and ax.get_xlim()[1] <= 9
    assert sum(b.get_height() for b in bars) == 2000  # every object under 8 voxels counted, 0.5 voxel a bin
    assert {round(b.get_width(), 6) for b in bars} == {0.5}
    assert any(t.get_text() == "+ 1 larger\n(up to 480 voxels)" for t in ax.texts)
    assert "1 object larger than 8 voxels (up to 480) lies beyond the axis" in drawn["caption"]
    assert "beyond the axis" in json.loads((tmp_path / "captions.json").read_text())["h"]


def test_objects_of_up_to_60_voxels_keep_half_voxel_bins_to_the_largest(tmp_path, rng, drawn):
    radii = np.r_[1 + 7 * rng.random(500), 59.2]
    figures.size_histogram({"objects": _table(radii, rng)}, tmp_path / "h.png")
    ax = drawn["fig"].axes[0]
    assert len(ax.patches) == 120 and not ax.texts and "beyond" not in drawn["caption"]
    assert "bins of 0.5 voxel;" in drawn["caption"]


def test_the_sphericity_scatter_of_many_objects_draws_a_seeded_sample(tmp_path, rng, drawn):
    """400,000 objects made one solid block of marks (11 s to draw): above 20,000 a panel, a seeded random sample
    of 20,000 is drawn, the title and the caption say so; the colour scale stays the objects' whole range."""
    t = _table(1 + 7 * rng.random(30_000), rng)
    t["mean_gray"][0] = 1e4  # beyond the sample's range: the colour limits come from every object
    figures.sphericity_figure({"objects": t}, tmp_path / "s.png")
    ax = drawn["fig"].axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 20_000
    assert ax.get_title() == "objects (30,000; 20,000 drawn)"
    assert "a random sample of 20,000 is drawn (seeded" in drawn["caption"]
    clim = ax.collections[0].get_clim()
    assert clim == pytest.approx(tuple(np.percentile(t["mean_gray"], [2, 98])))
    first = ax.collections[0].get_offsets().copy()
    figures.sphericity_figure({"objects": t}, tmp_path / "s2.png")
    np.testing.assert_array_equal(drawn["fig"].axes[0].collections[0].get_offsets(), first)  # the same sample
    figures.sphericity_figure({"objects": _table(1 + 7 * rng.random(500), rng)}, tmp_path / "few.png")
    assert drawn["fig"].axes[0].get_title() == "objects (500)" and "random sample" not in drawn["caption"]
