"""Match the objects of two scans after registration: one to one, then merges and splits.

1. The BEFORE labels are carried into the AFTER grid through the transform (nearest neighbour, block by
   block of the AFTER grid, each from the crop of the BEFORE labels it needs, on worker threads) and their voxel
   overlaps with the AFTER labels counted (:func:`carried_overlaps`). The labels may be arrays or volumes on
   disk (Zarr): memory holds a few blocks, whatever the scans' size.
2. **One to one**: a BEFORE and an AFTER object may pair if they overlap or if their centroids (BEFORE's
   carried through the transform) lie within ``tolerance_nm``. Pairs are chosen by an optimal assignment
   (``scipy.optimize.linear_sum_assignment``, one connected group of candidates at a time) maximizing
   the overlap (Dice) plus a small bonus for closeness.
3. **Many to one (merged)**: a BEFORE object left unpaired whose carried voxels lie for at least
   ``min_overlap`` of them inside an AFTER object joins that object's group; every member is *merged*.
   **One to many (split)**: likewise for an unpaired AFTER object lying inside a BEFORE object's carried voxels.
4. The rest: BEFORE objects *vanished*, AFTER objects *appeared*; the pairs *persisting*.

The result is a tidy table, one row per link (a merge has one row per BEFORE object, a split one row per
AFTER piece), sharing a ``match_id`` per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from ..errors import TomosegError
from ..objects.matching import overlap_counts, pairs_of, sum_by_key
from .registration import apply, fit_transform

STATUSES = ("persisting", "appeared", "vanished", "merged", "split")


@dataclass(frozen=True)
class MatchOptions:
    """Settings of :func:`match`."""

    tolerance_nm: float | None = None   # centroid distance for pairs that do not overlap (default 3 voxels)
    min_overlap: float = 0.3            # share of an unpaired object inside another, for merges and splits
    min_voxels: int = 8                 # smaller objects are matched but flagged ``small``
    border_margin_vox: float = 1.0      # objects this close to either field of view's border are flagged ``edge``

    def __post_init__(self):
        if self.tolerance_nm is not None and not self.tolerance_nm > 0:
            raise TomosegError(f"tolerance_nm {self.tolerance_nm!r} must be positive")
        if not 0 < self.min_overlap <= 1:
            raise TomosegError(f"min_overlap {self.min_overlap!r} must be in (0, 1]")


def carry_labels(labels: np.ndarray, matrix: np.ndarray, shape, *, slab: int = 16) -> np.ndarray:
    """BEFORE labels seen in the AFTER grid (nearest neighbour): ``out[q] = labels[M⁻¹ q]``."""
    inv = np.linalg.inv(np.asarray(matrix, float))
    out = np.zeros(tuple(shape), np.uint32)
    for z0 in range(0, shape[0], slab):
        z1 = min(z0 + slab, shape[0])
        offset = inv[:3, :3] @ np.array([z0, 0, 0]) + inv[:3, 3]
        out[z0:z1] = ndimage.affine_transform(labels, inv[:3, :3], offset=offset, output_shape=(z1 - z0, *shape[1:]),
                                              order=0, mode="constant", cval=0, output=np.uint32)
    return out


def _centroids(table) -> np.ndarray:
    return np.stack([table[f"centroid_{a}"] for a in "zyx"], axis=1).astype(float) if len(table["label"]) \
        else np.zeros((0, 3))


def _in_view(points, radius, shape, margin) -> np.ndarray:
    lo = radius[:, None] + margin
    hi = np.asarray(shape, float)[None, :] - 1 - radius[:, None] - margin
    return np.all((points >= lo) & (points <= hi), axis=1)


def _edge_flags(before, after, matrix, shape_b, shape_a, margin) -> tuple[np.ndarray, np.ndarray]:
    """An object is at the edge if it touches its own scan's border or would lie outside the other scan."""
    cb, ca = _centroids(before), _centroids(after)
    rb, ra = before["equivalent_radius_vox"], after["equivalent_radius_vox"]
    inv = np.linalg.inv(matrix)
    eb = (before["touches_border"] > 0) | ~_in_view(apply(matrix, cb), rb, shape_a, margin)
    ea = (after["touches_border"] > 0) | ~_in_view(apply(inv, ca), ra, shape_b, margin)
    return eb, ea


