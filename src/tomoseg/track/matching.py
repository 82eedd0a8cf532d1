"""Match the objects of two scans after registration: one to one, then merges and splits.

1. The BEFORE labels are carried into the AFTER grid through the transform (nearest neighbour, block by
   block of the AFTER grid, each from the crop of the BEFORE labels it needs, on worker threads) and their voxel
   overlaps with the AFTER labels counted (:func:`carried_overlaps`). The labels may be arrays or volumes on
   disk (Zarr): memory holds a few blocks, whatever the scans' size.
2. **One to one**: a BEFORE and an AFTER object may pair if their centroids (BEFORE's carried through the
   transform) lie within the tolerance (:func:`tolerance_nm`: nm, measured in the AFTER scan's voxels), or,
   farther apart, if their overlap holds at least ``min_overlap`` of the smaller object's voxels (BEFORE's
   counted as carried). Pairs are chosen by an optimal assignment
   (``scipy.optimize.linear_sum_assignment``, one connected group of candidates at a time) maximizing
   the summed overlap (Dice) plus a small bonus for closeness; an object may stay unpaired where pairing it
   would cost a better pair.
3. **Many to one (merged)**: a BEFORE object left unpaired whose carried voxels lie for at least
   ``min_overlap`` of them inside an AFTER object joins that object's group; every member is *merged*.
   **One to many (split)**: likewise for an unpaired AFTER object lying inside a BEFORE object's carried voxels.
4. The rest: BEFORE objects *vanished*, AFTER objects *appeared*; the pairs *persisting*.

The result is a tidy table, one row per link (a merge has one row per BEFORE object, a split one row per
AFTER piece; a merge whose AFTER object also split off pieces has both kinds of rows), sharing a ``match_id``
per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import TomosegError
from ..objects.matching import assign, label_rows, overlap_counts, pairs_of, sum_by_key
from .registration import apply, fit_transform

STATUSES = ("persisting", "appeared", "vanished", "merged", "split")


@dataclass(frozen=True)
class MatchOptions:
    """Settings of :func:`match`."""

    tolerance_nm: float | None = None   # centroid distance, nm, for pairs that do not overlap (default: tolerance_nm)
    min_overlap: float = 0.3            # share of an unpaired object inside another, for merges and splits; and
    #                                     of the smaller object, for a pair whose centroids are beyond the tolerance
    min_voxels: int = 8                 # smaller objects are matched but flagged ``small``
    border_margin_vox: float = 1.0      # objects this close to either field of view's border are flagged ``edge``

    def __post_init__(self):
        if self.tolerance_nm is not None and not self.tolerance_nm > 0:
            raise TomosegError(f"tolerance_nm {self.tolerance_nm!r} must be positive")
        if not 0 < self.min_overlap <= 1:
            raise TomosegError(f"min_overlap {self.min_overlap!r} must be in (0, 1]")


SHAPES = {"persisting": "one BEFORE and one AFTER object", "merged": "BEFORE objects and at least one AFTER object",
          "split": "one BEFORE and AFTER objects", "vanished": "one BEFORE object and no AFTER object",
          "appeared": "no BEFORE object and one AFTER object"}


@dataclass(frozen=True, eq=False)
class Links:
    """The links of a matching, as arrays (a scan's millions of objects cost a few arrays, not a Python tuple of
    lists each): link ``k`` has status ``STATUSES[status[k]]``, the BEFORE labels
    ``before[before_start[k]:before_start[k + 1]]`` and the AFTER labels likewise.

    Iterating gives ``(before labels, after labels, status)`` tuples of lists, the form :func:`links_from` takes.
    """

    status: np.ndarray        # uint8, an index into STATUSES
    before: np.ndarray        # int64 labels, link after link
    before_start: np.ndarray  # int64, one more than the links
    after: np.ndarray
    after_start: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    def __iter__(self):
        b, a = self.before.tolist(), self.after.tolist()
        bs, as_ = self.before_start.tolist(), self.after_start.tolist()
        for k, code in enumerate(self.status.tolist()):
            yield b[bs[k]:bs[k + 1]], a[as_[k]:as_[k + 1]], STATUSES[code]

    @property
    def before_count(self) -> np.ndarray:
        return np.diff(self.before_start)

    @property
    def after_count(self) -> np.ndarray:
        return np.diff(self.after_start)

    def first(self, scan: str) -> np.ndarray:
        """Each link's first label in ``scan`` ("before" or "after"), 0 where it has none."""
        labels, start = (self.before, self.before_start) if scan == "before" else (self.after, self.after_start)
        has = np.diff(start) > 0
        out = np.zeros(len(self), np.int64)
        out[has] = labels[start[:-1][has]]
        return out


