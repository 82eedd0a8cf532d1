"""The essentials of the segmentation that made a map, read from ``tomoseg segment``'s provenance record
beside it, for the records and reports of what is computed from the map (review S5: ``summary.json``,
``evaluation.json`` and ``report.html`` named neither the model nor the segment settings, so a paper's
methods could not be written from the results folder).

No PyTorch here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TomosegError
from .units import voxel_size_text as _text

#: what :func:`segmentation_of` copies of the normalization record
_NORMALIZATION = ("method", "statistics", "objects", "mean", "std", "clip", "fill_value", "outliers",
                  "nodata_voxels", "histogram_distance")


def segmentation_of(prediction) -> dict | None:
    """The segmentation essentials of the map ``prediction`` (a path; an HDF5 dataset as ``file.h5:name``),
    from the provenance record ``tomoseg segment`` wrote beside it: model (SHA-256, the shipped name and
    version, recipe), threshold, normalization, tiling, backend, precision, ROI, sample mask, tomoseg version,
    input. None for an array, or a map without segment's record (another tool's, or tomoseg's of another
    command)."""
    from .output_guard import provenance_path, tomoseg_provenance, volume_edited

    if not isinstance(prediction, (str, os.PathLike)):
        return None
    try:
        record = tomoseg_provenance(prediction)
        edited = bool(record) and volume_edited(prediction)
    except (OSError, ValueError, TomosegError):
        return None
    if not isinstance(record, dict) or record.get("tool") != "tomoseg segment":
        return None
    return segmentation_essentials(record, str(provenance_path(prediction)), edited=edited)


def segmentation_essentials(record: dict, where: str | None = None, *, edited: bool = False) -> dict:
    """What a methods section needs of segment's provenance ``record`` (see :func:`segmentation_of`);
    ``where``: the record's path; ``edited``: the map changed since segment wrote it."""
    model = dict(record.get("model") or {})
    shipped = model.get("shipped")
    version = shipped_version(shipped)
    norm = record.get("normalization") or {}
    mask = dict(record.get("sample_mask") or {}) or None
    roi = (mask or {}).get("roi") if (mask or {}).get("method") == "roi" else None
    return {
        "record": where, "tomoseg_version": record.get("tomoseg_version"), "started": record.get("started"),
        "input": record.get("input"), "input_shape": record.get("input_shape"),
        # the input as the file it named (absolute, links followed), where the record says (tomoseg >= C10)
        "input_resolved": (record.get("resolved_paths") or {}).get("input"),
        "input_sample_sha256": (record.get("input_content") or {}).get("sample_sha256"),
        "voxel_size_nm": record.get("voxel_size_nm"),
        "model": {"sha256": model.get("sha256"), "sha256_of": model.get("sha256_of"), "shipped": shipped,
                  "version": version, "recipe": model.get("recipe"), "path": model.get("path"),
                  "path_resolved": (record.get("resolved_paths") or {}).get("model"),
                  "trained_voxel_size_nm": model.get("trained_voxel_size_nm")},
        "threshold": record.get("threshold"),
        "normalization": {k: norm.get(k) for k in _NORMALIZATION if k in norm},
        "tiling": record.get("tiling"), "backend": record.get("backend"), "precision": record.get("precision"),
        "roi": roi, "sample_mask": mask, "map_edited_since": edited,
        # what segment warned of (a voxel size far from the model's, gray values unlike its training data, a
        # flooded map), for the report of what is computed from the map (review U3)
        "warnings": [n for n in record.get("notes") or [] if isinstance(n, str) and n.startswith("warning:")],
    }


def shipped_version(shipped: str | None) -> str | None:
    """The version of the shipped model named ``shipped`` (``default`` is ``v3``), else None."""
    from ..shipped import SHIPPED_MODELS

    if shipped not in SHIPPED_MODELS:
        return None
    return shipped if shipped != "default" else SHIPPED_MODELS[shipped].split(",")[0]


def model_record(model) -> dict:
    """What names ``model`` (a path, a shipped name, None for the default, or a loaded model) in a record:
    SHA-256 (of the file, or of the weights of a model changed in memory), the shipped name and version, the
    path. For track, which segments scans that fit in memory without writing a map (review S5)."""
    from ..shipped import file_sha256, model_path, shipped_name

    if model is None or isinstance(model, (str, os.PathLike)):
        path = model_path(model)
        try:
            sha, of = file_sha256(path), "file"
        except OSError:  # (a model the caller runs otherwise; predict names a missing file itself)
            sha, of = None, None
    else:
        from ..inference.model_file import model_identity

        path = getattr(model, "path", None)
        sha = model_identity(model)
        of = "file" if sha == getattr(model, "sha256", None) else "weights in memory (tomoseg.model.weights_digest)"
    name = shipped_name(sha) if sha else None
    return {"sha256": sha, "sha256_of": of, "shipped": name, "version": shipped_version(name),
            "path": str(path) if path is not None else None}


