import dataclasses

import numpy as np
import pytest

import tomoseg

from tomoseg.errors import TomosegError
from tomoseg.metrics import ConfusionMatrix, confusion_matrix
from tomoseg.objects import (AnalysisOptions, analyze, detection_scores, label_chunked, label_objects,
                             match_objects, measure_objects, overlap_pairs)


def ball(r, pad=3, centre_offset=(0.0, 0.0, 0.0)):
    n = int(2 * np.ceil(r) + 2 * pad + 1)
    c = (n - 1) / 2
    z, y, x = np.mgrid[:n, :n, :n] - c
    z, y, x = z - centre_offset[0], y - centre_offset[1], x - centre_offset[2]
    return (z * z + y * y + x * x <= r * r).astype(np.uint32)


def test_digitized_sphere_of_radius_3_has_123_voxels():
    assert ball(3).sum() == 123


@pytest.mark.parametrize("r", [3, 4, 5, 8, 12])
def test_equivalent_radius_within_3_percent(r):
    t = measure_objects(ball(r))
    assert abs(t["equivalent_radius_vox"][0] / r - 1) <= 0.03


@pytest.mark.parametrize("r", [4, 6, 10])
def test_mesh_sphericity_of_round_objects(r):
    assert measure_objects(ball(r))["sphericity_mesh"][0] >= 0.9


def test_sphericity_is_the_public_formula_to_the_last_bit():
    """The table's sphericities are wadell_sphericity of its own volume and surface columns; 1 for an exact
    sphere, NaN for no surface."""
    from tomoseg.objects.measure import wadell_sphericity

    r = 2.5
    assert wadell_sphericity(4 / 3 * np.pi * r ** 3, 4 * np.pi * r ** 2) == pytest.approx(1.0, rel=1e-12)
    assert np.isnan(wadell_sphericity(3.0, 0.0))
    t = measure_objects(ball(6), voxel_size=(10.0, 20.0, 30.0))
    assert t["sphericity_voxel"][0] == wadell_sphericity(t["volume_nm3"][0], t["surface_voxel_nm2"][0])


def test_voxel_sphericity_tends_to_two_thirds():
    """The paper's supporting note: voxel faces bias Wadell's sphericity toward 2/3."""
    assert abs(measure_objects(ball(20))["sphericity_voxel"][0] / (2 / 3) - 1) <= 0.03


def test_physical_units_follow_the_voxel_size():
    t = measure_objects(ball(5), voxel_size=(10.0, 20.0, 30.0))
    n = t["volume_vox"][0]
    assert t["volume_nm3"][0] == pytest.approx(n * 6000.0)
    assert t["equivalent_radius_nm"][0] == pytest.approx((3 * n * 6000 / (4 * np.pi)) ** (1 / 3))
    c = (ball(5).shape[0] - 1) / 2
    assert t["centroid_z_nm"][0] == pytest.approx(c * 10) and t["centroid_x_nm"][0] == pytest.approx(c * 30)
    # a single voxel has faces of 2*(20*30 + 10*30 + 10*20) nm^2
    one = np.zeros((3, 3, 3), np.uint32)
    one[1, 1, 1] = 1
    assert measure_objects(one, voxel_size=(10, 20, 30))["surface_voxel_nm2"][0] == pytest.approx(2200.0)


def test_mean_gray_and_probability():
    lab = np.zeros((6, 6, 6), np.uint32)
    lab[1:3, 1:3, 1:3] = 1
    gray = np.full(lab.shape, 100.0)
    gray[1:3, 1:3, 1:3] = 40
    prob = np.zeros(lab.shape, np.uint8)
    prob[1:3, 1:3, 1:3] = 204
    prob[1, 1, 1] = 255
    t = measure_objects(lab, intensity=gray, probability=prob)
    assert t["mean_gray"][0] == 40
    assert t["max_probability"][0] == 1.0
    assert t["mean_probability"][0] == pytest.approx((7 * 204 + 255) / 8 / 255)


def test_border_and_size_exclusions():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[0:3, 5:8, 5:8] = 1       # touches the border (27 voxels)
    lab[8:12, 8:12, 8:12] = 1    # inside (64)
    lab[15, 15, 15] = 1          # inside, 1 voxel
    lab[15:17, 2:4, 15:17] = 1   # inside, 8 voxels: kept (the paper drops objects under 8)
    res = analyze(lab, voxel_size=(29.33,) * 3)
    assert res.summary["objects_all"] == 4
    assert sorted(res.selected["volume_vox"].tolist()) == [8, 64]
    assert res.summary["excluded_border"] == 1 and res.summary["excluded_small"] == 1
    kept = analyze(lab, options=AnalysisOptions(exclude_border=False, min_voxels=1))
    assert len(kept.selected["label"]) == 4
    lab[0, 0, 0] = 1             # small and at the border: counted once, with the border
    res = analyze(lab)
    s = res.summary
    assert (s["excluded_border"], s["excluded_small"]) == (2, 1)
    assert s["objects"] + s["excluded_border"] + s["excluded_small"] == s["objects_all"] == 5
    kept_border = analyze(lab, options=AnalysisOptions(exclude_border=False)).summary
    assert (kept_border["excluded_border"], kept_border["excluded_small"]) == (0, 2)


