"""Object-level matching of predicted objects to true objects, one to one.

Rule (works for objects of one voxel, unlike IoU >= 0.5), in two optimal assignments (as the tracking's
matching, and StarDist's and Cellpose's scores, by ``scipy.optimize.linear_sum_assignment`` on each connected
group of candidates, so millions of objects match in seconds):

1. objects that share voxels: the pairs with the most shared voxels in total;
2. the true and predicted objects left: pairs whose centroids lie within ``max(distance_vox, equivalent radius
   of the true object)`` (candidates from a k-d tree): the most pairs, and among those the least total distance.

Neither depends on the order of the tables (a mirrored volume scores the same), and a pair is never forced:
objects without a candidate stay unmatched.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from ..errors import TomosegError

RADIUS_BINS = (0, 2, 3, 4, 5, 6, 8, np.inf)


def overlap_counts(pred_labels: np.ndarray, true_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared voxels of one block as sorted keys ``pred << 32 | true`` (int64) and their counts (for summing
    over blocks; :func:`pairs_of` makes the dict)."""
    both = (pred_labels > 0) & (true_labels > 0)
    key = pred_labels[both].astype(np.int64) << 32 | true_labels[both].astype(np.int64)
    keys, counts = np.unique(key, return_counts=True)
    return keys, counts.astype(np.int64)


def pairs_of(keys: np.ndarray, counts: np.ndarray) -> dict:
    """{(pred, true): shared voxels} from :func:`overlap_counts`' keys and counts."""
    return {(k >> 32, k & 0xFFFFFFFF): c for k, c in zip(keys.tolist(), counts.tolist())}


def overlap_pairs(pred_labels: np.ndarray, true_labels: np.ndarray) -> dict:
    """{(pred, true): shared voxels} for one block (:func:`block_overlaps` for volumes larger than memory)."""
    return pairs_of(*overlap_counts(pred_labels, true_labels))


def sum_by_key(keys: list, counts: list) -> tuple[np.ndarray, np.ndarray]:
    """Blocks' (keys, counts) summed per key: sorted unique keys and their totals (int64)."""
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    return k, np.bincount(inverse, weights=np.concatenate(counts), minlength=len(k)).astype(np.int64)


def block_overlaps(pred_labels, true_labels, *, chunks=(128, 128, 128), progress=None) -> dict:
    """:func:`overlap_pairs` of two label volumes of one shape, read chunk by chunk on worker threads (arrays,
    or anything sliced like one: Zarr arrays, :class:`~tomoseg.io.Volume`); ``progress`` is given each chunk's
    voxels."""
    from ..io.blocks import chunk_regions, read_ahead, worker_threads

    shape = tuple(int(s) for s in pred_labels.shape)
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape))
    keys, counts = [], []
    for region, (k, n) in read_ahead(chunk_regions(shape, chunks), lambda sl: overlap_counts(
            np.asarray(pred_labels[sl]), np.asarray(true_labels[sl])), threads=worker_threads(8)):
        keys.append(k)
        counts.append(n)
        if progress is not None:
            progress.update(int(np.prod([r.stop - r.start for r in region])))
    return pairs_of(*sum_by_key(keys, counts))


def label_rows(labels, wanted: np.ndarray) -> np.ndarray:
    """The row of each wanted label in a table's label column (sorted or not); -1 where absent (and for 0)."""
    labels = np.asarray(labels, np.int64)
    order = np.argsort(labels, kind="stable")
    pos = np.clip(np.searchsorted(labels[order], wanted), 0, max(len(labels) - 1, 0))
    rows = np.full(len(wanted), -1, np.int64)
    if len(labels):
        hit = labels[order][pos] == wanted
        rows[hit] = order[pos[hit]]
    return rows


