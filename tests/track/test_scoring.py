"""Scoring a tracking against a phantom pair's truth: every false link counts."""

import numpy as np

from tomoseg.track.scoring import compare_with_truth, label_map


def _truth(rows):
    cols = ("before_label", "after_label", "status", "edge", "before_voxels", "after_voxels")
    out = {c: np.asarray([r[k] for r in rows]) for k, c in enumerate(cols)}
    out["status"] = out["status"].astype(object)
    return out


def _matches(rows):
    cols = ("before_label", "after_label", "status", "edge", "small")
    out = {c: np.asarray([r[k] for r in rows]) for k, c in enumerate(cols)}
    out["status"] = out["status"].astype(object)
    return out


def test_false_detections_and_false_splits_lower_precision():
    """Truth: 3 persisting objects and 1 appeared. The tool cut AFTER object 2 in two (labels 20 and 21, both in
    truth object 2: a false split) and found 2 spurious objects (labels 30, 31: no truth object) as appeared;
    before, both were left out: precision 1.000. Now 4 of 7 rows are right: the split's first row, the other two
    persisting pairs and the true appeared object."""
    truth = _truth([(1, 1, "persisting", 0, 100, 100), (2, 2, "persisting", 0, 100, 100),
                    (3, 3, "persisting", 0, 100, 100), (0, 4, "appeared", 0, 0, 50)])
    matches = _matches([(1, 10, "persisting", 0, 0), (2, 20, "split", 0, 0), (2, 21, "split", 0, 0),
                        (3, 12, "persisting", 0, 0), (0, 13, "appeared", 0, 0), (0, 30, "appeared", 0, 0),
                        (0, 31, "appeared", 0, 0)])
    after_map = {10: 1, 20: 2, 21: 2, 12: 3, 13: 4}
    s = compare_with_truth(matches, truth, after_map=after_map)
    assert s["truth_links"] == 4 and s["found"] == 4 and s["recall"] == 1.0
    assert s["predicted_links"] == 7 and s["false_links"] == 3 and s["precision"] == 4 / 7
    assert s["status_accuracy"] == 3 / 4 and s["status_recall"] == 3 / 4 and s["status_precision"] == 3 / 7
    assert s["by_status"]["appeared"] == {"truth": 1, "recovered": 1, "predicted": 3}
    assert s["by_status"]["split"] == {"truth": 0, "recovered": 0, "predicted": 2}
    # rows the score leaves out: a spurious object flagged at the edge by the tool, one on a truth edge object
    truth_e = _truth([(1, 1, "persisting", 0, 100, 100), (5, 5, "persisting", 1, 100, 100)])
    m_e = _matches([(1, 1, "persisting", 0, 0), (0, 40, "appeared", 1, 0), (5, 5, "persisting", 1, 0)])
    s = compare_with_truth(m_e, truth_e, after_map={1: 1, 5: 5})
    assert s["predicted_links"] == 1 and s["precision"] == 1.0


def test_label_map_needs_most_of_a_tool_object_inside_the_truth_object():
    """A tool object mostly outside every truth object (here 1 of 27 voxels inside) matches nothing; one mostly
    inside maps to that object; two pieces of one truth object both map to it."""
    truth = np.zeros((8, 8, 8), np.uint32)
    truth[1:4, 1:4, 1:4] = 7
    tool = np.zeros_like(truth)
    tool[1:4, 1:4, 1:2] = 1   # 9 voxels, all in 7
    tool[1:4, 1:4, 2:4] = 2   # 18 voxels, all in 7
    tool[3:6, 3:6, 3:6] = 3   # 27 voxels, 1 in 7
    tool[3, 3, 3] = 3
    assert label_map(tool, truth) == {1: 7, 2: 7}
