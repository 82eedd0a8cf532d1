"""Score a tracking against known truth (a phantom pair's expected matches)."""

from __future__ import annotations

from ..objects.matching import block_overlaps


def label_map(labels, instances) -> dict:
    """{label: instance id} by largest overlap (labels found by the tool → the phantom's ids); arrays or
    volumes on disk, read block by block."""
    best: dict = {}
    for (lab, inst), n in block_overlaps(labels, instances).items():
        if n > best.get(lab, (0, 0))[0]:
            best[lab] = (n, inst)
    return {lab: inst for lab, (n, inst) in best.items()}


def compare_with_truth(matches: dict, truth: dict, *, min_voxels: int = 8, before_map=None, after_map=None) -> dict:
    """Link precision and recall, and per-status recall, over truth objects off the edge with >= min_voxels.

    A link is a (BEFORE id, AFTER id) pair with a status; appeared and vanished objects are links to id 0.
    ``before_map`` / ``after_map`` translate the tool's labels into the truth's ids (identity by default).
    """
    def mapped(label, mapping):  # labels the map does not know (no overlap with any truth object) match nothing
        if not label:
            return 0
        return label if mapping is None else int(mapping.get(int(label), -int(label)))

    t_ok = (truth["edge"] == 0) & ((truth["before_voxels"] == 0) | (truth["before_voxels"] >= min_voxels)) & \
        ((truth["after_voxels"] == 0) | (truth["after_voxels"] >= min_voxels))
    t_links = {(int(b), int(a)): s for b, a, s in zip(truth["before_label"][t_ok], truth["after_label"][t_ok],
                                                      truth["status"][t_ok])}
    considered_b = {b for b, _ in t_links if b}
    considered_a = {a for _, a in t_links if a}
    p_links = {}
    for b, a, s in zip(matches["before_label"], matches["after_label"], matches["status"]):
        b, a = mapped(int(b), before_map), mapped(int(a), after_map)
        if (b and b in considered_b) or (a and a in considered_a):
            p_links[(b, a)] = s
    found = [k for k in t_links if k in p_links]
    right_status = [k for k in found if p_links[k] == t_links[k]]
    by_status = {}
    for status in sorted(set(t_links.values())):
        ks = [k for k, s in t_links.items() if s == status]
        by_status[status] = {"truth": len(ks), "recovered": sum(1 for k in ks if p_links.get(k) == status)}
    return {"truth_links": len(t_links), "predicted_links": len(p_links), "found": len(found),
            "recall": len(found) / max(len(t_links), 1), "precision": len(found) / max(len(p_links), 1),
            "status_accuracy": len(right_status) / max(len(found), 1), "by_status": by_status}