def pair_objects(before: dict, after: dict, overlaps: dict, carried_voxels: dict, matrix, *, voxel_size,
                 options: MatchOptions) -> list:
    """Links ``(before labels, after labels, status)``, from object tables and overlaps ``{(after, before): n}``."""
    vs = np.asarray(voxel_size, float)
    tol = options.tolerance_nm if options.tolerance_nm is not None else 3.0 * float(np.cbrt(np.prod(vs)))
    lb, la = [int(v) for v in before["label"]], [int(v) for v in after["label"]]
    ib = {l: i for i, l in enumerate(lb)}
    ia = {l: i for i, l in enumerate(la)}
    cb = apply(matrix, _centroids(before)) * vs
    ca = _centroids(after) * vs
    va = after["volume_vox"].astype(float)
    # candidate pairs: overlap, or centroids within the tolerance
    cand: dict = {}
    for (a, b), n in overlaps.items():
        if a in ia and b in ib:
            cand[(ia[a], ib[b])] = n
    if len(cb) and len(ca):
        from scipy.spatial import cKDTree

        for i, js in enumerate(cKDTree(cb).query_ball_point(ca, tol)):
            for j in js:
                cand.setdefault((i, j), 0)
    rows = np.array([k[0] for k in cand], int)
    cols = np.array([k[1] for k in cand], int)
    ov = np.array([cand[k] for k in cand], float)
    vbw = np.array([max(carried_voxels.get(lb[j], 0), 1) for j in cols], float)
    dist = np.linalg.norm(ca[rows] - cb[cols], axis=1) if len(rows) else np.zeros(0)
    score = 2 * ov / (va[rows] + vbw) + 0.1 * np.clip(1 - dist / tol, 0, 1) if len(rows) else np.zeros(0)
    pairs_a, pairs_b = _assign(rows, cols, score, len(la), len(lb))
    paired_b = {j: i for i, j in zip(pairs_a, pairs_b)}
    paired_a = {i: j for i, j in zip(pairs_a, pairs_b)}
    # groups: start from the pairs, then attach merges and splits
    groups = {i: ({j}, {i}) for i, j in paired_a.items()}  # keyed by an AFTER index of the pair
    group_of_b = {j: i for i, j in paired_a.items()}
    group_of_a = {i: i for i in paired_a}
    best_a_for_b: dict = {}
    best_b_for_a: dict = {}
    for (i, j), n in zip(zip(rows, cols), ov):
        if n > 0:
            if n > best_a_for_b.get(j, (0, -1))[0]:
                best_a_for_b[j] = (n, i)
            if n > best_b_for_a.get(i, (0, -1))[0]:
                best_b_for_a[i] = (n, j)
    merged, split = set(), set()
    for j in range(len(lb)):
        if j in paired_b or j not in best_a_for_b:
            continue
        n, i = best_a_for_b[j]
        if n >= options.min_overlap * max(carried_voxels.get(lb[j], 0), 1) and i in group_of_a:
            g = group_of_a[i]
            groups[g][0].add(j)
            group_of_b[j] = g
            merged.add(g)
    rb_nm = before["equivalent_radius_vox"] * float(np.cbrt(np.prod(vs)))
    for i in range(len(la)):
        if i in paired_a or i not in best_b_for_a:
            continue
        n, j = best_b_for_a[i]
        inside = n >= options.min_overlap * va[i]
        # a small piece beside the rest: it overlaps the old object and its centre lies within it (+ tolerance)
        near = np.linalg.norm(ca[i] - cb[j]) <= rb_nm[j] + tol
        if (inside or near) and j in group_of_b:
            g = group_of_b[j]
            groups[g][1].add(i)
            group_of_a[i] = g
            split.add(g)
    links = []
    for g, (bs, as_) in sorted(groups.items(), key=lambda kv: min(kv[1][0])):
        status = "merged" if g in merged else "split" if g in split else "persisting"
        links.append(([lb[j] for j in sorted(bs)], [la[i] for i in sorted(as_)], status))
    for j in range(len(lb)):
        if j not in group_of_b:
            links.append(([lb[j]], [], "vanished"))
    for i in range(len(la)):
        if i not in group_of_a:
            links.append(([], [la[i]], "appeared"))
    return links


