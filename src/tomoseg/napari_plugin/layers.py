"""napari layers from tomoseg results, as LayerDataTuples ``(data, kwargs, type)``; needs neither napari nor Qt.

Objects are shown twice: a labels layer (each object's voxels, coloured by the
chosen column) and a points layer at the centroids (sized by the equivalent
radius, the table's columns as features). With ground truth, a third points
layer marks each object TP, FP or FN with the Okabe-Ito colours and a symbol,
so the marks read without colour too.
"""

from __future__ import annotations

import numpy as np

from ..objects import AnalysisOptions, analyze
from ..objects.label_image import label_image, object_colours
from ..objects.matching import match_objects, overlap_pairs

# Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies
# (the hit maps' colours: TP white, FP vermillion, FN sky blue)
STATUS_COLOURS = {"TP": (1.0, 1.0, 1.0, 1.0), "FP": (0.835, 0.369, 0.0, 1.0), "FN": (0.337, 0.706, 0.914, 1.0)}
STATUS_SYMBOLS = {"TP": "disc", "FP": "x", "FN": "square"}
COLOUR_BY = {"equivalent radius": "equivalent_radius_vox", "sphericity": "sphericity_voxel",
             "mean gray value": "mean_gray"}
COLORMAPS = {"equivalent_radius_vox": "viridis", "sphericity_voxel": "cividis", "mean_gray": "gray"}
TABLE_COLUMNS = ("label", "equivalent_radius_vox", "equivalent_radius_nm", "volume_vox", "sphericity_voxel",
                 "mean_gray", "centroid_z", "centroid_y", "centroid_x")


def level0(data, multiscale: bool = False):
    """A layer's full-resolution data (level 0 of a multiscale layer: a list of levels) as the layer holds it
    (NumPy, dask or zarr), not read; one rule for the widgets (which read it on their worker thread) and the
    writers."""
    return data[0] if multiscale or isinstance(data, (list, tuple)) else data


def data_digest(array) -> str:
    """A digest of a layer's voxels (and shape): whether a layer saved now is the one a widget made, not edited
    since (painted labels keep their metadata)."""
    import hashlib

    array = np.ascontiguousarray(np.asarray(array))
    digest = hashlib.blake2b(repr((array.shape, array.dtype.str)).encode(), digest_size=16)
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def roi_metadata(box) -> dict:
    """A layer's metadata saying the box ((z0, z1), (y0, y1), (x0, x1), or slices) it was segmented in
    (``segment --roi``, the Segment widget's ROI): Analyze then analyses that box, as ``tomoseg analyze`` does
    with the map's provenance record."""
    pairs = [[int(b.start), int(b.stop)] if isinstance(b, slice) else [int(b[0]), int(b[1])] for b in box]
    return {"tomoseg": {"roi": pairs}}


def layer_roi(layer, shape) -> tuple | None:
    """The segmented box a layer's metadata names (:func:`roi_metadata`), where it fits ``shape``; else None."""
    roi = ((getattr(layer, "metadata", None) or {}).get("tomoseg") or {}).get("roi")
    try:
        box = tuple((int(a), int(b)) for a, b in roi)
    except (TypeError, ValueError):
        return None
    if len(box) != len(shape) or any(not 0 <= a < b <= n for (a, b), n in zip(box, shape)):
        return None
    return box


def placement(voxel_size, origin=None) -> dict:
    """The layer keywords that place a layer in physical space: ``scale`` = the voxel size (z, y, x) and
    ``units`` nanometre (napari >= 0.5; its scale bar then reads nm and µm), and ``translate`` = ``origin`` (z, y, x
    nm: where the file places voxel (0, 0, 0)'s centre, :func:`~tomoseg.io.volume.origin_of`), so that a label image
    and its scan cut at other origins overlay; with the voxel size unknown, a scale of 1 in napari's default unit
    (pixel) and no translation (an origin in nm has no place among pixels)."""
    if not voxel_size:
        return {"scale": (1.0, 1.0, 1.0)}
    kw = {"scale": tuple(float(v) for v in voxel_size), "units": ("nm", "nm", "nm")}
    if origin is not None:
        kw["translate"] = tuple(float(o) for o in origin)
    return kw


PLACEMENT_KEYS = ("scale", "translate", "rotate", "shear", "affine", "units")


