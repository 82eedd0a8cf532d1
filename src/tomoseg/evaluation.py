"""Evaluation of a prediction against ground truth: voxel scores (chunk by chunk) and object detection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import TomosegError
from .metrics import ConfusionMatrix, confusion_matrix
from .objects.analysis import AnalysisOptions, is_probability
from .io.blocks import block_grid, storage_chunks
from .objects.matching import block_overlaps, check_same_shape, detection_scores, match_objects
from .objects.measure import select_objects, summarize


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
    return voxel_scores(pred, labels, threshold=threshold, probability=probability)[0]


def voxel_scores(pred, labels, *, threshold: int = 127, probability: bool | None = None, progress=None) -> tuple:
    """:func:`voxel_confusion`, and per z slice the ground-truth object voxels and the errors (FP + FN), in one
    pass of whole chunks of the prediction (the slices worth a hit map come from these counts)."""
    check_same_shape(pred, labels)
    if probability is None:
        probability = is_probability(pred)
    cm = ConfusionMatrix()
    objects = np.zeros(pred.shape[0], np.int64)
    errors = np.zeros(pred.shape[0], np.int64)
    for sl in block_grid(pred.shape, storage_chunks(pred), max_voxels=2**25):  # whole chunks of the prediction
        p = np.asarray(pred[sl])
        p = p > threshold if probability else p != 0
        t = check_binary_labels(np.asarray(labels[sl]), getattr(labels, "path", "labels"))
        cm = cm + confusion_matrix(p, t)
        objects[sl[0]] += np.count_nonzero(t, axis=(1, 2))
        errors[sl[0]] += np.count_nonzero(p != t, axis=(1, 2))
        if progress is not None:
            progress.update(int(p.size))
    return cm, {"objects": objects, "errors": errors}


def evaluate(pred, labels, *, threshold: int = 127, intensity=None, voxel_size=None,
             options: AnalysisOptions | None = None, workdir=None, progress=None) -> dict:
    """Voxel scores and object-level detection of a prediction against ground truth, at any size.

    Volumes up to ``options.in_memory_voxels`` are labelled in memory; larger ones chunk by chunk
    (:func:`~tomoseg.objects.labelled.label_scan`, labels kept in ``workdir`` until the objects are matched),
    their overlaps counted block by block: nothing is read whole. ``progress`` is given the volume's voxels
    four times: the voxel scores, each labelling, the overlaps.

    Returns a dict with ``voxel`` (confusion counts, normalized matrix, accuracy, recall, precision, F1,
    IoU), ``objects`` (detection recall, precision, F1, overall and by radius) and ``table1`` (the paper's
    Table 1 for prediction and ground truth).
    """
    from .objects.analysis import MaskView, check_mask_like, warn_if_flooded
    from .objects.labelled import label_scan

    options = options or AnalysisOptions()
    where = getattr(pred, "path", "the prediction")
    check_same_shape(pred, labels)
    if intensity is not None and tuple(intensity.shape) != tuple(pred.shape):
        raise TomosegError(f"{getattr(intensity, 'path', 'the intensity image')}: has shape "
                           f"{tuple(intensity.shape)}, {where} {tuple(pred.shape)}; the gray values must match the "
                           "prediction voxel for voxel")
    check_mask_like(pred, where, command="evaluate")
    prob = is_probability(pred)
    cm, per_slice = voxel_scores(pred, labels, threshold=threshold, probability=prob, progress=progress)
    warn_if_flooded((cm.tp + cm.fp) / max(cm.tp + cm.fp + cm.fn + cm.tn, 1), where)
    result = {"voxel": {**cm.scores(), "normalized": cm.normalized().tolist()}, "threshold": threshold,
              "prediction_is_probability": prob, "shape": list(pred.shape)}
    scans = []
    pred_mask = MaskView(pred, replace(options, threshold=threshold), probability=prob)  # > threshold, or nonzero
    truth_mask = MaskView(labels)  # binary (checked above): 0/1, or 0/255 above 127
    try:
        for mask, probability in ((pred_mask, pred if prob else None), (truth_mask, None)):
            scans.append(label_scan(intensity, mask, probability=probability, voxel_size=voxel_size,
                                    connectivity=options.connectivity, in_memory_voxels=options.in_memory_voxels,
                                    chunks=options.chunks, workdir=workdir, progress=progress))
        (ptab, plab), (ttab, tlab) = ((s.table, s.labels) for s in scans)
        pairs = match_objects(ptab, ttab, block_overlaps(plab, tlab, chunks=options.chunks, progress=progress))
    finally:
        for scan in scans:
            scan.discard()
    pkeep = select_objects(ptab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    tkeep = select_objects(ttab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    result["objects"] = detection_scores(ptab, ttab, pairs, pred_keep=pkeep, truth_keep=tkeep)
    result["objects_all_sizes"] = detection_scores(ptab, ttab, pairs)
    result["table1"] = {"ground_truth": summarize(tkeep), "prediction": summarize(pkeep)}
    result["_tables"] = {"ground truth": tkeep, "prediction": pkeep}
    result["_masks"] = (pred_mask, truth_mask, per_slice)
    return result


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
    if masks is not None:  # slices read one at a time, chosen from the counts; captions say why each slice
        p, t, per_slice = masks
        figures.hit_map_figures(image, p, t, figs, voxel_size=voxel_size, counts=per_slice)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    return result
