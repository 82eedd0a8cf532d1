"""Object-level matching of predicted objects to true objects, one to one.

Rule (works for objects of one voxel, unlike IoU >= 0.5): pairs that share
voxels are matched greedily by decreasing overlap; then remaining true objects
are matched to remaining predicted objects whose centroids lie within
``max(distance_vox, equivalent radius of the true object)``, each to the nearest
one not yet taken (found in a k-d tree, so millions of objects match in seconds).
"""

from __future__ import annotations

import numpy as np

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


def match_objects(pred: dict, truth: dict, overlaps: dict, *, distance_vox: float = 2.0) -> dict:
    """Match object tables (as from ``measure_objects``) one to one; returns {pred_label: true_label}."""
    matched_p, matched_t, pairs = set(), set(), {}
    for (p, t), _ in sorted(overlaps.items(), key=lambda kv: -kv[1]):
        if p not in matched_p and t not in matched_t:
            pairs[p] = t
            matched_p.add(p)
            matched_t.add(t)
    free_p = [i for i, l in enumerate(pred["label"]) if l not in matched_p]
    if free_p:
        from scipy.spatial import cKDTree

        pc = np.stack([pred[f"centroid_{a}"][free_p] for a in "zyx"], 1)
        tree = cKDTree(pc)
        taken = np.zeros(len(free_p), bool)
        for j, t in enumerate(truth["label"]):  # in table order, each to the nearest prediction not yet taken
            if t in matched_t:
                continue
            tc = np.array([truth[f"centroid_{a}"][j] for a in "zyx"])
            reach = max(distance_vox, truth["equivalent_radius_vox"][j])
            near = np.asarray(tree.query_ball_point(tc, reach * (1 + 1e-9) + 1e-12), np.int64)
            near = near[~taken[near]]
            if not len(near):
                continue
            d = np.linalg.norm(pc[near] - tc, axis=1)
            k = near[np.lexsort((near, d))[0]]  # the nearest; on a tie the first, as argmin over all would pick
            if np.linalg.norm(pc[k] - tc) <= reach:
                pairs[int(pred["label"][free_p[k]])] = int(t)
                taken[k] = True
    return pairs


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
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else float("nan")
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
