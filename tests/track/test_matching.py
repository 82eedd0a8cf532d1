"""Matching on hand-made label volumes: every status, by overlap and by distance."""

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.objects import measure_objects
from tomoseg.track.matching import MatchOptions, carry_labels, match

ONE_NM = (1.0, 1.0, 1.0)  # as track measures its tables (in 1 nm voxels, the nm columns blanked after where unknown)

def ball(shape, centre, r):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= r * r


def scene():
    shape = (30, 60, 60)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[ball(shape, (15, 10, 10), 3)] = 1      # persists, grows
    after[ball(shape, (15, 10, 10), 4)] = 1
    before[ball(shape, (15, 10, 45), 3)] = 2      # vanishes
    after[ball(shape, (15, 45, 45), 3)] = 2       # appears
    before[ball(shape, (15, 30, 26), 3)] = 3      # 3 and 4 merge
    before[ball(shape, (15, 30, 34), 3)] = 4
    after[ball(shape, (15, 30, 26), 3) | ball(shape, (15, 30, 34), 3) | ball(shape, (15, 30, 30), 2.5)] = 3
    before[ball(shape, (15, 48, 12), 4)] = 5      # splits in two
    after[ball(shape, (15, 48, 9), 2)] = 4
    after[ball(shape, (15, 48, 15), 2)] = 5
    return before, after


def statuses(links):
    return {(tuple(b), tuple(a)): s for b, a, s in links}


def test_every_status():
    before, after = scene()
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4))
    assert statuses(links) == {((1,), (1,)): "persisting", ((2,), ()): "vanished", ((), (2,)): "appeared",
                               ((3, 4), (3,)): "merged", ((5,), (4, 5)): "split"}


def test_distance_tolerance_pairs_objects_that_do_not_overlap():
    shape = (20, 20, 20)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[ball(shape, (10, 10, 6), 1.5)] = 1
    after[ball(shape, (10, 10, 10), 1.5)] = 1  # 4 voxels away, no overlap
    tb, ta = measure_objects(before, voxel_size=(10, 10, 10)), measure_objects(after, voxel_size=(10, 10, 10))
    far, _ = match(before, after, tb, ta, np.eye(4), voxel_size=(10, 10, 10), options=MatchOptions(tolerance_nm=30))
    near, _ = match(before, after, tb, ta, np.eye(4), voxel_size=(10, 10, 10), options=MatchOptions(tolerance_nm=50))
    assert sorted(s for _, _, s in far) == ["appeared", "vanished"]
    assert [s for _, _, s in near] == ["persisting"]


def test_a_touch_of_a_voxel_beyond_the_tolerance_pairs_nothing():
    """A dissolved object (r 2.2) and a new neighbour (r 3.7) 6 voxels away that share a voxel after the
    transform are no pair: BEFORE's vanished, AFTER's appeared (they were reported as one object that persisted,
    grew and moved 5.6 voxels). A true pair beside them, moved 4 voxels relative to the sample (beyond the
    3-voxel tolerance) and grown +2, still pairs by its overlap (over min_overlap of the smaller object)."""
    shape = (24, 40, 60)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    m = np.eye(4)
    m[:3, 3] = (1, -2, 3)  # BEFORE voxel -> AFTER voxel
    before[ball(shape, (11, 20, 12), 2.2)] = 1           # dissolves ...
    after[ball(shape, (12, 18, 15 + 5.6), 3.7)] = 1      # ... and a new one lands beside where it was
    before[ball(shape, (11, 20, 38), 4)] = 2             # persists, grown +2, 4 voxels from where the transform puts it
    after[ball(shape, (12, 18, 41 + 4), 6)] = 2
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, info = match(before, after, tb, ta, m, options=MatchOptions(tolerance_nm=3))
    touch = dict(zip(info["overlap_keys"].tolist(), info["overlap_voxels"].tolist())).get(1 << 32 | 1, 0)
    assert 1 <= touch <= 2  # the scene is what it says: the two touch by a voxel or two
    assert statuses(links) == {((1,), ()): "vanished", ((), (1,)): "appeared", ((2,), (2,)): "persisting"}