def assign(rows, cols, score, n_a, n_b):
    """Maximum-score one-to-one assignment among candidate pairs (``rows[k]`` of one table, ``cols[k]`` of the
    other, ``score[k]``; ``n_a`` and ``n_b`` rows in each), solved per connected group of candidates (a group of
    one pair directly, the others by ``linear_sum_assignment``); returns the rows paired in each table. Only
    candidates are paired."""
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols + n_a)), shape=(n_a + n_b, n_a + n_b))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[rows]
    order = np.argsort(edge_comp, kind="stable")
    starts = np.flatnonzero(np.r_[True, edge_comp[order][1:] != edge_comp[order][:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    single = order[starts[sizes == 1]]  # a component of one candidate pair: paired
    pa, pb = [rows[single]], [cols[single]]
    for s, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        ks = order[s:s + size]
        ai, ra = np.unique(rows[ks], return_inverse=True)
        bj, rb = np.unique(cols[ks], return_inverse=True)
        # pairs that are no candidates cost 0, as leaving both unpaired does: a large cost would make the
        # solver prefer any complete assignment of weak pairs to one strong pair and two objects unpaired
        cost = np.zeros((len(ai), len(bj)))
        cost[ra, rb] = -score[ks]
        candidate = np.zeros(cost.shape, bool)
        candidate[ra, rb] = True
        r, c = linear_sum_assignment(cost)
        keep = candidate[r, c]
        pa.append(ai[r[keep]])
        pb.append(bj[c[keep]])
    return np.concatenate(pa).astype(np.int64), np.concatenate(pb).astype(np.int64)


def match_objects(pred: dict, truth: dict, overlaps: dict, *, distance_vox: float = 2.0) -> dict:
    """Match object tables (as from ``measure_objects``) one to one (the module's rule); returns
    {pred_label: true_label}."""
    lp, lt = np.asarray(pred["label"], np.int64), np.asarray(truth["label"], np.int64)
    n_p, n_t = len(lp), len(lt)
    keys = np.array(list(overlaps), np.int64).reshape(-1, 2)
    shared = np.fromiter(overlaps.values(), float, count=len(overlaps))
    i, j = label_rows(lp, keys[:, 0]), label_rows(lt, keys[:, 1])
    known = (i >= 0) & (j >= 0) & (shared > 0)
    pi, tj = assign(i[known], j[known], shared[known], n_p, n_t)
    free_p, free_t = np.ones(n_p, bool), np.ones(n_t, bool)
    free_p[pi], free_t[tj] = False, False
    rows_p, rows_t = [pi], [tj]
    fp, ft = np.flatnonzero(free_p), np.flatnonzero(free_t)
    if len(fp) and len(ft):
        from scipy.spatial import cKDTree

        pc = np.stack([np.asarray(pred[f"centroid_{a}"], float)[fp] for a in "zyx"], 1)
        tc = np.stack([np.asarray(truth[f"centroid_{a}"], float)[ft] for a in "zyx"], 1)
        reach = np.maximum(distance_vox, np.asarray(truth["equivalent_radius_vox"], float)[ft])
        near = cKDTree(pc).query_ball_point(tc, reach * (1 + 1e-9) + 1e-12)
        t_of = np.repeat(np.arange(len(ft)), [len(n) for n in near])
        p_of = np.fromiter((k for n in near for k in n), np.int64, count=len(t_of))
        d = np.linalg.norm(pc[p_of] - tc[t_of], axis=1) if len(t_of) else np.zeros(0)
        ok = d <= reach[t_of]
        p_of, t_of, d = p_of[ok], t_of[ok], d[ok]
        # the most pairs first, then the least total distance: each pair is worth more than all distances
        weight = (1.0 + float(d.sum())) - d
        a, b = assign(p_of, t_of, weight, len(fp), len(ft))
        rows_p.append(fp[a])
        rows_t.append(ft[b])
    rp, rt = np.concatenate(rows_p), np.concatenate(rows_t)
    return {int(lp[a]): int(lt[b]) for a, b in zip(rp.tolist(), rt.tolist())}


def detection_f1(recall: float, precision: float) -> float:
    """The harmonic mean of detection recall and precision; 0 where nothing was matched (a score of 0 with the
    other undefined: true objects and no prediction, or predictions and no true object, as the voxel F1 of an
    empty prediction is 0); NaN where it is undefined (no objects on either side, or one score undefined and
    the other above 0: kept objects on one side only, matched to excluded ones)."""
    r, p = float(recall), float(precision)
    if np.isnan(r) or np.isnan(p):
        return 0.0 if 0.0 in (r, p) else float("nan")
    return 2 * r * p / (r + p) if r + p > 0 else 0.0


def detection_scores(pred_all: dict, truth_all: dict, pairs: dict, *, pred_keep=None, truth_keep=None) -> dict:
    """Detection recall, precision and F1 over the kept objects, overall and by radius bin.

    Matching uses every object (so an excluded small prediction can still explain a kept true object);
    scores count only kept ones: a kept true object is found if matched to any prediction, a kept
    prediction is right if matched to any true object.
    """
    matched_t = set(pairs.values())
    matched_p = set(pairs)
    tk = truth_all["label"] if truth_keep is None else truth_keep["label"]
    pk = pred_all["label"] if pred_keep is None else pred_keep["label"]
    t_found = np.array([l in matched_t for l in tk], bool)
    p_right = np.array([l in matched_p for l in pk], bool)
    recall = float(t_found.mean()) if len(tk) else float("nan")
    precision = float(p_right.mean()) if len(pk) else float("nan")
    f1 = detection_f1(recall, precision)
    tr = (truth_all if truth_keep is None else truth_keep)["equivalent_radius_vox"]
    pr = (pred_all if pred_keep is None else pred_keep)["equivalent_radius_vox"]
    bins = []
    for lo, hi in zip(RADIUS_BINS[:-1], RADIUS_BINS[1:]):
        tsel = (tr >= lo) & (tr < hi)
        psel = (pr >= lo) & (pr < hi)
        bins.append({"radius_from_vox": lo, "radius_to_vox": hi, "true_objects": int(tsel.sum()),
                     "predicted_objects": int(psel.sum()),
                     "recall": float(t_found[tsel].mean()) if tsel.any() else float("nan"),
                     "precision": float(p_right[psel].mean()) if psel.any() else float("nan")})
    return {"true_objects": int(len(tk)), "predicted_objects": int(len(pk)), "matched_true": int(t_found.sum()),
            "matched_predicted": int(p_right.sum()), "recall": recall, "precision": precision, "f1": f1,
            "by_radius": bins}


def check_same_shape(a, b, names=("prediction", "labels")) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise TomosegError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} differ in shape")
