"""The track radius figure as a scientist sees it (the look review): its legend hides no object, its ticks
read in the unit the radii reach."""

import numpy as np

from tomoseg.track import figures


def _matches(radius_before_nm, radius_after_nm, groups: bool = False):
    """A link table of persisting pairs; with ``groups``, one merge (2 -> 1 objects) and one split (1 -> 2) too,
    as a phantom pair has (their legend entries are the longest)."""
    n = len(radius_before_nm)
    rb, ra = np.asarray(radius_before_nm, float), np.asarray(radius_after_nm, float)
    ids = np.arange(1, n + 1)
    t = {"match_id": ids, "before_label": ids, "after_label": ids, "status": np.array(["persisting"] * n),
         "before_radius_nm": rb, "after_radius_nm": ra}
    if groups:  # merged: before 101, 102 -> after 101; split: before 103 -> after 103, 104
        t = {"match_id": np.r_[ids, 101, 101, 103, 103], "before_label": np.r_[ids, 101, 102, 103, 103],
             "after_label": np.r_[ids, 101, 101, 103, 104],
             "status": np.r_[t["status"], ["merged"] * 2, ["split"] * 2],
             "before_radius_nm": np.r_[rb, 90, 95, 114, 114], "after_radius_nm": np.r_[ra, 121, 121, 70, 50]}
    m = len(t["match_id"])
    return {**t, "edge": np.zeros(m, int), "small": np.zeros(m, int),
            "before_volume_nm3": 4 / 3 * np.pi * t["before_radius_nm"] ** 3,
            "after_volume_nm3": 4 / 3 * np.pi * t["after_radius_nm"] ** 3}


def _drawn(monkeypatch, draw, texts_outside):
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
        seen["outside"] = texts_outside(fig)
        seen["texts"] = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    draw()
    return seen


def test_radius_legend_hides_no_object(monkeypatch, tmp_path, texts_outside):
    """A phantom pair's object that grew from 85 to 116 nm lay under the legend's translucent box in the upper
    left (the corner where grown objects are drawn). The legend is now under the axes, in one column (in two, its
    merge and split entries ran past both edges of the column-wide figure)."""
    t = _matches([48, 52, 72, 83, 85, 95, 99, 111, 127], [79, 52, 74, 84, 116, 74, 97, 112, 127], groups=True)
    seen = _drawn(monkeypatch, lambda: figures.radius_figure(t, tmp_path / "r.png"), texts_outside)
    assert seen["legends"] and seen["outside"] == []  # (in two columns the legend ran past both edges)
    for box in seen["legends"]:
        assert not any(box.overlaps(a) for a in seen["axes"])
        for xy in seen["points"]:
            assert not any(box.contains(x, y) for x, y in xy)


def test_radius_ticks_of_a_lab_scan_in_micrometres(monkeypatch, tmp_path, texts_outside):
    """At 50 µm voxels the axes read 0 to 250000 nm; now 0 to 250 µm."""
    t = _matches([60e3, 90e3, 200e3], [62e3, 95e3, 180e3])
    seen = _drawn(monkeypatch, lambda: figures.radius_figure(t, tmp_path / "r.png"), texts_outside)
    assert "equivalent radius before (µm)" in seen["texts"] and "equivalent radius after (µm)" in seen["texts"]
    ticks = [float(x) for x in seen["texts"] if x.replace(".", "").isdigit()]
    assert ticks and max(ticks) < 1000


def test_track_page_says_its_inputs_and_growth_in_words(tmp_path):
    """track.html began with the JSON of the run's arguments ({"before": "b.tif", ..., "transform": null}), its
    growth table's headers were summary.json's keys, and its median volume change read 1.75 for +175 %."""
    from tomoseg.cli import main

    d = tmp_path
    assert main(["phantom", str(d / "b.tif"), "--labels", str(d / "bl.tif"), "--pair", str(d / "a.tif"),
                 "--pair-labels", str(d / "al.tif"), "--shape", "32", "96", "96", "--seed", "1", "-q"]) == 0
    assert main(["track", str(d / "b.tif"), str(d / "a.tif"), "--before-labels", str(d / "bl.tif"),
                 "--after-labels", str(d / "al.tif"), "--out", str(d / "run"), "-q"]) == 0
    page = (d / "run" / "track.html").read_text(encoding="utf-8")
    assert "{&quot;" not in page and "null" not in page
    assert f"BEFORE scan {d / 'b.tif'}; AFTER scan {d / 'a.tif'}; BEFORE objects {d / 'bl.tif'}; AFTER objects " \
           f"{d / 'al.tif'}; tomoseg " in page
    assert 'median ΔV/V <span class="note">median_delta_volume_rel</span>' in page
    import json
    import re

    growth = json.loads((d / "run" / "summary.json").read_text(encoding="utf-8"))["growth_by_size_class"]
    shown = [g["median_delta_volume_rel"] for g in growth if g["median_delta_volume_rel"] is not None]
    assert shown and all(f"<td>{100 * v:+.3g} %</td>" in page for v in shown)
    assert re.search(r"<td>[+-][\d.]+ %</td>", page)


def test_a_lab_scans_lengths_read_in_the_unit_they_reach(tmp_path):
    """At 50 µm voxels track.html gave the shift of 40 voxels as 2000 µm, the growth of one voxel of radius as
    50000 nm, and the change map's axes ran 0 to 4000 µm: each now in the unit its values reach
    (io.units.readable_unit, as the analysis report writes them): 2 mm, 50 µm, 0 to 4 mm. (matches.csv keeps nm
    in its column names, as analyze's objects.csv does: one unit per column.)"""
    import re

    from tomoseg.track import track, write_tracking

    shape = (24, 64, 96)
    grid = np.indices(shape).astype(float)
    before, after = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for k, x in enumerate([8, 18, 28, 38, 13, 23, 33]):
        c = np.array([12.0, 14 + 18 * (k // 4), x])
        before[sum((g - v) ** 2 for g, v in zip(grid, c)) <= 3.0 ** 2] = 1
        after[sum((g - v) ** 2 for g, v in zip(grid, c + (0, 0, 40))) <= 4.0 ** 2] = 1  # moved 40, grown by 1
    m = np.eye(4)
    m[2, 3] = 40
    vs = (5e4,) * 3
    result = track(before * 80, after * 80, before_labels=before, after_labels=after, transform=m, voxel_size=vs)
    assert result.summary["objects_by_status"]["persisting"]["events"] == 7
    write_tracking(result, tmp_path / "out", shape=shape, voxel_size=vs)
    page = (tmp_path / "out" / "track.html").read_text(encoding="utf-8")
    assert "translation z, y, x of the volume&#x27;s centre (mm)</td><td>0, 0, 2</td>" in page
    assert "mean Δradius (µm)" in page and "mean Δradius (nm)" not in page
    growth = [float(v) for v in re.findall(r"<tr><td>[\d.]+</td><td>[\d.–]+</td><td>[1-9]\d*</td><td>([\d.]+)</td>",
                                           page)]
    assert growth and all(40 < v < 60 for v in growth), growth  # one voxel of radius: 50 µm
    svg = (tmp_path / "out" / "figures" / "track_map.svg").read_text(encoding="utf-8")
    assert "x (mm)" in svg and "z (mm)" in svg and "µm)" not in svg
