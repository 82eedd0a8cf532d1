"""Score a tracking against known truth (a phantom pair's expected matches)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..objects.matching import block_overlaps

MIN_SHARE = 0.5  # a tool object stands for a truth object when at least this share of it lies in that object


def label_map(labels, instances, *, min_share: float = MIN_SHARE, voxels: dict | None = None) -> dict:
    """{label: instance id}: each tool label → the truth object holding at least ``min_share`` of its voxels
    (the largest overlap); labels mostly outside every truth object are left out (they match nothing). Arrays
    or volumes on disk, read block by block. Two tool labels may map to one truth id (an over-segmented object):
    :func:`compare_with_truth` counts the second one as a false link. ``voxels``: {label: voxels} of the tool's
    objects where known (its object table), else counted here."""
    overlaps = block_overlaps(labels, instances)
    lab_ids = np.fromiter((lab for lab, _ in overlaps), np.int64, count=len(overlaps))
    inst_ids = np.fromiter((inst for _, inst in overlaps), np.int64, count=len(overlaps))
    shared = np.fromiter(overlaps.values(), np.int64, count=len(overlaps))
    if not len(shared):
        return {}
    _, at = np.unique(lab_ids, return_inverse=True)
    if voxels is None:  # every tool label's voxels, inside truth objects or not
        voxels = {lab: n for (lab, other), n in block_overlaps(labels, labels).items() if lab == other}
    size = np.array([voxels.get(lab, 0) for lab in lab_ids.tolist()], np.int64)
    best = np.lexsort((inst_ids, -shared, at))  # by label, largest overlap first (ties: lowest truth id)
    first = best[np.r_[True, at[best][1:] != at[best][:-1]]]
    keep = shared[first] >= min_share * size[first]
    return dict(zip(lab_ids[first][keep].tolist(), inst_ids[first][keep].tolist()))


def compare_with_truth(matches: dict, truth: dict, *, min_voxels: int = 8, before_map=None, after_map=None) -> dict:
    """Link precision and recall, and per-status recall, over truth objects off the edge with >= min_voxels.

    A link is a (BEFORE id, AFTER id) pair with a status; appeared and vanished objects are links to id 0.
    ``before_map`` / ``after_map`` translate the tool's labels into the truth's ids (identity by default).

    Every row of the tool's table counts (``predicted_links``) unless it concerns only objects the score leaves
    out: truth objects at the edge or small, or tool objects flagged ``edge``/``small`` that no scored truth
    object is part of. A tool object matching no truth object is a false link (a spurious "appeared" or
    "vanished" object); two rows naming one truth link (an object cut in two: a false split) count once as
    found and once as false. ``precision`` = found / predicted rows, ``recall`` = found / truth links;
    ``status_accuracy`` = the share of found links with the right status; ``status_precision`` and
    ``status_recall`` count a link as found only when its status is right too.
    """
    def mapped(label, mapping, unknown):  # a label matching no truth object gets an id of its own: never found
        if not label:
            return 0
        if mapping is None:
            return int(label)
        return int(mapping[int(label)]) if int(label) in mapping else -unknown.setdefault(int(label), len(unknown) + 1)

    t_ok = (truth["edge"] == 0) & ((truth["before_voxels"] == 0) | (truth["before_voxels"] >= min_voxels)) & \
        ((truth["after_voxels"] == 0) | (truth["after_voxels"] >= min_voxels))
    t_links = {(int(b), int(a)): s for b, a, s in zip(truth["before_label"][t_ok], truth["after_label"][t_ok],
                                                      truth["status"][t_ok])}
    considered_b = {b for b, _ in t_links if b}
    considered_a = {a for _, a in t_links if a}
    left_out_b = {int(b) for b in truth["before_label"][~t_ok] if b} - considered_b
    left_out_a = {int(a) for a in truth["after_label"][~t_ok] if a} - considered_a
    n = len(matches["status"])
    tool_ok = np.ones(n, bool)
    for flag in ("edge", "small"):
        if flag in matches:
            tool_ok &= np.asarray(matches[flag]) == 0
    unknown_b, unknown_a = {}, {}
    p_rows = []  # (b, a, status) of every predicted row scored
    for b, a, s, ok in zip(matches["before_label"], matches["after_label"], matches["status"], tool_ok):
        b, a = mapped(int(b), before_map, unknown_b), mapped(int(a), after_map, unknown_a)
        if (b and b in considered_b) or (a and a in considered_a):
            p_rows.append((b, a, s))
        elif ok and not (b in left_out_b or a in left_out_a):  # a false link among objects the score covers
            p_rows.append((b, a, s))
    p_count = Counter((b, a) for b, a, _ in p_rows)
    p_status = {}
    for b, a, s in p_rows:  # a truth link named by several rows: found if any of them has the right status
        if p_status.get((b, a)) != t_links.get((b, a)):
            p_status[(b, a)] = s
    found = [k for k in t_links if p_count[k]]
    right_status = [k for k in found if p_status[k] == t_links[k]]
    by_status = {}
    for status in sorted(set(t_links.values()) | {s for *_, s in p_rows}):
        ks = [k for k, s in t_links.items() if s == status]
        by_status[status] = {"truth": len(ks), "recovered": sum(1 for k in ks if p_status.get(k) == status),
                             "predicted": sum(1 for *_, s in p_rows if s == status)}
    n_pred = len(p_rows)
    return {"truth_links": len(t_links), "predicted_links": n_pred, "found": len(found),
            "recall": len(found) / max(len(t_links), 1), "precision": len(found) / max(n_pred, 1),
            "status_accuracy": len(right_status) / max(len(found), 1),
            "status_recall": len(right_status) / max(len(t_links), 1),
            "status_precision": len(right_status) / max(n_pred, 1),
            "false_links": n_pred - len(found), "by_status": by_status}