def test_carry_labels_translation():
    labels = np.zeros((10, 12, 14), np.uint32)
    labels[2:4, 3:5, 4:6] = 7
    m = np.eye(4)
    m[:3, 3] = (1, 2, -3)
    out = carry_labels(labels, m, labels.shape, slab=3)
    assert np.array_equal(np.argwhere(out == 7), np.argwhere(labels == 7) + [1, 2, -3])


def test_one_to_one_is_optimal_not_greedy():
    """The assignment maximizes the total overlap score (Dice): B1-A2 + B2-A1 beats B1-A1 alone."""
    shape = (10, 10, 30)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[4:6, 4:6, 0:10] = 1
    before[4:6, 4:6, 12:16] = 2
    after[4:6, 4:6, 4:14] = 1   # Dice with B1 0.6, with B2 0.29
    after[4:6, 4:6, 0:4] = 2    # Dice with B1 0.57
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4), options=MatchOptions(tolerance_nm=1))
    assert statuses(links) == {((1,), (2,)): "persisting", ((2,), (1,)): "persisting"}


def test_merge_of_two_equal_objects_sums_both():
    from tomoseg.track.matching import _edge_flags
    from tomoseg.track.tracking import link_table

    shape = (20, 30, 40)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[ball(shape, (10, 15, 15), 3)] = 1
    before[ball(shape, (10, 15, 23), 3)] = 2  # same volume as 1
    after[ball(shape, (10, 15, 15), 3) | ball(shape, (10, 15, 23), 3) | ball(shape, (10, 15, 19), 2)] = 1
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4))
    eb, ea = _edge_flags(tb, ta, np.eye(4), shape, shape, 1.0)
    t = link_table(links, tb, ta, eb, ea, np.eye(4), voxel_size=(1, 1, 1))
    assert list(t["status"]) == ["merged", "merged"]
    v = tb["volume_vox"]
    assert t["delta_volume_nm3"][0] == ta["volume_vox"][0] - v[0] - v[1]


def test_one_strong_pair_beats_two_weak_ones():
    """B1 and A1 are the same object; B2 and A2 each touch it (less than ``min_overlap`` inside). The
    assignment must pair B1 with A1 and leave B2 vanished and A2 appeared. (It used to price a pair that is no
    candidate so high that any complete assignment won: B1-A2 and B2-A1, each a few voxels of overlap.)"""
    shape = (20, 40, 50)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[ball(shape, (10, 20, 20), 5)] = 1
    after[ball(shape, (10, 20, 20), 5)] = 1
    before[ball(shape, (10, 20, 28), 4)] = 2   # a few voxels inside A1, most of it outside
    after[ball(shape, (10, 20, 12), 4)] = 2    # a few voxels inside B1
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4), options=MatchOptions(tolerance_nm=1))
    assert statuses(links) == {((1,), (1,)): "persisting", ((2,), ()): "vanished", ((), (2,)): "appeared"}


def test_many_to_many_keeps_every_object_in_the_table():
    """Many to many: small B2 merges into A1 while small A2 splits off B1. Every object of both scans has a
    row (A2 used to be left out of the table, so of matches.csv and the match-ID image), with its status."""
    from tomoseg.track.matching import _edge_flags
    from tomoseg.track.tracking import link_table

    shape = (20, 40, 40)
    before = np.zeros(shape, np.uint32)
    after = np.zeros(shape, np.uint32)
    before[ball(shape, (10, 20, 14), 5)] = 1
    before[ball(shape, (10, 20, 24), 2)] = 2                                      # wholly inside A1
    after[ball(shape, (10, 20, 16), 5) | ball(shape, (10, 20, 24), 2.5)] = 1
    after[ball(shape, (10, 20, 9), 1.5)] = 2                                      # wholly inside B1
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4))
    assert statuses(links) == {((1, 2), (1, 2)): "merged"}
    eb, ea = _edge_flags(tb, ta, np.eye(4), shape, shape, 1.0)
    t = link_table(links, tb, ta, eb, ea, np.eye(4), voxel_size=(1, 1, 1))
    rows = sorted(zip(t["before_label"].tolist(), t["after_label"].tolist(), t["status"]))
    assert rows == [(1, 1, "merged"), (1, 2, "split"), (2, 1, "merged")]
    assert set(t["match_id"]) == {1} and list(t["group_before"]) == [2, 2, 2] and list(t["group_after"]) == [2] * 3
    total_b, total_a = tb["volume_vox"].sum(), ta["volume_vox"].sum()
    assert np.all(t["delta_volume_nm3"] == total_a - total_b)