def placement_like(layer) -> dict:
    """The layer keywords that put a new layer exactly where ``layer`` is: its whole data-to-world transform
    (``scale``, ``translate``, ``rotate``, ``shear``, ``affine``) and its ``units`` (napari >= 0.5), for results
    computed on ``layer``'s voxel grid (a mask, a probability map, object labels, centroids in its voxels).
    Every result layer of the widgets is placed by this one function (and the table's camera jump by the labels
    layer's ``data_to_world``), so they overlay their source whatever reader or user placed it."""
    kw: dict = {}
    for key in PLACEMENT_KEYS:
        value = getattr(layer, key, None)
        if value is None:
            continue
        if key == "affine":
            value = np.asarray(value.affine_matrix, np.float64)
        elif key == "units":
            value = tuple(str(u) for u in value)
        else:
            value = np.array(value, np.float64)
        kw[key] = value
    return kw


def voxel_size_nm(layer) -> tuple | None:
    """The voxel size (z, y, x) in nm of a layer: its ``scale`` converted with its ``units`` (µm x 1000, ...);
    None (voxel size unknown, the nm columns stay empty as the CLI leaves them) where a unit is not a length
    (napari's default unit, pixel) or the scale is not positive."""
    return voxel_size_of(layer.scale, getattr(layer, "units", None))


def voxel_size_of(scale, units) -> tuple | None:
    """:func:`voxel_size_nm` of a layer's ``scale`` and ``units`` (pint units or their names, as a layer data
    tuple's metadata holds them; None on napari < 0.5)."""
    scale = [float(s) for s in scale[-3:]]
    if units is None:  # napari < 0.5 has no units: the scale was taken as nm unless it is napari's default 1
        return None if all(s == 1.0 for s in scale) else tuple(scale)
    out = []
    for s, u in zip(scale, tuple(units)[-3:]):
        nm = _in_nm(s, u)
        if nm is None or not nm > 0:
            return None
        out.append(nm)
    return tuple(out)


def _in_nm(value: float, unit) -> float | None:
    """``value`` in ``unit`` (a pint unit or its name) in nm, to 12 digits (0.03 µm is 30 nm, not
    29.999999999999996); None where the unit is not a length (pixel: pint's DimensionalityError) or the value is
    not finite."""
    try:
        if isinstance(unit, str):
            import pint

            unit = pint.get_application_registry().Unit(unit)
        nm = float((value * unit).to("nanometer").magnitude)
    except Exception:  # noqa: BLE001 - pint's DimensionalityError for pixel and other non-length units
        return None
    return float(f"{nm:.12g}") if np.isfinite(nm) else None


def origin_of_layer(translate, units) -> tuple | None:
    """Where a layer's ``translate`` (in its ``units``) puts voxel (0, 0, 0), (z, y, x) in nm, as the files keep it
    (:func:`placement`'s inverse); None for no translation, or one not in a length (pixel, napari < 0.5 without
    units)."""
    if translate is None or units is None:
        return None
    out = []
    for t, u in zip([float(t) for t in translate][-3:], tuple(units)[-3:]):
        nm = _in_nm(t, u)
        if nm is None:
            return None
        out.append(nm)
    return tuple(out) if len(out) == 3 and any(out) else None


def layer_origin_nm(layer) -> tuple | None:
    """Where ``layer`` puts the centre of its voxel (0, 0, 0), (z, y, x) in nm: its ``translate`` in its ``units``
    (:func:`origin_of_layer`; the reader sets it to the file's origin, :func:`placement`), the origin that ``tomoseg
    analyze`` adds to the ``centroid_*_nm`` columns. None where the layer is also rotated, sheared or moved by an
    affine (a position is then not origin + index x voxel size along the array's axes, as for a rotated NRRD),
    or where the translation is none or not in a length."""
    for key in ("rotate", "shear"):
        value = getattr(layer, key, None)
        if value is not None and not np.allclose(np.asarray(value, np.float64),
                                                 np.eye(3) if key == "rotate" else 0.0):
            return None
    affine = getattr(layer, "affine", None)
    if affine is not None and not np.allclose(np.asarray(affine.affine_matrix, np.float64), np.eye(4)):
        return None
    return origin_of_layer(getattr(layer, "translate", None), getattr(layer, "units", None))


def _features(table: dict) -> dict:
    return {c: np.asarray(table[c]) for c in TABLE_COLUMNS if c in table}