def links_from(links) -> Links:
    """:class:`Links` from links as :func:`match` gives them, or as ``(before labels, after labels, status)``
    tuples; the number of objects on each side must fit the status (:data:`SHAPES`)."""
    if isinstance(links, Links):
        return links
    links = list(links)
    codes = {name: k for k, name in enumerate(STATUSES)}
    try:
        status = np.array([codes[s] for *_, s in links], np.uint8)
    except KeyError as e:
        raise TomosegError(f"link status {e.args[0]!r} is not one of {', '.join(STATUSES)}") from None
    parts = []
    for side in (0, 1):
        count = np.array([len(link[side]) for link in links], np.int64)
        labels = np.array([lab for link in links for lab in link[side]], np.int64)
        parts += [labels, np.concatenate([[0], np.cumsum(count)]).astype(np.int64)]
    made = Links(status, *parts)
    _check_shapes(made)
    return made


def _check_shapes(links: Links) -> None:
    nb, na = links.before_count, links.after_count
    fits = {"persisting": (nb == 1) & (na == 1), "merged": (nb >= 1) & (na >= 1), "split": (nb == 1) & (na >= 1),
            "vanished": (nb == 1) & (na == 0), "appeared": (nb == 0) & (na == 1)}
    for code, name in enumerate(STATUSES):
        wrong = np.flatnonzero((links.status == code) & ~fits[name])
        if len(wrong):
            k = int(wrong[0])
            raise TomosegError(f"link {k} is {name} with {int(nb[k])} BEFORE and {int(na[k])} AFTER objects; a "
                               f"{name} link has {SHAPES[name]}")


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


TOLERANCE_VOXELS = 3.0  # the default tolerance: this many voxels of the coarser scan


def tolerance_nm(options: MatchOptions, voxel_size=None, after_voxel_size=None) -> float:
    """The centroid distance, nm, within which a BEFORE and an AFTER object that do not overlap may pair:
    ``options.tolerance_nm``, else :data:`TOLERANCE_VOXELS` voxels of the coarser of the two scans (the larger
    cube root of a voxel's volume; scans of equal voxel size: 3 of their voxels). Distances are measured in nm
    in the AFTER scan (its voxel size), where the transform carries the BEFORE centroids."""
    if options.tolerance_nm is not None:
        return float(options.tolerance_nm)
    edges = [float(np.cbrt(np.prod(np.asarray(v, float)))) for v in (voxel_size, after_voxel_size) if v is not None]
    return TOLERANCE_VOXELS * max(edges, default=1.0)


def _centroids(table) -> np.ndarray:
    return np.stack([table[f"centroid_{a}"] for a in "zyx"], axis=1).astype(float) if len(table["label"]) \
        else np.zeros((0, 3))


def _in_view(points, reach, shape, margin) -> np.ndarray:
    """Whether each point's object, reaching ``reach`` (n, 3) voxels along z, y, x, lies ``margin`` inside."""
    lo = reach + margin
    hi = np.asarray(shape, float)[None, :] - 1 - reach - margin
    return np.all((points >= lo) & (points <= hi), axis=1)


def axis_reach(table, voxel_size=None) -> np.ndarray:
    """Each object's equivalent radius in voxels along z, y, x (n, 3): its radius in nm over each axis' voxel
    size, so a ball in voxels of (60, 30, 30) nm reaches half as many voxels along z as along y and x."""
    vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), float)
    radius_nm = np.asarray(table["equivalent_radius_vox"], float) * float(np.cbrt(np.prod(vs)))
    return radius_nm[:, None] / vs[None, :]