@pytest.mark.parametrize("block", [(5, 9, 11), (64, 256, 256)], ids=["small-blocks", "one-block"])
def test_carried_overlaps_block_by_block_equal_the_whole_volume_carried(tmp_path, block):
    """Carried block by block, each block from its own crop of BEFORE labels on disk (Zarr), the overlaps and
    carried counts equal those of the whole volume carried at once, under a rotation about every axis (and
    different shapes of the two scans)."""
    import zarr

    from tomoseg.objects import overlap_pairs
    from tomoseg.track.matching import carried_overlaps
    from tomoseg.track.registration import _rotation_z

    rng = np.random.default_rng(3)
    before = ndimage.label(ndimage.uniform_filter(rng.random((24, 40, 36)), 3) > 0.55)[0].astype(np.uint32)
    after = ndimage.label(ndimage.uniform_filter(rng.random((22, 38, 42)), 3) > 0.55)[0].astype(np.uint32)
    tilt = np.eye(4)
    c, s = np.cos(np.radians(4)), np.sin(np.radians(4))
    tilt[:2, :2] = [[c, -s], [s, c]]  # about x
    m = _rotation_z(23.0, np.array(before.shape) / 2) @ tilt
    m[:3, 3] += (1.3, -2.4, 3.1)
    store = zarr.open_array(str(tmp_path / "b.zarr"), mode="w", shape=before.shape, chunks=(8, 8, 8), dtype="u4")
    store[:] = before
    whole = carry_labels(before, m, after.shape)
    overlaps, carried = carried_overlaps(store, after, m, block=block, threads=2)
    assert overlaps and overlaps == overlap_pairs(after, whole)
    ids, n = np.unique(whole[whole > 0], return_counts=True)
    assert carried == dict(zip(ids.tolist(), n.tolist()))


@pytest.mark.parametrize("tolerance", [None, 8.0])
def test_links_partition_both_scans_on_crowded_blobs(tolerance):
    """Hundreds of touching, crowded objects under a rotation: every object of each scan is in exactly one link,
    and each status has its shape (a pair 1-1, a merge 2+ before, a split 2+ after, vanished 1-0, appeared
    0-1); the links come in order of their lowest BEFORE label."""
    from tomoseg.track.registration import _rotation_z

    rng = np.random.default_rng(11)
    before = ndimage.label(ndimage.uniform_filter(rng.random((24, 50, 50)), 3) > 0.56)[0].astype(np.uint32)
    after = ndimage.label(ndimage.uniform_filter(rng.random((24, 50, 50)), 3) > 0.56)[0].astype(np.uint32)
    m = _rotation_z(6.0, np.array(before.shape) / 2)
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, m, options=MatchOptions(tolerance_nm=tolerance, min_overlap=0.1))
    assert sorted(b for bs, _, _ in links for b in bs) == tb["label"].tolist()
    assert sorted(a for _, as_, _ in links for a in as_) == ta["label"].tolist()
    shapes = {"persisting": lambda nb, na: nb == na == 1, "merged": lambda nb, na: nb >= 2 and na >= 1,
              "split": lambda nb, na: nb == 1 and na >= 2, "vanished": lambda nb, na: (nb, na) == (1, 0),
              "appeared": lambda nb, na: (nb, na) == (0, 1)}
    assert all(shapes[s](len(bs), len(as_)) for bs, as_, s in links)
    assert {s for *_, s in links} == set(shapes) if tolerance is None else {s for *_, s in links} <= set(shapes)
    firsts = [min(bs) for bs, _, s in links if s not in ("vanished", "appeared")]
    assert firsts == sorted(firsts) and len(links) > 300


