"""Evaluation of a prediction against ground truth: voxel scores (chunk by chunk) and object detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TomosegError
from .metrics import ConfusionMatrix, confusion_matrix
from .objects.analysis import AnalysisOptions, is_probability
from .io.blocks import block_grid, storage_chunks
from .objects.labelling import label_objects
from .objects.matching import check_same_shape, detection_scores, match_objects, overlap_pairs
from .objects.measure import measure_objects, select_objects, summarize


def check_binary_labels(block: np.ndarray, name) -> np.ndarray:
    if block.dtype in (np.uint8, np.bool_):  # the usual labels: one counting pass, 5x faster than np.unique
        values = np.flatnonzero(np.bincount(block.view(np.uint8).ravel(), minlength=2))
    else:
        values = np.unique(block)
    if set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}:
        return block > 0
    raise TomosegError(f"{name}: ground truth must be binary (0/1 or 0/255), found values "
                       f"{values[:6].tolist()}{'...' if len(values) > 6 else ''}")


def voxel_confusion(pred, labels, *, threshold: int = 127, probability: bool | None = None) -> ConfusionMatrix:
    """Confusion matrix of a prediction (mask or uint8 probability) against binary labels, slab by slab."""
    check_same_shape(pred, labels)
    if probability is None:
        probability = is_probability(pred)
    cm = ConfusionMatrix()
    for sl in block_grid(pred.shape, storage_chunks(pred), max_voxels=2**25):  # whole chunks of the prediction
        p = np.asarray(pred[sl])
        p = p > threshold if probability else p != 0
        t = check_binary_labels(np.asarray(labels[sl]), getattr(labels, "path", "labels"))
        cm = cm + confusion_matrix(p, t)
    return cm


def evaluate(pred, labels, *, threshold: int = 127, intensity=None, voxel_size=None,
             options: AnalysisOptions | None = None, object_limit_voxels: int = 2**28) -> dict:
    """Voxel scores and object-level detection of a prediction against ground truth.

    Returns a dict with ``voxel`` (confusion counts, normalized matrix, accuracy, recall, precision, F1,
    IoU), and, for volumes up to ``object_limit_voxels``, ``objects`` (detection recall, precision, F1,
    overall and by radius) and ``table1`` (the paper's Table 1 for prediction and ground truth).
    """
    options = options or AnalysisOptions()
    prob = is_probability(pred)
    cm = voxel_confusion(pred, labels, threshold=threshold, probability=prob)
    result = {"voxel": {**cm.scores(), "normalized": cm.normalized().tolist()}, "threshold": threshold,
              "prediction_is_probability": prob, "shape": list(pred.shape)}
    size = int(np.prod(pred.shape, dtype=np.int64))
    if size > object_limit_voxels:
        result["objects"] = None
        result["objects_note"] = (f"object matching runs in memory and is skipped above {object_limit_voxels} "
                                  "voxels; crop the volume to evaluate objects")
        return result
    p = np.asarray(pred[:, :, :])
    p = p > threshold if prob else p != 0
    t = check_binary_labels(np.asarray(labels[:, :, :]), getattr(labels, "path", "labels"))
    plab, _ = label_objects(p, connectivity=options.connectivity)
    tlab, _ = label_objects(t, connectivity=options.connectivity)
    gray = None if intensity is None else np.asarray(intensity[:, :, :])
    ptab = measure_objects(plab, intensity=gray, probability=np.asarray(pred[:, :, :]) if prob else None,
                           voxel_size=voxel_size)
    ttab = measure_objects(tlab, intensity=gray, voxel_size=voxel_size)
    pairs = match_objects(ptab, ttab, overlap_pairs(plab, tlab))
    pkeep = select_objects(ptab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    tkeep = select_objects(ttab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    result["objects"] = detection_scores(ptab, ttab, pairs, pred_keep=pkeep, truth_keep=tkeep)
    result["objects_all_sizes"] = detection_scores(ptab, ttab, pairs)
    result["table1"] = {"ground_truth": summarize(tkeep), "prediction": summarize(pkeep)}
    result["_tables"] = {"ground truth": tkeep, "prediction": pkeep}
    result["_masks"] = (p, t)
    return result


def hit_map_slices(pred_mask: np.ndarray, truth: np.ndarray, n: int = 2) -> list[int]:
    """The slice with the most ground-truth object voxels and the one with the most errors."""
    objects = truth.sum(axis=(1, 2))
    errors = (pred_mask != truth).sum(axis=(1, 2))
    picks = [int(np.argmax(objects)), int(np.argmax(errors))]
    return sorted(set(picks))[:n]


def write_evaluation(result: dict, out_dir, *, image=None, voxel_size=None) -> dict:
    """Write ``evaluation.json``, the tables and the figures into ``out_dir``; returns the JSON written."""
    import json

    from .report import figures
    from .table import write_csv

    out = Path(out_dir)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    cm = ConfusionMatrix(**{k: result["voxel"][k] for k in ("tp", "fp", "fn", "tn")})
    figures.confusion_figure(cm, figs / "confusion_matrix.png")
    tables = result.pop("_tables", None)
    masks = result.pop("_masks", None)
    if tables:
        figures.size_histogram(tables, figs / "size_histogram.png", voxel_size=voxel_size)
        figures.sphericity_figure(tables, figs / "sphericity_vs_radius.png", voxel_size=voxel_size)
        for name, t in tables.items():
            write_csv(t, out / f"objects_{name.replace(' ', '_')}.csv", overwrite=True)
    if masks is not None:
        p, t = masks
        figures.hit_map_figures(image, p, t, figs, voxel_size=voxel_size)  # captions say why each slice
    (out / "evaluation.json").write_text(json.dumps(result, indent=1, default=float))
    return result