def _edge_flags(before, after, matrix, shape_b, shape_a, margin, voxel_size=None) -> tuple[np.ndarray, np.ndarray]:
    """An object is at the edge if it touches its own scan's border or would lie outside the other scan (its
    extent along each axis, in that axis' voxels, within ``margin`` voxels of a border)."""
    cb, ca = _centroids(before), _centroids(after)
    rb, ra = axis_reach(before, voxel_size), axis_reach(after, voxel_size)
    inv = np.linalg.inv(matrix)
    eb = (before["touches_border"] > 0) | ~_in_view(apply(matrix, cb), rb, shape_a, margin)
    ea = (after["touches_border"] > 0) | ~_in_view(apply(inv, ca), ra, shape_b, margin)
    return eb, ea


def centroid_hits(before: dict, after: dict, matrix, shape_after, *, voxel_size=None, after_voxel_size=None,
                  options: MatchOptions | None = None) -> tuple[int, int]:
    """How many BEFORE objects (of at least ``options.min_voxels``, off their border) the transform carries to a
    point inside the AFTER scan, and how many of those land within the tolerance (:func:`tolerance_nm`) of an
    AFTER object's centroid: a check of a transform that needs no matching."""
    from scipy.spatial import cKDTree

    options = options or MatchOptions()
    min_voxels = options.min_voxels
    vs_a = np.asarray(after_voxel_size if after_voxel_size is not None else
                      voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), float)
    tol = tolerance_nm(options, voxel_size, after_voxel_size)
    keep = (np.asarray(before["volume_vox"]) >= min_voxels) & ~np.asarray(before["touches_border"], bool)
    q = apply(matrix, _centroids(before)[keep])
    q = q[np.all((q >= 0) & (q <= np.asarray(shape_after, float) - 1), axis=1)]
    ca = _centroids(after)
    if not len(q) or not len(ca):
        return len(q), 0
    dist, _ = cKDTree(ca * vs_a).query(q * vs_a, distance_upper_bound=tol)
    return len(q), int(np.isfinite(dist).sum())


def pair_objects(before: dict, after: dict, overlaps: dict, carried_voxels: dict, matrix, *, voxel_size,
                 options: MatchOptions, after_voxel_size=None) -> Links:
    """:class:`Links`, from object tables and overlaps ``{(after, before): n}``.

    Worked on arrays over all candidate pairs (objects are indexed by their row in each table), so a scan's
    millions of objects cost arrays, not Python dicts and sets per object.
    """
    keys = np.fromiter((k for k in overlaps), dtype=np.dtype((np.int64, 2)), count=len(overlaps)).reshape(-1, 2)
    counts = np.fromiter(overlaps.values(), dtype=np.int64, count=len(overlaps))
    carried = np.fromiter(carried_voxels.items(), dtype=np.dtype((np.int64, 2)),
                          count=len(carried_voxels)).reshape(-1, 2)
    return _pair(before, after, keys[:, 0], keys[:, 1], counts, carried[:, 0], carried[:, 1], matrix,
                 voxel_size=voxel_size, after_voxel_size=after_voxel_size, options=options)