def test_links_are_arrays_that_read_back_as_tuples():
    """match() gives Links (arrays); iterated they are the (before, after, status) tuples, links_from reads
    those back to equal arrays, link_table takes either, and a link whose objects do not fit its status is
    refused with a message."""
    from tomoseg.errors import TomosegError
    from tomoseg.track.matching import Links, _edge_flags, links_from
    from tomoseg.track.tracking import link_table

    before, after = scene()
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, np.eye(4))
    assert isinstance(links, Links) and len(links) == 5
    back = links_from(list(links))
    for field in ("status", "before", "before_start", "after", "after_start"):
        assert np.array_equal(getattr(back, field), getattr(links, field))
    eb, ea = _edge_flags(tb, ta, np.eye(4), before.shape, after.shape, 1.0)
    a = link_table(links, tb, ta, eb, ea, np.eye(4), voxel_size=(1, 1, 1))
    b = link_table(list(links)[::-1], tb, ta, eb, ea, np.eye(4), voxel_size=(1, 1, 1))  # any order in, one out
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)
    with pytest.raises(TomosegError, match="link 0 is persisting with 2 BEFORE and 1 AFTER objects"):
        links_from([([1, 2], [3], "persisting")])
    with pytest.raises(TomosegError, match="'moved' is not one of"):
        links_from([([1], [3], "moved")])


def test_group_totals_count_each_object_of_a_group_once():
    """The totals behind the merges' and splits' changes and the radius figure: per match ID, the sum of its
    objects' volumes in each scan, each object once although a merge repeats its AFTER object on every row
    (the rule written out plainly, on crowded blobs with merges, splits and many to many)."""
    from tomoseg.track.matching import _edge_flags
    from tomoseg.track.registration import _rotation_z
    from tomoseg.track.tracking import group_totals, link_table

    rng = np.random.default_rng(12)
    before = ndimage.label(ndimage.uniform_filter(rng.random((24, 50, 50)), 3) > 0.56)[0].astype(np.uint32)
    after = ndimage.label(ndimage.uniform_filter(rng.random((24, 50, 50)), 3) > 0.56)[0].astype(np.uint32)
    m = _rotation_z(6.0, np.array(before.shape) / 2)
    tb, ta = measure_objects(before, voxel_size=ONE_NM), measure_objects(after, voxel_size=ONE_NM)
    links, _ = match(before, after, tb, ta, m, options=MatchOptions(min_overlap=0.1))
    t = link_table(links, tb, ta, *_edge_flags(tb, ta, m, before.shape, after.shape, 1.0), m, voxel_size=(1, 1, 1))
    groups = np.isin(t["status"], ["merged", "split"])
    assert len(np.unique(t["match_id"][groups])) > 10
    ids, vb, va = group_totals(t, groups, "volume_vox")
    for k, mid in enumerate(ids):
        rows = groups & (t["match_id"] == mid)
        b = {int(lab): v for lab, v in zip(t["before_label"][rows], t["before_volume_vox"][rows]) if lab}
        a = {int(lab): v for lab, v in zip(t["after_label"][rows], t["after_volume_vox"][rows]) if lab}
        assert (vb[k], va[k]) == (sum(b.values()), sum(a.values()))
    changed = groups & (t["group_before"] + t["group_after"] > 2)
    at = np.searchsorted(ids, t["match_id"][changed])
    assert np.array_equal(t["delta_volume_nm3"][changed], (va - vb)[at])