def _assign(rows, cols, score, n_a, n_b):
    """Maximum-score one-to-one assignment, solved per connected group of candidates."""
    if len(rows) == 0:
        return [], []
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols + n_a)), shape=(n_a + n_b, n_a + n_b))
    _, comp = connected_components(graph, directed=False)
    pa, pb = [], []
    by_comp: dict = {}
    for k, (i, j) in enumerate(zip(rows, cols)):
        by_comp.setdefault(comp[i], []).append(k)
    for ks in by_comp.values():
        ai = sorted({rows[k] for k in ks})
        bj = sorted({cols[k] for k in ks})
        ra = {v: n for n, v in enumerate(ai)}
        rb = {v: n for n, v in enumerate(bj)}
        cost = np.full((len(ai), len(bj)), 1e6)
        for k in ks:
            cost[ra[rows[k]], rb[cols[k]]] = -score[k]
        r, c = linear_sum_assignment(cost)
        for x, y in zip(r, c):
            if cost[x, y] < 1e5:
                pa.append(ai[x])
                pb.append(bj[y])
    return pa, pb


def refine_on_objects(before: dict, after: dict, links: list, matrix, *, voxel_size, similarity=False,
                      min_voxels: int = 8) -> tuple[np.ndarray, dict]:
    """Refit the transform to the centroids of persisting pairs (robust: drops pairs off the consensus)."""
    vs = np.asarray(voxel_size, float)
    ib = {int(l): i for i, l in enumerate(before["label"])}
    ia = {int(l): i for i, l in enumerate(after["label"])}
    src, dst = [], []
    for bs, as_, status in links:
        if status != "persisting":
            continue
        j, i = ib[bs[0]], ia[as_[0]]
        if before["volume_vox"][j] < min_voxels or after["volume_vox"][i] < min_voxels:
            continue
        if before["touches_border"][j] or after["touches_border"][i]:
            continue
        src.append(_centroids(before)[j])
        dst.append(_centroids(after)[i])
    if len(src) < 6:
        return np.asarray(matrix, float), {"pairs": len(src), "used": 0, "residual_vox": float("nan")}
    src, dst = np.asarray(src) * vs, np.asarray(dst) * vs
    keep = np.ones(len(src), bool)
    s_mat = np.diag(np.append(vs, 1.0))
    for _ in range(5):
        m_nm = fit_transform(src[keep], dst[keep], similarity=similarity)
        res = np.linalg.norm(apply(m_nm, src) - dst, axis=1)
        mad = np.median(np.abs(res[keep] - np.median(res[keep])))
        new = res <= np.median(res[keep]) + 4 * 1.4826 * max(mad, 1e-3 * float(vs.mean()))
        if new.sum() < 6 or np.array_equal(new, keep):
            break
        keep = new
    m = np.linalg.inv(s_mat) @ m_nm @ s_mat
    res_vox = np.linalg.norm(apply(m, src / vs) - dst / vs, axis=1)
    return m, {"pairs": int(len(src)), "used": int(keep.sum()),
               "residual_vox": float(np.sqrt(np.mean(res_vox[keep] ** 2))),
               "residual_nm": float(np.sqrt(np.mean(res[keep] ** 2)))}