def test_six_and_twenty_six_connectivity():
    m = np.zeros((4, 4, 4), bool)
    m[1, 1, 1] = m[2, 2, 2] = True
    assert label_objects(m)[1] == 1
    assert label_objects(m, connectivity=6)[1] == 2


def _crossing_mask():
    """Objects across chunk faces, edges and corners of a 10x10x10 chunk grid."""
    m = np.zeros((30, 30, 30), bool)
    m[8:13, 3:6, 3:6] = True          # crosses a z face
    m[8:12, 8:12, 3:5] = True         # crosses a z-y edge
    m[18:22, 18:22, 18:22] = True     # crosses a corner
    m[9, 9, 20] = m[10, 10, 21] = True  # diagonal neighbours across a z-y edge (26-connected only)
    m[19, 25, 9] = m[20, 26, 10] = True  # corner-diagonal across z, y and x chunk faces... y stays: z,x faces
    m[29, 0, 0] = True
    return m


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_chunked_labelling_equals_scipy(tmp_path, connectivity, rng, threads):
    import zarr

    cases = [(_crossing_mask(), (10, 10, 10)), (rng.random((30, 30, 30)) > 0.75, (10, 10, 10)),
             (rng.random((23, 31, 17)) > 0.7, (10, 8, 6))]  # chunks cut short at the far faces
    for mask, chunks in cases:
        ref, n = label_objects(mask, connectivity=connectivity)
        count = label_chunked(mask, tmp_path / "l.zarr", chunks=chunks, connectivity=connectivity,
                              threads=threads)
        out = zarr.open_array(str(tmp_path / "l.zarr"), path="0", mode="r")[:]
        assert count == n
        np.testing.assert_array_equal(out, ref)  # equal, even in numbering
        import shutil

        shutil.rmtree(tmp_path / "l.zarr")


def test_chunked_labelling_holds_the_faces_of_a_few_chunks_at_a_time(tmp_path, rng, monkeypatch):
    """Faces are paired as soon as the chunks on both sides are in: a 6x6x6 grid of chunks holds the faces of
    at most two boundaries per axis at once, not those of the whole volume (a terabyte's would be gigabytes)."""
    from tomoseg.objects import labelling

    held = []
    plain = labelling._Faces.add

    def add(self, *a, **k):
        plain(self, *a, **k)
        held.append(len({key[:3] for key in self.parts}))

    monkeypatch.setattr(labelling._Faces, "add", add)
    mask = rng.random((48, 48, 48)) > 0.8
    ref, n = label_objects(mask)
    assert label_chunked(mask, tmp_path / "l.zarr", chunks=(8, 8, 8)) == n
    assert len(held) == 216 and max(held) <= 6 and held[-1] == 0


@pytest.mark.parametrize("pieces", ["kept", "some kept", "none kept"])
@pytest.mark.parametrize("given", ["mask", "probability map", "mask and probability"])
def test_chunked_analysis_equals_in_memory(rng, given, pieces, monkeypatch):
    """Objects within one chunk are measured as the labels are written; those that cross chunks from the pieces
    each chunk kept, or, beyond the pieces' memory budget, from the volumes afterwards: every column equals the
    in-memory analysis, the confidence columns from a probability map labelled or given beside."""
    from tomoseg.objects import analysis
    from tomoseg.synthetic import make_phantom

    monkeypatch.setattr(analysis, "PIECE_BYTES", {"kept": 2**29, "some kept": 3000, "none kept": 0}[pieces])

    ph = make_phantom((48, 128, 128), rng=4)
    prob = np.where(ph.labels > 0, 150, 20).astype(np.uint8) + rng.integers(0, 100, ph.labels.shape, np.uint8)
    volume = prob if given == "probability map" else ph.labels
    probability = prob if given == "mask and probability" else None
    a = analyze(volume, intensity=ph.image, probability=probability, voxel_size=(29.33,) * 3)
    b = analyze(volume, intensity=ph.image, probability=probability, voxel_size=(29.33,) * 3,
                options=AnalysisOptions(in_memory_voxels=0, chunks=(16, 40, 40)))
    assert np.isfinite(a.objects["mean_probability"]).all() == (given != "mask")
    assert a.summary == b.summary
    for c in a.objects:
        np.testing.assert_allclose(a.objects[c], b.objects[c], equal_nan=True)
    # and the table agrees with the phantom's truth
    assert len(a.objects["label"]) == len(ph.objects["label"])