def test_refit_on_objects_residual_in_nm_uses_each_scans_voxel_size():
    """AFTER voxels twice the BEFORE's (40 vs 20 nm) and a known shift of (200, -100, 300) nm: the refit maps
    BEFORE voxels to AFTER voxels, and its nm residual is the AFTER voxels' residual times 40 nm, within the
    noise added to the AFTER centroids (10 nm per point), not half of it as with the BEFORE's voxel size."""
    from tomoseg.track.matching import refine_on_objects

    rng = np.random.default_rng(0)
    n = 40
    vs_b, vs_a = np.array([20.0, 20.0, 20.0]), np.array([40.0, 40.0, 40.0])
    shift_nm = np.array([200.0, -100.0, 300.0])
    pts_b = rng.uniform(10, 90, (n, 3))                       # BEFORE voxels
    noise = rng.normal(size=(n, 3))
    noise *= 10.0 / np.linalg.norm(noise, axis=1, keepdims=True)  # 10 nm each
    pts_a = (pts_b * vs_b + shift_nm + noise) / vs_a          # AFTER voxels

    def table(pts):
        return {"label": np.arange(1, n + 1), "volume_vox": np.full(n, 100), "touches_border": np.zeros(n, bool),
                **{f"centroid_{a}": pts[:, k] for k, a in enumerate("zyx")}}

    links = [((k,), (k,), "persisting") for k in range(1, n + 1)]
    m, info = refine_on_objects(table(pts_b), table(pts_a), links, np.eye(4), voxel_size=vs_b,
                                after_voxel_size=vs_a, similarity=True)
    assert info["used"] == n
    expected = np.eye(4)
    expected[:3, :3] = np.diag(vs_b / vs_a)
    expected[:3, 3] = shift_nm / vs_a
    np.testing.assert_allclose(m[:3, :3], expected[:3, :3], atol=0.002)
    np.testing.assert_allclose(m[:3, 3] * vs_a, shift_nm, atol=3.0)  # nm, a fraction of the 10 nm noise
    assert info["residual_nm"] == pytest.approx(info["residual_vox"] * 40.0, rel=1e-9)
    assert 5.0 < info["residual_nm"] < 10.0


def test_link_table_of_tables_without_nm_keeps_nm_changes_nan():
    """Tables measured without a voxel size have NaN nm columns (measure_objects' convention): the changes in nm
    (volume, radius) of every link, merges and splits included, stay NaN instead of group sums of zeros (a
    merge's delta_volume_nm3 was 0, its delta_radius_nm 0); the voxel columns are as with a voxel size."""
    from tomoseg.track.matching import _edge_flags
    from tomoseg.track.tracking import group_totals, link_table

    shape = (20, 40, 60)
    before, after = np.zeros(shape, np.uint32), np.zeros(shape, np.uint32)
    before[ball(shape, (10, 20, 14), 4)] = 1  # two balls merge into one
    before[ball(shape, (10, 20, 24), 4)] = 2
    after[ball(shape, (10, 20, 19), 7)] = 1
    before[ball(shape, (10, 20, 46), 4)] = 3  # persisting, grown
    after[ball(shape, (10, 20, 46), 5)] = 2
    m = np.eye(4)
    tb, ta = measure_objects(before), measure_objects(after)
    assert np.isnan(tb["volume_nm3"]).all()
    links, _ = match(before, after, tb, ta, m)
    assert statuses(links) == {((1, 2), (1,)): "merged", ((3,), (2,)): "persisting"}
    t = link_table(links, tb, ta, *_edge_flags(tb, ta, m, shape, shape, 1.0), m, voxel_size=(1, 1, 1))
    for column in ("delta_volume_nm3", "delta_radius_nm", "delta_volume_rel", "before_volume_nm3"):
        assert np.isnan(t[column]).all(), column
    _, vb, va = group_totals(t, t["status"] == "merged")
    assert np.isnan(vb).all() and np.isnan(va).all()
    _, vb, va = group_totals(t, t["status"] == "merged", "volume_vox")
    assert vb[0] == tb["volume_vox"][0] + tb["volume_vox"][1] and va[0] == ta["volume_vox"][0]