def methods_sentence(seg: dict) -> str:
    """One paragraph of the segmentation, as a paper's methods section states it (the report shows it)."""
    m = seg.get("model") or {}
    name = (f"the shipped {m['shipped']} model" + (f" ({m['version']})" if m.get("version") and
                                                   m["version"] != m["shipped"] else "")) \
        if m.get("shipped") else f"the model file {Path(m['path']).name}" if m.get("path") else "a model file"
    sha = f"SHA-256 {m['sha256']}" if m.get("sha256") else "SHA-256 unknown"
    n = seg.get("normalization") or {}
    fill = n.get("fill_value")
    norm = (f"z-score normalization over {'all voxels' if n.get('statistics') == 'full' else 'a sample of voxels'}"
            + (f" (mean {n['mean']:.6g}, s.d. {n['std']:.6g})" if n.get("mean") is not None and n.get("std") else "")
            + (f", clipped at ±{n['clip']:g} s.d." if n.get("clip") else "")
            + (f", objects {n['objects']}" if n.get("objects") else "")
            + (f", fill value {fill:g} as no data" if fill is not None else ""))
    t = seg.get("tiling") or {}
    tiles = (f"tiles of {t.get('tile_size')} voxels with a {t.get('halo')}-voxel halo ({t.get('pad_mode')} padding)"
             if t else "tiling unknown")
    roi = seg.get("roi")
    where = ("the region " + " × ".join(f"{a}:{b}" for a, b in roi) + " (z, y, x)") if roi else "the whole volume"
    mask = seg.get("sample_mask") or {}
    masked = f"; sample mask: {mask['method']}" if mask.get("method") and not roi else ""
    threshold = seg.get("threshold")
    cut = f"object where the map exceeds {threshold} of 255" if threshold is not None else "threshold unknown"
    edited = " The map has been changed since segment wrote it." if seg.get("map_edited_since") else ""
    return (f"Segmented with tomoseg {seg.get('tomoseg_version')} (segment), {name}, {sha}; {norm}; {tiles}; "
            f"backend {seg.get('backend')}, precision {seg.get('precision')}; {cut}; input {seg.get('input')}, "
            f"{where}{masked}{_voxel_sizes(seg)}.{edited}")


def voxel_size_text(voxel_size) -> str | None:
    """'60 × 30 × 30' of a record's (z, y, x) voxel size in nm; None where it holds none."""
    try:
        return _text(voxel_size, unit="") if len(voxel_size) == 3 else None
    except (TypeError, ValueError):
        return None


def _voxel_sizes(seg: dict) -> str:
    """'; voxel size A nm (z, y, x; the model was trained at B nm)' for the methods sentence (review U3: the
    report did not say when a model ran at another voxel size than its training scans')."""
    data = voxel_size_text(seg.get("voxel_size_nm") or ())
    model = voxel_size_text((seg.get("model") or {}).get("trained_voxel_size_nm") or ())
    if data is None and model is None:
        return ""
    return (f"; voxel size {data + ' nm' if data else 'unknown'} (z, y, x"
            + (f"; the model was trained at {model} nm" if model else "") + ")")


def _segment_sample_record(path) -> dict | None:
    """The ``sample_mask`` part of the provenance record ``segment`` wrote beside ``path`` (its probability map),
    or None (no record, another tool's, or another output's)."""
    from .output_guard import same_output, tomoseg_provenance

    try:
        record = tomoseg_provenance(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tool") != "tomoseg segment":
        return None
    outputs = record.get("outputs")
    if not same_output(outputs.get("probability") if isinstance(outputs, dict) else None, path):
        return None
    sample = record.get("sample_mask")
    return sample if isinstance(sample, dict) else None


def segmented_mask_file(path) -> str | None:
    """The ``--sample-mask`` file that ``segment`` wrote ``path`` inside (its provenance record), or None (no
    record, another tool's, or no mask file)."""
    sample = _segment_sample_record(path)
    if sample is None or sample.get("method") != "file" or not sample.get("file"):
        return None
    return str(sample["file"])


def segmented_roi(path):
    """The ``--roi`` box ((z0, z1), (y0, y1), (x0, x1)) that ``segment`` wrote ``path`` for (its provenance
    record), or None (no record, another tool's, or no --roi)."""
    sample = _segment_sample_record(path)
    if sample is None or sample.get("method") != "roi" or not sample.get("roi"):
        return None
    return tuple((int(a), int(b)) for a, b in sample["roi"])