def _pair(before: dict, after: dict, ov_after, ov_before, ov_voxels, carried_labels, carried_voxels, matrix, *,
          voxel_size, options: MatchOptions, after_voxel_size=None) -> Links:
    """:func:`pair_objects` from arrays: the overlaps' AFTER and BEFORE labels and voxels, the BEFORE labels
    carried and their voxels. Positions in nm in the AFTER scan (``after_voxel_size``, default
    ``voxel_size``), where the transform carries the BEFORE centroids."""
    vs = np.asarray(voxel_size, float)
    vs_a = np.asarray(after_voxel_size if after_voxel_size is not None else voxel_size, float)
    tol = tolerance_nm(options, vs, vs_a)
    lb, la = np.asarray(before["label"], np.int64), np.asarray(after["label"], np.int64)
    n_b, n_a = len(lb), len(la)
    cb = apply(matrix, _centroids(before)) * vs_a
    ca = _centroids(after) * vs_a
    va = after["volume_vox"].astype(float)
    carried = np.ones(n_b)  # voxels of each BEFORE object carried into the AFTER grid, at least 1
    carried_rows = label_rows(lb, np.asarray(carried_labels, np.int64))
    known_rows = carried_rows >= 0
    carried[carried_rows[known_rows]] = np.maximum(np.asarray(carried_voxels)[known_rows], 1)
    # candidate pairs (AFTER row i, BEFORE row j): an overlap, or centroids within the tolerance
    i_ov, j_ov = label_rows(la, np.asarray(ov_after, np.int64)), label_rows(lb, np.asarray(ov_before, np.int64))
    counts = np.asarray(ov_voxels, np.int64)
    known = (i_ov >= 0) & (j_ov >= 0)
    i_ov, j_ov, counts = i_ov[known], j_ov[known], counts[known]
    if n_a and n_b:
        from scipy.spatial import cKDTree

        near = cKDTree(ca).sparse_distance_matrix(cKDTree(cb), tol, output_type="ndarray")
        i_near, j_near = near["i"].astype(np.int64), near["j"].astype(np.int64)
    else:
        i_near = j_near = np.zeros(0, np.int64)
    key = np.unique(np.concatenate([i_ov * max(n_b, 1) + j_ov, i_near * max(n_b, 1) + j_near]))
    rows, cols = key // max(n_b, 1), key % max(n_b, 1)
    ov = np.zeros(len(key), float)
    ov[np.searchsorted(key, i_ov * max(n_b, 1) + j_ov)] = counts
    dist = np.linalg.norm(ca[rows] - cb[cols], axis=1) if len(rows) else np.zeros(0)
    # beyond the tolerance an overlap makes a candidate only if it holds at least min_overlap of the smaller
    # object's voxels: a dissolved object and a new neighbour touching by a voxel or two are no pair
    pairable = (dist <= tol) | (ov >= options.min_overlap * np.minimum(va[rows], carried[cols]))
    p_rows, p_cols, p_ov, p_dist = rows[pairable], cols[pairable], ov[pairable], dist[pairable]
    score = 2 * p_ov / (va[p_rows] + carried[p_cols]) + 0.1 * np.clip(1 - p_dist / tol, 0, 1) if len(p_rows) \
        else np.zeros(0)
    pairs_a, pairs_b = assign(p_rows, p_cols, score, n_a, n_b)
    group_of_a = np.full(n_a, -1, np.int64)  # a group is named by the AFTER row of its pair
    group_of_b = np.full(n_b, -1, np.int64)
    group_of_a[pairs_a] = pairs_a
    group_of_b[pairs_b] = pairs_a
    paired_a, paired_b = group_of_a >= 0, group_of_b >= 0
    # each object's best overlap in the other scan (ties: the lowest row, as candidates come sorted by label)
    best_i, n_for_b = _best(cols, rows, ov, n_b)
    best_j, n_for_a = _best(rows, cols, ov, n_a)
    # many to one: an unpaired BEFORE object mostly inside a paired AFTER object joins its group
    j = np.flatnonzero(~paired_b & (best_i >= 0))
    j = j[(n_for_b[j] >= options.min_overlap * carried[j]) & paired_a[best_i[j]]]
    group_of_b[j] = group_of_a[best_i[j]]
    merged = np.zeros(n_a, bool)
    merged[group_of_b[j]] = True
    # one to many: an unpaired AFTER object inside a BEFORE object of a group, or a small piece beside the rest
    # (it overlaps the old object and its centre lies within it, plus the tolerance)
    rb_nm = before["equivalent_radius_vox"] * float(np.cbrt(np.prod(vs)))
    i = np.flatnonzero(~paired_a & (best_j >= 0))
    inside = n_for_a[i] >= options.min_overlap * va[i]
    close = np.linalg.norm(ca[i] - cb[best_j[i]], axis=1) <= rb_nm[best_j[i]] + tol if len(i) else np.zeros(0, bool)
    i = i[(inside | close) & (group_of_b[best_j[i]] >= 0)]
    group_of_a[i] = group_of_b[best_j[i]]
    split = np.zeros(n_a, bool)
    split[group_of_a[i]] = True
    return _links(lb, la, group_of_b, group_of_a, merged, split)