def _preimage(inv: np.ndarray, region, shape_before) -> tuple | None:
    """The crop of the BEFORE grid that the AFTER ``region`` reads (nearest neighbour), None if outside."""
    lo_q = np.array([r.start for r in region], float)
    hi_q = np.array([r.stop - 1 for r in region], float)
    corners = np.array([[a[0], b[1], c[2]] for a in (lo_q, hi_q) for b in (lo_q, hi_q) for c in (lo_q, hi_q)])
    src = apply(inv, corners)
    lo = np.maximum(np.floor(src.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(src.max(axis=0)).astype(int) + 2, np.asarray(shape_before))
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def carried_overlaps(before_labels, after_labels, matrix, *, block=(64, 256, 256), threads: int | None = None,
                     progress=None) -> tuple[dict, dict]:
    """Overlaps ``{(after, before): voxels}`` of the BEFORE labels carried into the AFTER grid with the AFTER
    labels, and ``{before: voxels carried}``, block by block of the AFTER grid.

    ``before_labels`` and ``after_labels`` are arrays or anything sliced like one (a Zarr array, a
    :class:`~tomoseg.io.Volume`): each block reads its AFTER labels and the crop of the BEFORE labels it maps
    from, so memory holds a few blocks whatever the scans' size. A carried voxel is
    ``before_labels[round(M⁻¹ q)]`` as in :func:`carry_labels` (the same up to the rounding of coordinates
    that fall within 1e-9 of half a voxel). ``progress`` gets each block's voxels.
    """
    from ..io.blocks import chunk_regions, read_ahead, worker_threads

    inv = np.linalg.inv(np.asarray(matrix, float))
    shape_a, shape_b = tuple(after_labels.shape), tuple(before_labels.shape)
    block = tuple(min(int(b), s) for b, s in zip(block, shape_a))

    def count(region):  # on a worker thread: this block's overlaps and carried voxels, as (keys, counts)
        crop = _preimage(inv, region, shape_b)
        if crop is None:
            return _empty_pairs(), _empty_pairs()
        carried = _carry(before_labels, crop, inv, region)
        ids, n = np.unique(carried[carried > 0], return_counts=True)
        return overlap_counts(np.asarray(after_labels[region]), carried), (ids.astype(np.int64), n)

    pair_keys, pair_counts, ids, counts = [], [], [], []
    regions = chunk_regions(shape_a, block)
    for region, ((k, n), (i, c)) in read_ahead(regions, count, threads=worker_threads(8) if threads is None
                                                 else threads):
        pair_keys.append(k)
        pair_counts.append(n)
        ids.append(i)
        counts.append(c)
        if progress is not None:
            progress.update(int(np.prod([r.stop - r.start for r in region])))
    overlaps = pairs_of(*sum_by_key(pair_keys, pair_counts))
    labels, c = sum_by_key(ids, counts)
    return overlaps, dict(zip(labels.tolist(), c.tolist()))


def _carry(before_labels, crop, inv, region) -> np.ndarray:
    """The BEFORE labels seen in the AFTER ``region``, from the ``crop`` of them it maps from."""
    source = np.asarray(before_labels[crop])
    if source.dtype != np.uint32:
        source = source.astype(np.uint32)
    q0 = np.array([r.start for r in region], float)
    c0 = np.array([c.start for c in crop], float)
    offset = inv[:3, :3] @ q0 + inv[:3, 3] - c0
    return ndimage.affine_transform(source, inv[:3, :3], offset=offset, output_shape=tuple(r.stop - r.start
                                                                                         for r in region),
                                    order=0, mode="constant", cval=0, output=np.uint32)


def _empty_pairs():
    return np.zeros(0, np.int64), np.zeros(0, np.int64)


def match(before_labels, after_labels, before: dict, after: dict, matrix, *, voxel_size=None,
          options: MatchOptions | None = None, progress=None) -> tuple[list, dict]:
    """Links between the objects of two labelled scans, given the transform (BEFORE voxel → AFTER voxel).

    The label images may be arrays or volumes on disk (see :func:`carried_overlaps`).
    Returns ``(links, info)``: links are ``(before labels, after labels, status)``; info has the overlaps.
    """
    options = options or MatchOptions()
    vs = tuple(voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    overlaps, counts = carried_overlaps(before_labels, after_labels, matrix, progress=progress)
    carried_voxels = {int(l): int(counts.get(int(l), 0)) for l in before["label"]}
    links = pair_objects(before, after, overlaps, carried_voxels, matrix, voxel_size=vs, options=options)
    return links, {"overlaps": overlaps, "carried_voxels": carried_voxels}