MASK_COLORMAP = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0), 1: (0.902, 0.624, 0.0, 1.0)}
"""A 0/1 mask's colours: background clear, objects orange (Okabe-Ito's, which colour-blind readers tell apart
from the gray scan and from the magma probability map), the same in every session; napari's default label
colours are random per layer."""


def objects_layers(labels: np.ndarray, table: dict, *, voxel_size=None, color_by: str = "equivalent_radius_vox",
                   name: str = "objects") -> list[tuple]:
    """A labels layer coloured by ``color_by`` and a points layer at the centroids, placed by
    :func:`placement` (``voxel_size`` in nm; the centroids stay in voxels, the layers' scale makes them nm)."""
    column = COLOUR_BY.get(color_by, color_by)
    cmap = COLORMAPS.get(column, "viridis")
    values = np.asarray(table[column], np.float64) if len(table["label"]) else np.zeros(0)
    if not np.isfinite(values).any():  # e.g. mean gray without an intensity image
        column, cmap = "equivalent_radius_vox", "viridis"
    colours = object_colours(table, column, cmap) if len(table["label"]) else {}
    colormap = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    colormap.update({lab: tuple(c / 255 for c in rgba) for lab, rgba in colours.items()})
    features = _features(table)
    lab_kwargs = {"name": name, **placement(voxel_size), "colormap": colormap, "opacity": 0.8,
                  "features": {"index": np.asarray(table["label"]), **features},
                  "metadata": {"tomoseg": {"color_by": column}}}
    centroids = np.stack([np.asarray(table[f"centroid_{a}"], np.float64) for a in "zyx"], axis=1) \
        if len(table["label"]) else np.zeros((0, 3))
    radius = np.asarray(table["equivalent_radius_vox"], np.float64)
    pt_kwargs = {"name": f"{name} (centroids)", **placement(voxel_size), "features": features,
                 "size": 2 * radius + 1 if len(radius) else 1, "face_color": column if len(radius) else "white",
                 "face_colormap": cmap, "border_width": 0, "opacity": 0.9, "metadata_spherical": True,
                 "visible": False, "metadata": {"tomoseg": {"color_by": column}}}
    return [(labels, lab_kwargs, "labels"), (centroids, pt_kwargs, "points")]


def detection_layer(pred: dict, truth: dict, pairs: dict, *, voxel_size=None) -> tuple:
    """Points marking kept predictions as TP or FP and kept true objects as FN (at the true centroid)."""
    matched_t = set(pairs.values())
    rows = []
    for i, lab in enumerate(pred["label"]):
        rows.append(("TP" if int(lab) in pairs else "FP", int(lab), i, pred))
    for j, lab in enumerate(truth["label"]):
        if int(lab) not in matched_t:
            rows.append(("FN", int(lab), j, truth))
    status = np.array([r[0] for r in rows], dtype=object)
    coords = np.array([[r[3][f"centroid_{a}"][r[2]] for a in "zyx"] for r in rows], np.float64).reshape(-1, 3)
    radius = np.array([r[3]["equivalent_radius_vox"][r[2]] for r in rows], np.float64)
    kwargs = {
        "name": "detections (TP/FP/FN)", **placement(voxel_size),
        "features": {"status": status, "label": np.array([r[1] for r in rows]), "equivalent_radius_vox": radius},
        "size": 2 * radius + 4, "symbol": [STATUS_SYMBOLS[s] for s in status] or "disc",
        "face_color": [(0, 0, 0, 0)] * len(rows) or "transparent",
        "border_color": [STATUS_COLOURS[s] for s in status] or "white", "border_width": 0.2,
        "border_width_is_relative": True, "metadata_spherical": True,
        "text": {"string": "{status}", "color": "white", "size": 9, "anchor": "upper_left"} if rows else None,
        "metadata": {"tomoseg": {"counts": {k: int(np.sum(status == k)) for k in STATUS_COLOURS}}},
    }
    return coords, kwargs, "points"