def _best(mine: np.ndarray, theirs: np.ndarray, ov: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each object (``mine``'s rows 0..n-1): the object of the other scan it overlaps most (-1 for none)
    and that overlap; ties go to the lowest row of the other scan."""
    best, amount = np.full(n, -1, np.int64), np.zeros(n)
    has = ov > 0
    if has.any():
        m, t, o = mine[has], theirs[has], ov[has]
        order = np.lexsort((t, -o, m))  # by object, then most overlap, then lowest row
        first = order[np.r_[True, m[order][1:] != m[order][:-1]]]
        best[m[first]], amount[m[first]] = t[first], o[first]
    return best, amount


def _links(lb, la, group_of_b, group_of_a, merged, split) -> Links:
    """Links from each object's group (the AFTER row naming it, -1 for none): groups in order of their lowest
    BEFORE row (each group's objects in row order), then the vanished BEFORE and the appeared AFTER objects in
    row order."""
    b_rows = np.flatnonzero(group_of_b >= 0)  # ascending rows
    a_rows = np.flatnonzero(group_of_a >= 0)
    names = np.unique(group_of_b[b_rows])     # every group has a BEFORE object (its pair)
    lowest = np.full(len(names), np.iinfo(np.int64).max)
    np.minimum.at(lowest, np.searchsorted(names, group_of_b[b_rows]), b_rows)
    rank = np.empty(len(names), np.int64)
    rank[np.argsort(lowest, kind="stable")] = np.arange(len(names))
    rank_b = rank[np.searchsorted(names, group_of_b[b_rows])]
    rank_a = rank[np.searchsorted(names, group_of_a[a_rows])]
    by_b = b_rows[np.argsort(rank_b, kind="stable")]  # group after group, rows ascending within one
    by_a = a_rows[np.argsort(rank_a, kind="stable")]
    groups = names[np.argsort(rank)]
    status = np.where(merged[groups], STATUSES.index("merged"),
                      np.where(split[groups], STATUSES.index("split"), STATUSES.index("persisting")))
    vanished, appeared = np.flatnonzero(group_of_b < 0), np.flatnonzero(group_of_a < 0)
    n_groups = len(groups)
    count_b = np.concatenate([np.bincount(rank_b, minlength=n_groups), np.ones(len(vanished), np.int64),
                              np.zeros(len(appeared), np.int64)])
    count_a = np.concatenate([np.bincount(rank_a, minlength=n_groups), np.zeros(len(vanished), np.int64),
                              np.ones(len(appeared), np.int64)])
    status = np.concatenate([status, np.full(len(vanished), STATUSES.index("vanished")),
                             np.full(len(appeared), STATUSES.index("appeared"))]).astype(np.uint8)
    return Links(status, np.asarray(lb, np.int64)[np.concatenate([by_b, vanished])],
                 np.concatenate([[0], np.cumsum(count_b)]).astype(np.int64),
                 np.asarray(la, np.int64)[np.concatenate([by_a, appeared])],
                 np.concatenate([[0], np.cumsum(count_a)]).astype(np.int64))


def refine_on_objects(before: dict, after: dict, links, matrix, *, voxel_size, after_voxel_size=None,
                      similarity=False, min_voxels: int = 8) -> tuple[np.ndarray, dict]:
    """Refit the transform to the centroids of persisting pairs (robust: drops pairs off the consensus).

    The fit is made in nm, each scan's centroids scaled by its own voxel size (``after_voxel_size``: the AFTER
    scan's where it differs), and returned as BEFORE voxel -> AFTER voxel. The info's ``residual_vox`` is the
    RMS distance of the used pairs in AFTER voxels, ``residual_nm`` the same in nm (AFTER scan's voxel size).
    """
    vs = np.asarray(voxel_size, float)
    vs_a = vs if after_voxel_size is None else np.asarray(after_voxel_size, float)
    links = links_from(links)
    pers = links.status == STATUSES.index("persisting")
    j = label_rows(before["label"], links.first("before")[pers])
    i = label_rows(after["label"], links.first("after")[pers])
    if (j < 0).any() or (i < 0).any():
        raise TomosegError("a persisting link names a label that is not in its scan's object table")
    keep = (np.asarray(before["volume_vox"])[j] >= min_voxels) & (np.asarray(after["volume_vox"])[i] >= min_voxels)
    keep &= ~np.asarray(before["touches_border"], bool)[j] & ~np.asarray(after["touches_border"], bool)[i]
    src, dst = _centroids(before)[j[keep]], _centroids(after)[i[keep]]
    if len(src) < 6:
        return np.asarray(matrix, float), {"pairs": len(src), "used": 0, "residual_vox": float("nan"),
                                           "residual_nm": float("nan")}
    src, dst = np.asarray(src) * vs, np.asarray(dst) * vs_a  # nm, each scan its own voxel size
    keep = np.ones(len(src), bool)
    floor = 1e-3 * float(vs_a.mean())
    for _ in range(5):
        m_nm = fit_transform(src[keep], dst[keep], similarity=similarity)
        res = np.linalg.norm(apply(m_nm, src) - dst, axis=1)
        mad = np.median(np.abs(res[keep] - np.median(res[keep])))
        new = res <= np.median(res[keep]) + 4 * 1.4826 * max(mad, floor)
        if new.sum() < 6 or np.array_equal(new, keep):
            break
        keep = new
    m = np.diag(np.append(1.0 / vs_a, 1.0)) @ m_nm @ np.diag(np.append(vs, 1.0))
    res_vox = np.linalg.norm(apply(m, src / vs) - dst / vs_a, axis=1)
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
    labels, and ``{before: voxels carried}`` (:func:`overlap_arrays` as dicts)."""
    keys, voxels, labels, carried = overlap_arrays(before_labels, after_labels, matrix, block=block, threads=threads,
                                                   progress=progress)
    return pairs_of(keys, voxels), dict(zip(labels.tolist(), carried.tolist()))


def overlap_arrays(before_labels, after_labels, matrix, *, block=(64, 256, 256), threads: int | None = None,
                   progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The overlaps of the BEFORE labels carried into the AFTER grid with the AFTER labels, block by block of the
    AFTER grid: sorted keys ``after << 32 | before`` and their voxels, then the BEFORE labels carried and their
    voxels (int64 arrays; no dict per pair, for scans of millions of objects).

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
    return (*sum_by_key(pair_keys, pair_counts), *sum_by_key(ids, counts))


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
          after_voxel_size=None, options: MatchOptions | None = None, progress=None) -> tuple[Links, dict]:
    """Links between the objects of two labelled scans, given the transform (BEFORE voxel → AFTER voxel) and
    their voxel sizes (``after_voxel_size``: the AFTER scan's where it differs).

    The label images may be arrays or volumes on disk (see :func:`carried_overlaps`).
    Returns ``(links, info)``: :class:`Links` (iterated: ``(before labels, after labels, status)``); info has
    the overlaps as arrays (:func:`overlap_arrays`).
    """
    options = options or MatchOptions()
    vs = tuple(voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    keys, voxels, carried_labels, carried = overlap_arrays(before_labels, after_labels, matrix, progress=progress)
    links = _pair(before, after, keys >> 32, keys & 0xFFFFFFFF, voxels, carried_labels, carried, matrix,
                  voxel_size=vs, after_voxel_size=after_voxel_size, options=options)
    return links, {"overlap_keys": keys, "overlap_voxels": voxels, "carried_labels": carried_labels,
                   "carried_voxels": carried}
