"""Evaluation of a prediction against ground truth: voxel scores (chunk by chunk) and object detection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import TomosegError
from .metrics import ConfusionMatrix, confusion_matrix
from .objects.analysis import AnalysisOptions, roi_box
from .io.blocks import block_grid, storage_chunks
from .io.volume import crop, path_of
from .objects.matching import block_overlaps, check_same_shape, detection_scores, match_objects
from .objects.measure import select_objects, summarize
from .objects.reading import ReadingChanged, is_probability, read_as


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
    """Confusion matrix of a prediction (mask or 0-255 probability map) against binary labels, slab by slab."""
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
        t = check_binary_labels(np.asarray(labels[sl]), path_of(labels) or "labels")
        cm = cm + confusion_matrix(p, t)
        objects[sl[0]] += np.count_nonzero(t, axis=(1, 2))
        errors[sl[0]] += np.count_nonzero(p != t, axis=(1, 2))
        if progress is not None:
            progress.update(int(p.size))
    return cm, {"objects": objects, "errors": errors}


def evaluate(pred, labels, *, threshold: int = 127, intensity=None, voxel_size=None,
             options: AnalysisOptions | None = None, workdir=None, progress=None, origin=None, roi=None) -> dict:
    """Voxel scores and object-level detection of a prediction against ground truth, at any size.

    The prediction is read as ``options.read_as`` says (:func:`~tomoseg.objects.reading.read_as`): a probability
    map (object where > ``threshold``), a mask or a label image; the voxel scores read every voxel, which
    settles the reading before the objects are labelled. Volumes up to ``options.in_memory_voxels`` are
    labelled in memory; larger ones chunk by chunk (:func:`~tomoseg.objects.labelled.label_scan`, labels kept
    in ``workdir`` until the objects are matched), their overlaps counted block by block: nothing is read whole.
    ``progress`` is given the volume's voxels four times: the voxel scores, each labelling, the overlaps; a
    prediction read again (a reading revised, a label image) adds the voxels read so far to the bar's ``total``
    and says so in its description (:class:`~tomoseg.progress.Stage`): the bar never goes back. Without
    ``voxel_size`` the tables' nm columns and Table 1's ``mean_radius_nm`` are empty (NaN, None); ``origin`` (nm)
    is added to the ``centroid_*_nm`` columns, as :func:`~tomoseg.objects.analyze` adds it. ``roi`` (three
    (start, stop) pairs or slices, z, y, x; the box of a ``segment --roi`` map, which is 0 outside it) scores
    only that box, as ``analyze(roi=)`` measures it: the voxels inside it, the objects of both sides inside it,
    those its faces cut left out as border objects; positions stay the volume's.

    Returns a dict with ``voxel`` (confusion counts, normalized matrix, accuracy, recall, precision, F1,
    IoU), ``objects`` (detection recall, precision, F1, overall and by radius, over the kept objects),
    ``objects_no_exclusions`` (the same over every object: all sizes, border objects included) and ``table1``
    (the paper's Table 1 for prediction and ground truth).
    """
    from .io.volume import check_array, checked_voxel_size
    from .objects.analysis import warn_if_flooded
    from .objects.labelled import label_scan
    from .objects.reading import MaskView, check_threshold
    from .progress import Stage

    options = options or AnalysisOptions()
    threshold = check_threshold(threshold)
    voxel_size = checked_voxel_size(voxel_size)
    pred, labels = check_array(pred, "pred"), check_array(labels, "labels")
    intensity = None if intensity is None else check_array(intensity, "intensity")
    where = path_of(pred) or "the prediction"
    check_same_shape(pred, labels)
    if intensity is not None and tuple(intensity.shape) != tuple(pred.shape):
        raise TomosegError(f"{path_of(intensity) or 'the intensity image'}: has shape "
                           f"{tuple(intensity.shape)}, {where} {tuple(pred.shape)}; the gray values must match the "
                           "prediction voxel for voxel")
    shape = tuple(int(n) for n in pred.shape)
    if roi is not None:  # the box read as the volume; positions moved back below
        roi = roi_box(roi, shape)
        pred, labels, intensity = (crop(v, roi) for v in (pred, labels, intensity))
    reading = read_as(pred, options.read_as, where=where, command="evaluate")
    # one bar for the run: a prediction read again adds the voxels read so far to its total (a Stage), the bar
    # never restarting at 0 % (it did, through the bar's reset, on each of the re-reads below)
    progress = None if progress is None else Stage(progress, again=f"reading {Path(str(where)).name} again")
    while True:  # read again where the objects show the prediction is a label image (objects/analysis.py)
        cm, per_slice, reading = _voxel_pass(pred, labels, threshold, reading, progress)
        prob = reading.probability
        scans = []
        pred_view = reading.view(pred)  # a 0-255 map of another type read as uint8 (its confidence columns)
        pred_mask = MaskView(pred_view, replace(options, threshold=threshold), probability=prob)
        truth_mask = MaskView(labels)  # binary (checked above): 0/1, or 0/255 above 127
        try:
            for mask, probability in ((pred_mask, pred_view if prob else None), (truth_mask, None)):
                scans.append(label_scan(intensity, mask, probability=probability, voxel_size=voxel_size,
                                        connectivity=options.connectivity,
                                        in_memory_voxels=options.in_memory_voxels, chunks=options.chunks,
                                        workdir=workdir, progress=progress))
                if len(scans) == 1 and reading.shows_object_ids(scans[0].table, options.min_voxels):
                    break  # a sparse label image the object-ID sample missed
            else:
                (ptab, plab), (ttab, tlab) = ((s.table, s.labels) for s in scans)
                pairs = match_objects(ptab, ttab, block_overlaps(plab, tlab, chunks=options.chunks,
                                                                 progress=progress))
                break
        finally:
            for scan in scans:
                scan.discard()
        reading = reading.as_object_ids()
        if progress is not None:
            progress.reset()
    if progress is not None:
        progress.finish()  # the bar's description as it was
    warn_if_flooded((cm.tp + cm.fp) / max(cm.tp + cm.fp + cm.fn + cm.tn, 1), where)
    result = {"voxel": {**cm.scores(), "normalized": cm.normalized().tolist()}, "threshold": threshold,
              "prediction_is_probability": prob, "prediction_read_as": reading.kind,
              "prediction_reading": reading.note(threshold), "shape": list(shape),
              "roi": [[b.start, b.stop] for b in roi] if roi is not None else None}  # scored inside it
    if roi is not None:
        for table in (ptab, ttab):
            _move_positions(table, [b.start for b in roi], voxel_size)
    pkeep = select_objects(ptab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    tkeep = select_objects(ttab, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
    result["objects"] = detection_scores(ptab, ttab, pairs, pred_keep=pkeep, truth_keep=tkeep)
    result["objects_no_exclusions"] = detection_scores(ptab, ttab, pairs)  # every size, border objects too
    result["table1"] = {"ground_truth": summarize(tkeep), "prediction": summarize(pkeep)}
    if not voxel_size:  # the nm columns are NaN (measure_objects), Table 1's mean radius in nm None
        for t1 in result["table1"].values():
            t1["mean_radius_nm"] = None  # not the voxel value under another name (as analyze says it)
    elif origin is not None:
        for t in (pkeep, tkeep):
            for axis, name in enumerate("zyx"):
                t[f"centroid_{name}_nm"] = t[f"centroid_{name}_nm"] + float(origin[axis])
    result["_tables"] = {"ground truth": tkeep, "prediction": pkeep}
    result["_masks"] = (pred_mask, truth_mask, per_slice)
    return result


def _move_positions(table: dict, start, voxel_size) -> None:
    """Centroids and bounding boxes measured in a box moved to the volume's positions (voxels and nm)."""
    for axis, name in enumerate("zyx"):
        for column in (f"centroid_{name}", f"bbox_{name}0", f"bbox_{name}1"):
            table[column] = table[column] + start[axis]
        if voxel_size:
            table[f"centroid_{name}_nm"] = table[f"centroid_{name}_nm"] + start[axis] * float(voxel_size[axis])


def _voxel_pass(pred, labels, threshold, reading, progress):
    """The voxel scores (confusion counts, counts per slice) of ``pred`` read as ``reading`` says, every voxel
    read: a block the sample's reading does not allow reads again (reading.py). Returns them with the reading
    the whole volume gave."""
    while True:
        try:
            cm, per_slice = voxel_scores(reading.view(pred), labels, threshold=threshold,
                                         probability=reading.probability, progress=progress)
            return cm, per_slice, reading.whole()
        except ReadingChanged as changed:
            reading = reading.revised(pred, changed)
            if progress is not None:  # a Stage: its voxels added to the bar's total, the bar going on
                progress.reset()


def write_evaluation(result: dict, out_dir, *, image=None, voxel_size=None, progress=None) -> dict:
    """Write ``evaluation.json``, the tables and the figures into ``out_dir``; returns the JSON written.
    ``progress`` (a bar with ``reset`` and ``update``) is reset to the number of figures and given one step as
    each is written."""
    from .report import figures
    from .table import write_csv

    out = Path(out_dir)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    cm = ConfusionMatrix(**{k: result["voxel"][k] for k in ("tp", "fp", "fn", "tn")})
    tables = result.pop("_tables", None)
    masks = result.pop("_masks", None)
    if progress is not None:
        hit_maps = len(figures.hit_map_slices(counts=masks[2])) if masks is not None else 0
        progress.reset(total=1 + 2 * bool(tables) + hit_maps)

    def step(path):
        if progress is not None:
            progress.update(1)
        return path

    made = [step(figures.confusion_figure(cm, figs / "confusion_matrix.png"))]
    if tables:
        # names of evaluate's own: analyze's figures of the same name may share the folder
        made.append(step(figures.size_histogram(tables, figs / "evaluate_size_histogram.png",
                                                voxel_size=voxel_size, empty_note="no objects kept")))
        made.append(step(figures.sphericity_figure(tables, figs / "evaluate_sphericity_vs_radius.png",
                                                   voxel_size=voxel_size, empty_note="no objects kept")))
        for name, t in tables.items():
            write_csv(t, out / f"objects_{name.replace(' ', '_')}.csv", overwrite=True)
    if masks is not None:  # slices read one at a time, chosen from the counts; captions say why each slice
        p, t, per_slice = masks
        roi = result.get("roi")
        if roi:  # the masks are the box's: the gray image cut to it, slices named by the volume's z
            image = crop(image, roi)
        made += [step(f) for f in figures.hit_map_figures(image, p, t, figs, voxel_size=voxel_size,
                                                          counts=per_slice, box=roi)]
    result["figures"] = [Path(f).stem for f in made]
    # last, under a temporary name: evaluation.json says the results are complete (the report checks it)
    from .io.result_folders import write_result_json

    write_result_json(out / "evaluation.json", result, default=float)  # NaN, inf as null
    return result