def analysis_layers(volume: np.ndarray, *, intensity=None, truth=None, options: AnalysisOptions | None = None,
                    voxel_size=None, color_by: str = "equivalent_radius_vox",
                    origin=None) -> tuple[list[tuple], dict, dict]:
    """Analyze a mask or probability map held in memory; returns (layers, the kept objects' table, counts).

    ``truth``: a binary ground-truth mask; then TP/FP/FN objects are marked (matching as ``evaluate``).
    ``origin``: (z, y, x) nm where voxel (0, 0, 0)'s centre lies (:func:`layer_origin_nm`), added to the table's
    ``centroid_*_nm`` as ``tomoseg analyze`` adds the file's.
    """
    steps = analysis_steps(volume, intensity=intensity, truth=truth, options=options, voxel_size=voxel_size,
                           color_by=color_by, origin=origin)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def analysis_steps(volume: np.ndarray, *, intensity=None, truth=None, options: AnalysisOptions | None = None,
                   voxel_size=None, color_by: str = "equivalent_radius_vox", probability=None, sample_mask=None,
                   roi=None, origin=None):
    """:func:`analysis_layers` as a generator: yields the name of each step before it starts (the points where
    a napari worker's ``quit()``, the Analyze widget's Cancel, takes effect); returns (layers, table, counts).
    ``probability`` and ``sample_mask``: as ``tomoseg analyze --probability`` (confidence columns of a mask's
    objects) and ``--sample-mask`` (objects marked ``in_sample``; the summary over the mask); ``roi``: the box the
    map was segmented in, analysed as the volume (:func:`~tomoseg.objects.analyze`'s ``roi``); ``origin``: where
    voxel (0, 0, 0) lies (z, y, x nm), the start of the ``centroid_*_nm`` columns (the layers themselves are
    placed by the widget, in voxels of their source)."""
    options = options or AnalysisOptions()
    volume = np.asarray(volume)
    if volume.dtype == np.bool_:
        volume = volume.astype(np.uint8)
    yield "labelling and measuring the objects"
    gray, prob, sample = (None if v is None else np.asarray(v) for v in (intensity, probability, sample_mask))
    result = analyze(volume, intensity=gray, probability=prob, sample_mask=sample, voxel_size=voxel_size,
                     options=options, roi=roi, origin=origin)
    table = result.selected  # the nm columns NaN where the voxel size is unknown
    yield "drawing the kept objects"
    prob = result.reading.probability  # as the analysis read the volume
    labels = label_image(volume, table, options=options, probability=prob)
    layers = objects_layers(labels, table, voxel_size=voxel_size, color_by=color_by)
    counts: dict = {"objects": int(len(table["label"]))}
    regions = result.summary.get("large_dark_regions")
    if regions and regions["regions"]:  # a large pore found in pieces? (review S8): the widget warns
        counts["large_dark_regions"] = regions
    if truth is not None:
        from ..objects import label_objects, measure_objects, select_objects

        yield "labelling and measuring the ground truth"
        full = label_image(volume, result.objects, options=options, probability=prob)
        tlab, _ = label_objects(np.asarray(truth) > 0, connectivity=options.connectivity)
        ttab_all = measure_objects(tlab, voxel_size=voxel_size)
        yield "matching the objects with the ground truth"
        pairs = match_objects(result.objects, ttab_all, overlap_pairs(full, tlab))
        ttab = select_objects(ttab_all, exclude_border=options.exclude_border, min_voxels=options.min_voxels)
        kept = set(int(l) for l in table["label"])
        det = detection_layer(table, ttab, {p: t for p, t in pairs.items() if p in kept},
                              voxel_size=voxel_size)
        # a kept true object matched by an excluded prediction is found, not missed (as evaluate counts it)
        found_by_any = set(pairs.values())
        keep = np.array([s != "FN" or int(l) not in found_by_any
                         for s, l in zip(det[1]["features"]["status"], det[1]["features"]["label"])], bool)
        det = _subset_points(det, keep)
        layers.append(det)
        counts.update(det[1]["metadata"]["tomoseg"]["counts"])
    return layers, table, counts


def _subset_points(layer: tuple, keep: np.ndarray) -> tuple:
    data, kw, kind = layer
    kw = dict(kw)
    n = len(keep)
    for key in ("size", "symbol", "face_color", "border_color"):
        if isinstance(kw[key], (list, np.ndarray)) and len(kw[key]) == n:
            kw[key] = [v for v, k in zip(kw[key], keep) if k] if isinstance(kw[key], list) else kw[key][keep]
    kw["features"] = {k: v[keep] for k, v in kw["features"].items()}
    status = kw["features"]["status"]
    kw["metadata"] = {"tomoseg": {"counts": {k: int(np.sum(status == k)) for k in STATUS_COLOURS}}}
    if not keep.any():
        kw.update(symbol="disc", face_color="transparent", border_color="white", text=None)
    return data[keep], kw, kind