def _interlocked(at) -> np.ndarray:
    """Two objects (6-connected) in one 5^3 box, not touching: each spans the whole box."""
    a = np.zeros((5, 5, 5), bool)
    a[:, :, 0] = True
    a[4, 4, 0] = a[3, 4, 0] = a[4, 3, 0] = False
    a[0, 0, :] = True
    b = np.zeros((5, 5, 5), bool)
    b[:, :, 4] = True
    b[0, 0, 4] = b[0, 1, 4] = b[1, 0, 4] = False
    b[4, 4, :4] = True
    block = np.zeros((5, 5, 5), np.uint8)
    block[a], block[b] = 1, 2
    return block


def test_objects_across_chunks_sharing_one_box_are_measured_each_as_in_memory():
    """The objects that cross chunks are measured from their pieces in tables of many objects (one table an
    object cost about 5 KB each: 200 MB of 614 k objects' analyze); two of them with one bounding box are
    assembled together and each measured as itself."""
    from scipy import ndimage

    volume = np.zeros((24, 24, 24), np.uint8)
    for at in ((2, 2, 2), (10, 13, 9), (17, 3, 14)):   # each straddles the faces of 8-voxel chunks
        volume[tuple(slice(a, a + 5) for a in at)] = _interlocked(at) > 0
    labels, n = ndimage.label(volume, ndimage.generate_binary_structure(3, 1))
    assert n == 6
    options = AnalysisOptions(connectivity=6, exclude_border=False)
    a = analyze(volume, voxel_size=(10.0,) * 3, options=options)
    b = analyze(volume, voxel_size=(10.0,) * 3, options=dataclasses.replace(options, in_memory_voxels=0,
                                                                               chunks=(8, 8, 8)))
    assert len(b.objects["label"]) == 6 and sorted(b.objects["volume_vox"]) == sorted(a.objects["volume_vox"])
    for c in a.objects:
        np.testing.assert_allclose(a.objects[c], b.objects[c], equal_nan=True, err_msg=c)


def test_objects_across_chunks_come_in_few_tables():
    import tempfile

    from tomoseg.objects import analysis

    volume = np.zeros((32, 32, 32), np.uint8)
    for z in range(2, 30, 4):
        for y in range(6, 30, 8):                       # 3-voxel rods across the y faces of 8-voxel chunks
            for x in range(2, 30, 4):
                volume[z, y:y + 3, x] = 1
    inner = analysis._InnerObjects(volume.shape, None, None, (10.0,) * 3)
    with tempfile.TemporaryDirectory() as tmp:
        label_chunked(volume, f"{tmp}/l.zarr", chunks=(8, 8, 8), connectivity=26, visit=inner)
    crossing = len(inner.pieces)
    assert crossing == 7 * 3 * 7
    parts = inner.crossing(group=50)
    assert len(parts) == -(-crossing // 50) and sum(len(p["label"]) for p in parts) == crossing
    assert not inner.pieces


def test_empty_mask_gives_a_valid_empty_result():
    res = analyze(np.zeros((10, 10, 10), np.uint8))
    assert res.summary["objects"] == 0 and len(res.selected["label"]) == 0
    assert np.isnan(res.summary["mean_radius_vox"])


def test_hand_computed_confusion_matrices():
    pred = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 1]]], bool)
    truth = np.array([[[1, 0], [1, 0]], [[1, 0], [0, 0]]], bool)
    cm = confusion_matrix(pred, truth)
    assert (cm.tp, cm.fp, cm.fn, cm.tn) == (2, 2, 1, 3)
    assert cm.accuracy == 5 / 8 and cm.recall == 2 / 3 and cm.precision == 0.5
    assert cm.f1 == pytest.approx(4 / 7) and cm.iou == pytest.approx(0.4)
    np.testing.assert_allclose(cm.normalized(), [[2 / 3, 1 / 3], [2 / 5, 3 / 5]])
    empty = confusion_matrix(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2), bool))
    assert (empty.tn, empty.tp) == (8, 0) and np.isnan(empty.recall)
    assert ConfusionMatrix(1, 2, 3, 4) + ConfusionMatrix(1, 1, 1, 1) == ConfusionMatrix(2, 3, 4, 5)
    with pytest.raises(TomosegError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


def test_matching_handles_one_voxel_objects_and_is_one_to_one():
    truth = np.zeros((12, 12, 12), np.uint32)
    pred = np.zeros_like(truth)
    truth[2, 2, 2] = 1                    # one voxel, predicted one voxel away (no overlap)
    pred[2, 2, 3] = 1
    truth[6:9, 6:9, 6:9] = 2              # overlapped by two predictions: only one may match
    pred[6:9, 6:9, 6:8] = 2
    pred[6:9, 6:9, 8] = 3
    truth[10, 2, 10] = 3                  # missed
    pt = measure_objects(pred)
    tt = measure_objects(truth)
    pairs = match_objects(pt, tt, overlap_pairs(pred, truth))
    assert pairs == {1: 1, 2: 2}
    s = detection_scores(pt, tt, pairs)
    assert s["recall"] == pytest.approx(2 / 3) and s["precision"] == pytest.approx(2 / 3)


def test_probability_or_mask_is_told_from_a_spread_sample_of_whole_chunks(tmp_path):
    from tomoseg.io import open_volume, write_volume
    from tomoseg.objects.reading import is_probability, read_as

    prob = np.zeros((256, 64, 64), np.uint8)
    prob[200:204, 10:14, 10:14] = 230           # one object deep in the volume
    prob[::7, ::5, ::3] = 3                     # low, non-zero probabilities spread everywhere
    write_volume(str(tmp_path / "p.zarr"), prob, chunks=(64, 32, 32))
    write_volume(str(tmp_path / "m.zarr"), (prob > 127).astype(np.uint8), chunks=(64, 32, 32))
    with open_volume(str(tmp_path / "p.zarr")) as p, open_volume(str(tmp_path / "m.zarr")) as m:
        read = []
        plain = type(p).__getitem__

        def counting(self, key):  # chunks decompressed by the read
            read.append(int(np.prod([-(-k.stop // c) - k.start // c for k, c in zip(key, (64, 32, 32))])))
            return plain(self, key)

        type(p).__getitem__ = counting
        try:
            assert not is_probability(m)  # a mask: every sampled block read, 0/1 only
            assert sum(read) == 1  # 16 slices' worth of voxels is one whole chunk here (16 slices: 64 chunks)
            read.clear()
            # values beyond 1 in the sampled chunk; then whether they are object IDs, from 4 blocks of 16 x 64 x 64
            # spread along z (reading.id_sample: 4 chunks each here), the same blocks in every format
            assert is_probability(p) and read == [1, 4, 4, 4, 4]
        finally:
            type(p).__getitem__ = plain
    fractions = np.full((32, 8, 8), 1.25, np.float32)
    write_volume(str(tmp_path / "f.zarr"), fractions, chunks=(8, 8, 8))
    with open_volume(str(tmp_path / "f.zarr")) as f, pytest.raises(TomosegError, match="fractional values"):
        read_as(f, where="f.zarr")


def test_sample_mask_counts_in_blocks_equal_numpy(tmp_path, rng):
    from tomoseg.io import open_volume, write_volume
    from tomoseg.objects.analysis import _sample_mask_counts

    mask = (rng.random((40, 60, 50)) > 0.6).astype(np.uint8)
    write_volume(str(tmp_path / "s.zarr"), mask, chunks=(16, 8, 50))
    centroids = rng.uniform(0, 1, (200, 3)) * np.array(mask.shape)
    idx = np.clip(np.rint(centroids).astype(int), 0, np.array(mask.shape) - 1)
    objects = (rng.random(mask.shape) > 0.7).astype(np.uint8)
    with open_volume(str(tmp_path / "s.zarr")) as vol:
        for budget in (10**9, 16 * 8 * 50, 5000):  # one block; rows of chunks; smaller than a chunk row
            total, inside, per_z = _sample_mask_counts(vol, centroids, mask.shape, budget, objects=objects)
            assert total == int(mask.sum())
            np.testing.assert_array_equal(inside, mask[tuple(idx.T)] != 0)
            np.testing.assert_array_equal(per_z, [mask.sum(axis=(1, 2)), (mask & objects).sum(axis=(1, 2))])


def test_a_sparse_probability_map_written_by_segment_is_never_taken_for_a_mask(tmp_path):
    """A map whose voxels are all 0 or 1 (nothing near an object) reads like a mask; where segment wrote it as
    its probability map, analyze knows better, and finds no object instead of one per 1-voxel."""
    import json
    import shutil

    from tomoseg.io import open_volume, write_volume
    from tomoseg.objects.reading import is_probability, written_as_probability

    flat = np.zeros((16, 32, 32), np.uint8)
    flat[::3, ::4, ::5] = 1
    for name in ("prob.tif", "prob.zarr"):
        write_volume(str(tmp_path / name), flat)
        (tmp_path / f"{name}.provenance.json").write_text(json.dumps(
            {"tool": "tomoseg segment", "outputs": {"probability": str(tmp_path / name), "mask": None}}))
        with open_volume(str(tmp_path / name)) as vol:
            assert written_as_probability(vol) and is_probability(vol)
            assert analyze(vol).summary["objects_all"] == 0
        copy = shutil.copytree if name.endswith(".zarr") else shutil.copy
        copy(tmp_path / name, tmp_path / f"plain-{name}")
        with open_volume(str(tmp_path / f"plain-{name}")) as vol:  # no record: read as a mask of its 1s
            assert not written_as_probability(vol) and not is_probability(vol)


def test_the_mask_beside_a_probability_map_in_one_hdf5_file_stays_a_mask(tmp_path):
    from tomoseg.inference import SegmentOptions, TilingConfig, segment
    from tomoseg.io import open_volume, write_volume
    from tomoseg.objects.reading import is_probability, written_as_probability

    write_volume(str(tmp_path / "scan.tif"), tomoseg.make_phantom((24, 64, 64), rng=2).image, voxel_size=(29.33,) * 3)
    segment(tmp_path / "scan.tif", f"{tmp_path / 'r.h5'}:/prob", progress=False,
            options=SegmentOptions(tiling=TilingConfig(tile_size=32, halo=16)))
    prob = tomoseg.read_volume(f"{tmp_path / 'r.h5'}:/prob")
    write_volume(f"{tmp_path / 'r.h5'}:/mask", (prob > 127).astype(np.uint8))  # the user's mask, same file
    with open_volume(f"{tmp_path / 'r.h5'}:/prob") as p, open_volume(f"{tmp_path / 'r.h5'}:/mask") as m:
        assert written_as_probability(p) and is_probability(p)
        assert not written_as_probability(m) and not is_probability(m)


@pytest.mark.parametrize("r", [1.0, 2.5, 6.0])
def test_mesh_and_voxel_surfaces_equal_the_library_formulas(r):
    """The per-object arithmetic written out for speed gives skimage's mesh area, NumPy's cross-product volume
    and the voxel faces of np.diff, to the last bit."""
    from skimage import measure

    from tomoseg.objects.measure import mesh_area_volume, voxel_face_area

    z, y, x = np.ogrid[-9:10, -9:11, -9:12]
    obj = np.pad((z * z + 1.3 * y * y + x * x) <= r * r, 1)
    vs = (40.0, 29.33, 25.5)
    verts, faces, _, _ = measure.marching_cubes(obj.astype(np.float32), level=0.5, spacing=vs)
    tri = verts[faces]
    volume = float(abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0)
    assert mesh_area_volume(obj, vs) == (float(measure.mesh_surface_area(verts, faces)), volume)
    faces_diff = sum(f * np.count_nonzero(np.diff(obj.astype(np.int8), axis=a))
                     for a, f in ((0, vs[1] * vs[2]), (1, vs[0] * vs[2]), (2, vs[0] * vs[1])))
    assert voxel_face_area(obj, vs) == float(faces_diff)


def _distance_candidates(pred, truth, fp, ft, distance_vox=2.0):
    """{(pred row, true row): distance} for free rows within max(distance, true radius), every pair compared."""
    out = {}
    for i in fp:
        for j in ft:
            d = float(np.linalg.norm([pred[f"centroid_{a}"][i] - truth[f"centroid_{a}"][j] for a in "zyx"]))
            if d <= max(distance_vox, truth["equivalent_radius_vox"][j]):
                out[(i, j)] = d
    return out


def _best_matching(edges: dict, key):
    """Every one-to-one subset of ``edges`` ({(a, b): value}) tried; the best by ``key(chosen edges)``."""
    import itertools

    best, best_key = (), None
    items = list(edges)
    for k in range(len(items) + 1):
        for chosen in itertools.combinations(items, k):
            if len({a for a, _ in chosen}) == k == len({b for _, b in chosen}):
                score = key(chosen)
                if best_key is None or score > best_key:
                    best, best_key = chosen, score
    return best, best_key


def _tables(rng, n_p, n_t, spread):
    c = rng.uniform(0, spread, (n_p + n_t, 3))
    pred = {"label": np.arange(1, n_p + 1), **{f"centroid_{a}": c[:n_p, k] for k, a in enumerate("zyx")}}
    truth = {"label": np.arange(1, n_t + 1), **{f"centroid_{a}": c[n_p:, k] for k, a in enumerate("zyx")},
             "equivalent_radius_vox": rng.uniform(0.5, 3.0, n_t)}
    return pred, truth


@pytest.mark.parametrize("seed", range(4))
def test_matching_is_optimal_against_every_matching_tried(seed):
    """On small random cases, both stages equal the best of every one-to-one matching, tried one by one: the
    most shared voxels, then among the objects left the most pairs and the least total distance."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n_p, n_t = rng.integers(1, 6, 2)
        pred, truth = _tables(rng, n_p, n_t, spread=6.0)
        pairs_all = [(int(p), int(t)) for p in range(1, n_p + 1) for t in range(1, n_t + 1)]
        chosen = rng.choice(len(pairs_all), size=min(len(pairs_all), int(rng.integers(0, 6))), replace=False)
        overlaps = {pairs_all[k]: int(v) for k, v in zip(chosen, rng.permutation(50)[:len(chosen)] + 1)}
        got = match_objects(pred, truth, overlaps)
        first, best_shared = _best_matching(overlaps, lambda ch: sum(overlaps[e] for e in ch))
        by_overlap = {p: t for p, t in got.items() if (p, t) in overlaps}
        assert sum(overlaps[e] for e in by_overlap.items()) == best_shared and len(by_overlap) == len(first)
        fp = [i for i in range(n_p) if int(pred["label"][i]) not in by_overlap]
        ft = [j for j in range(n_t) if int(truth["label"][j]) not in set(by_overlap.values())]
        near = _distance_candidates(pred, truth, fp, ft)
        _, (count, neg_total) = _best_matching(near, lambda ch: (len(ch), -sum(near[e] for e in ch)))
        by_distance = [(p - 1, t - 1) for p, t in got.items() if p not in by_overlap]
        assert len(by_distance) == count
        assert sum(near[e] for e in by_distance) == pytest.approx(-neg_total)


@pytest.mark.parametrize("seed", range(3))
def test_matching_of_crowded_objects_equals_one_assignment_over_everything(seed):
    """Hundreds of crowded objects with ties on a grid: solved per connected group of candidates (and pairs
    from the k-d tree), both stages reach the optimum of one assignment over all rows at once."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    n_p, n_t = 300, 250
    grid = rng.integers(0, 12, (n_p + n_t, 3)).astype(float)  # many equal distances
    c = grid + rng.normal(0, 0.7, grid.shape) * (rng.random((len(grid), 1)) < 0.5)
    pred = {"label": np.arange(1, n_p + 1), **{f"centroid_{a}": c[:n_p, k] for k, a in enumerate("zyx")}}
    truth = {"label": np.arange(1, n_t + 1), **{f"centroid_{a}": c[n_p:, k] for k, a in enumerate("zyx")},
             "equivalent_radius_vox": rng.uniform(0.5, 3.0, n_t)}
    overlaps = {(int(p), int(t)): int(rng.integers(1, 50)) for p, t in rng.integers(1, 60, (60, 2))}
    got = match_objects(pred, truth, overlaps)
    w = np.zeros((n_p, n_t))
    for (p, t), v in overlaps.items():
        w[p - 1, t - 1] = v
    r, k = linear_sum_assignment(w, maximize=True)
    by_overlap = {p: t for p, t in got.items() if (p, t) in overlaps}
    assert sum(overlaps[e] for e in by_overlap.items()) == w[r, k].sum()
    fp = [i for i in range(n_p) if i + 1 not in by_overlap]
    ft = [j for j in range(n_t) if j + 1 not in set(by_overlap.values())]
    near = _distance_candidates(pred, truth, fp, ft)
    big = 1.0 + sum(near.values())
    wd = np.zeros((n_p, n_t))
    for (i, j), d in near.items():
        wd[i, j] = big - d
    r, k = linear_sum_assignment(wd, maximize=True)
    chosen = [(i, j) for i, j in zip(r, k) if wd[i, j] > 0]
    by_distance = [(p - 1, t - 1) for p, t in got.items() if p not in by_overlap]
    assert len(by_distance) == len(chosen) > 100
    assert sum(near[e] for e in by_distance) == pytest.approx(sum(near[e] for e in chosen))


def test_a_merged_prediction_does_not_cost_the_fragment_its_pair():
    """P1 spans T1 (42 shared voxels) and T2 (30); fragment P2 lies in T1 only (18). Taking pairs by decreasing
    overlap (P1-T1) left T2 and P2 unmatched: recall 0.5. The most shared voxels pair both: recall 1."""
    from tomoseg.evaluation import evaluate

    truth = np.zeros((8, 6, 28), np.uint8)
    pred = np.zeros_like(truth)
    truth[1:6, 1:4, 2:12] = 1
    truth[1:6, 1:4, 14:24] = 1
    pred[1:3, 1:4, 5:19] = 1
    pred[4:6, 1:4, 2:5] = 1
    objects = evaluate(pred, truth)["objects"]
    assert objects["recall"] == objects["precision"] == 1.0


def test_scores_do_not_depend_on_the_orientation_of_the_volume():
    """P1 lies in the gap between T1 and T2, a little nearer T1; P2 beside T1 only. Each true object taken in
    table order to its nearest free prediction gave recall 0.5 one way and 1.0 mirrored; now 1.0 both ways."""
    from tomoseg.evaluation import evaluate

    o = 3
    truth = np.zeros((13, 13, 30), np.uint8)
    pred = np.zeros_like(truth)
    truth[2:11, 2:11, o + 2:o + 11] = 1
    truth[2:11, 2:11, o + 13:o + 22] = 1
    pred[2:11, 2:11, o + 11] = 1
    pred[2:11, 2:9, o + 12] = 1
    pred[2:11, 2:11, o:o + 2] = 1
    for p, t in ((pred, truth), (pred[:, :, ::-1], truth[:, :, ::-1])):
        objects = evaluate(np.ascontiguousarray(p), np.ascontiguousarray(t))["objects"]
        assert objects["recall"] == objects["precision"] == 1.0


def test_detection_f1_is_zero_when_nothing_matches_and_undefined_without_objects():
    """Recall 0 and precision 0 give F1 0 (it was NaN, which averages over runs then skipped); with objects on
    neither side, F1 is undefined (NaN)."""
    def table(z):
        return {"label": np.array([1]), **{f"centroid_{a}": np.array([float(z)]) for a in "zyx"},
                "equivalent_radius_vox": np.array([2.0])}

    empty = {"label": np.zeros(0, np.int64), **{f"centroid_{a}": np.zeros(0) for a in "zyx"},
             "equivalent_radius_vox": np.zeros(0)}
    far = detection_scores(table(50), table(0), match_objects(table(50), table(0), {}))
    assert far["recall"] == far["precision"] == far["f1"] == 0.0
    assert np.isnan(detection_scores(empty, empty, {})["f1"])


def test_detection_f1_is_zero_when_a_model_finds_nothing():
    """No predicted object for true objects (or predictions where there are none): nothing matched, F1 0, as
    the voxel F1 of an empty prediction is (review AB1: it was NaN, printed "n/a", and the ablation table's "-"
    read as "not applicable" for a network that found nothing); precision stays undefined (0/0)."""
    from tomoseg.objects.matching import detection_f1

    def table(n):
        return {"label": np.arange(1, n + 1), **{f"centroid_{a}": np.arange(n, dtype=float) * 10 for a in "zyx"},
                "equivalent_radius_vox": np.full(n, 2.0)}

    nothing_found = detection_scores(table(0), table(5), {})
    assert nothing_found["recall"] == 0.0 and np.isnan(nothing_found["precision"])
    assert nothing_found["f1"] == 0.0
    nothing_there = detection_scores(table(3), table(0), {})
    assert np.isnan(nothing_there["recall"]) and nothing_there["precision"] == 0.0 and nothing_there["f1"] == 0.0
    assert detection_f1(0.5, 1.0) == pytest.approx(2 / 3)
    assert detection_f1(0.0, float("nan")) == 0.0 and np.isnan(detection_f1(1.0, float("nan")))
    assert np.isnan(detection_f1(float("nan"), float("nan")))


def test_object_ids_saved_as_uint8_are_refused_not_thresholded(tmp_path, capsys):
    """A label image with few IDs saved as 8 bits (as Fiji or ilastik write it) was read as a probability map:
    IDs up to 127 vanished and the rest became 'confident' objects. It is refused with what to do; masks
    (0/1, 0/255) and probability maps, blurred or the shipped model's, are not."""
    from scipy import ndimage

    from tomoseg.cli import main
    from tomoseg.inference.engine import predict
    from tomoseg.io import write_volume
    from tomoseg.objects.reading import looks_like_object_ids
    from tomoseg.objects.labelled import label_scan
    from tomoseg.synthetic import make_phantom

    ph = make_phantom((32, 96, 96), rng=1)
    ids = np.where(ph.instances > 0, ph.instances % 250 + 1, 0).astype(np.uint8)
    assert looks_like_object_ids(ids)
    write_volume(str(tmp_path / "ids.tif"), ids)
    assert main(["analyze", str(tmp_path / "ids.tif"), "--json"]) == 1
    err = capsys.readouterr().err
    assert err.count("tomoseg: error:") == 1 and "looks like an image of object IDs stored as uint8" in err
    with pytest.raises(TomosegError, match="Save object IDs as uint16"):
        label_scan(None, ids)
    assert label_scan(None, ids.astype(np.uint16)).table["label"].size == len(np.unique(ids)) - 1
    p = np.asarray(predict(ph.image))
    for volume in (ph.labels.astype(np.uint8), (ph.labels * 255).astype(np.uint8),
                   (255 * ndimage.gaussian_filter(ph.labels.astype(float), 1.0)).astype(np.uint8),
                   np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)):
        assert looks_like_object_ids(volume) is None


def test_probability_or_mask_in_memory_is_told_from_the_whole_array():
    """A uint8 map in memory whose values above 1 lie outside any sampled slice: analyze (which sampled) took
    it for a mask (every nonzero voxel an object: 3 objects) while the tracking's labels read the whole array
    (1 object); both now read the whole array."""
    from tomoseg.objects.labelled import label_scan

    p = np.zeros((64, 32, 32), np.uint8)
    p[1, 5:15, 5:15] = 60
    p[1:4, 20:25, 20:25] = 200
    p[2, 22, 22] = 255  # a map ramps: regions of one value each, of several values, read as object IDs
    p[40:43, 20:25, 5:10] = 1
    assert analyze(p).objects["volume_vox"].tolist() == label_scan(None, p).table["volume_vox"].tolist() == [75]


def test_a_label_image_larger_than_memory_keeps_its_confidence_columns():
    """label_scan with a label image and a probability map: chunk by chunk gave NaN confidences (the map was
    not passed on), in memory the mean probability."""
    from tomoseg.objects.labelled import label_scan

    lab = np.zeros((10, 10, 10), np.uint16)
    lab[2:5, 2:5, 2:5] = 4
    lab[6:9, 6:9, 6:9] = 9  # two plateaus of one value each: object IDs (one alone reads as a 0-255 map)
    p = np.full(lab.shape, 200, np.uint8)
    whole = label_scan(None, lab, probability=p).table["mean_probability"]
    chunked = label_scan(None, lab, probability=p, in_memory_voxels=0, chunks=(4, 4, 4)).table["mean_probability"]
    assert whole.tolist() == chunked.tolist() == [pytest.approx(200 / 255)] * 2


@pytest.mark.parametrize("chunked", [False, True])
def test_fraction_along_z_counts_the_counted_objects_only(chunked, tmp_path):
    """fraction_along_z is the summary's objects' volume fraction per slice (its mean is volume_fraction): an
    object touching the border (z 10..19, 4 voxels a slice) and one under 8 voxels (z 3) are not in it; they were
    (the curve read 4 voxels a slice where no counted object lies). fraction_along_z_all keeps every object
    voxel, and fraction_along_z.csv has both, the caption saying which."""
    import json

    from tomoseg.cli import main

    m = np.zeros((20, 30, 30), np.uint8)
    m[5:8, 10:13, 10:13] = 1      # kept: 9 voxels in each of z 5, 6, 7
    m[10:20, 0:2, 0:2] = 1        # touches the border
    m[3, 20, 20] = 1              # too small
    options = AnalysisOptions(in_memory_voxels=1000, chunks=(8, 16, 16)) if chunked else AnalysisOptions()
    r = analyze(m, options=options)
    expected = np.zeros(20)
    expected[5:8] = 9 / 900
    np.testing.assert_allclose(r.fraction_along_z, expected, rtol=1e-12, atol=0)
    assert r.fraction_along_z.mean() == pytest.approx(r.summary["volume_fraction"], rel=1e-12)
    everything = expected.copy()
    everything[3], everything[10:] = 1 / 900, 4 / 900
    np.testing.assert_allclose(r.fraction_along_z_all, everything, rtol=1e-12, atol=0)
    if chunked:
        return
    np.save(tmp_path / "m.npy", m)
    assert main(["analyze", str(tmp_path / "m.npy"), "--out", str(tmp_path / "o"), "-q"]) == 0
    lines = (tmp_path / "o" / "fraction_along_z.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "z,z_um,fraction,fraction_all_objects"
    assert [float(line.split(",")[2]) for line in lines[1:]] == pytest.approx(expected.tolist())
    assert [float(line.split(",")[3]) for line in lines[1:]] == pytest.approx(everything.tolist())
    caption = json.loads((tmp_path / "o" / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert "the counted objects' voxels in each z slice" in caption["fraction_along_z"]
    assert "objects left out are not in the curve" in caption["fraction_along_z"]
