"""Write a tracking to a folder: matches CSV, summary and transform JSON, figures, ``track.html``, and the
AFTER labels renumbered by match ID."""

from __future__ import annotations

import base64
import html
import platform
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import said
from ..io.units import readable_unit
from ..io.result_folders import TRACK_SUMMARY_TOOL
from ..table import write_csv
from . import figures
from .tracking import Tracking

#: said on stdout, in summary.json and track.html where the objects came from the model (review S7)
SEGMENTED_CAVEAT = (
    "both scans were segmented with the model: an object it misses or splits in one scan only counts as "
    "vanished, appeared, merged or split. On a phantom pair it reported 13 vanished and 10 appeared against 4 and "
    "4 true, 0 of 6 splits (link recall 0.63, precision 0.75; review S7): read those counts as upper bounds; "
    "for counts to trust, give --before-labels and --after-labels (docs/tracking.md)")

MARKER = TRACK_SUMMARY_TOOL  # summary.json's provenance "tool": how result folders know track's summary
# what write_tracking puts into the results folder besides the labels (whose name the caller chooses)
WRITTEN = ("matches.csv", "registration_crops.csv", "summary.json", "transform.json", "track.html", "figures")

_CSS = """body{font-family:system-ui,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#666;font-size:.9em}figure{margin:.6em 0}figcaption{color:#555;font-size:.9em}"""


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return html.escape(str(v))


# the growth table's headers as docs/tracking.md writes them (the key, as summary.json names it, beside)
_HEADERS = {"radius_from_vox": "radius before from (voxels)", "radius_to_vox": "to (voxels)",
            "mean_delta_radius_nm": "mean Δradius (nm)", "mean_delta_radius_vox": "mean Δradius (voxels)",
            "median_delta_volume_rel": "median ΔV/V", "grew_10pct": "grew > 10 %", "shrank_10pct": "shrank > 10 %"}
# the inputs, as the page's first line says them (it printed the JSON of the run's arguments)
_INPUTS = {"before": "BEFORE scan", "after": "AFTER scan", "before_labels": "BEFORE objects",
           "after_labels": "AFTER objects", "transform": "given transform"}


def inputs_line(inputs: dict | None) -> str:
    """The run's inputs in words: ``BEFORE scan b.tif; AFTER scan a.tif; BEFORE objects ...`` (those given)."""
    said = [f"{_INPUTS.get(k, k.replace('_', ' '))} {v}" for k, v in (inputs or {}).items() if v not in (None, "")]
    return "; ".join(said)


def _table(rows: list[dict], columns: list[str], headers: dict | None = None) -> str:
    headers = {**_HEADERS, **(headers or {})}
    head = "".join(f'<th>{html.escape(headers[c])} <span class="note">{html.escape(c)}</span></th>'
                   if c in headers else f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c, r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(column: str, v) -> str:
    """A relative change as a signed percentage (+175 %, as docs/tracking.md writes it; it read 1.75)."""
    if column.endswith("_rel") and isinstance(v, float) and v == v:
        return f"{100 * v:+.3g} %"
    return _fmt(v)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _num(value, spec: str) -> str:
    """A number as ``spec`` formats it; "n/a" for a value not measured (null in summary.json, NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return format(value, spec)


def _unit_of(values) -> tuple[str, float]:
    """The unit (nm, µm, mm) that the largest of some lengths in nm reaches (:func:`~tomoseg.io.units.readable_unit`:
    a lab scan's 2 mm shift read 2000 µm, a TXM scan's 90 nm 0.09 µm); NaN and None left out."""
    finite = [abs(float(v)) for v in values if v is not None and np.isfinite(float(v))]
    return readable_unit(max(finite, default=0.0))


def _lengths(what: str, values_nm) -> tuple[str, str]:
    """A row of lengths given in nm, in the unit they read well in (``what (unit)``, the values)."""
    if not values_nm:
        return f"{what} (nm)", "n/a (voxel size unknown)"
    name, size = _unit_of(values_nm)
    return f"{what} ({name})", ", ".join(_num(a / size, ".4g") for a in values_nm)


def _displacement(moved) -> tuple[str, str]:
    what = "persisting objects' displacement after the registration, median / largest"
    if not moved:
        return f"{what} (nm)", "n/a"
    name, size = _unit_of([moved["median_nm"], moved["max_nm"]])
    return (f"{what} ({name})", f"{_num(moved['median_nm'] / size, '.4g')} / {_num(moved['max_nm'] / size, '.4g')} "
                                f"({moved['objects']} objects)")


def _growth_rows(rows: list[dict]) -> tuple[list[dict], dict]:
    """The growth table's rows with the mean Δradius in the unit its values read well in, and that header."""
    name, size = _unit_of(r["mean_delta_radius_nm"] for r in rows)
    if size == 1.0:
        return rows, {}
    scaled = [{**r, "mean_delta_radius_nm": r["mean_delta_radius_nm"] / size
               if isinstance(r["mean_delta_radius_nm"], float) else r["mean_delta_radius_nm"]} for r in rows]
    return scaled, {"mean_delta_radius_nm": f"mean Δradius ({name})"}


def track_section(summary: dict, figs: dict) -> str:
    """The HTML section of a tracking (no page around it): transform, counts, growth, figures."""
    tr = summary["transform"]
    moved = summary.get("displacement")
    parts = ["<h2>Tracking between two scans</h2>"]
    parts.append(_table([{"quantity": k, "value": v} for k, v in (
        ("transform", tr["source"]),
        ("rotation about z, y, x (deg)", ", ".join(_num(a, ".3f") for a in tr["rotation_deg"])),
        ("rotation angle (deg)", tr["rotation_angle_deg"]),
        ("translation z, y, x (voxels)", ", ".join(_num(a, ".2f") for a in tr["translation_vox"])),
        _lengths("translation z, y, x of the volume's centre", tr.get("translation_nm")),
        ("scale", tr["scale"]), ("crops' remaining shift after the image fit, RMS (voxels)", tr["residual_vox"]),
        ("residual on matched objects (voxels)", tr.get("coarse", {}).get("objects_refit", {}).get("residual_vox",
                                                                                                   float("nan"))),
        ("band-passed correlation, coarse → final",
         f"{_num(tr.get('ncc_before'), '.3f')} → {_num(tr.get('ncc_after'), '.3f')}"),
        _displacement(moved))],
        ["quantity", "value"]))
    counts = summary["objects_by_status"]
    parts.append("<h3>Objects by status</h3>")
    seg = summary.get("segmentation")
    if seg:
        m = seg.get("model") or {}
        name = (f"the shipped {m['shipped']} model" + (f" ({m['version']})" if m.get("version") not in
                                                       (None, m["shipped"]) else "")) if m.get("shipped") \
            else f"the model {m.get('path') or 'in memory'}"
        parts.append(f'<p class="note"><b>Objects from the model.</b> Segmented with {html.escape(name)}, SHA-256 '
                     f'{html.escape(str(m.get("sha256")))}, threshold {seg.get("threshold")}: '
                     f'{html.escape(SEGMENTED_CAVEAT)}.</p>')
    parts.append(_table([{"status": s, **c} for s, c in counts.items()], ["status", "events", "before_objects",
                                                                           "after_objects"]))
    ex = summary["excluded_rows"]
    uncertain = summary.get("uncertain_pairs", 0)
    parts.append(f'<p class="note">Counted: objects off the edge of both fields of view and of at least the minimum '
                 f'size; {ex["edge"]} rows at an edge and {ex["small"]} small rows are in matches.csv, flagged.'
                 + (f' {uncertain} of the persisting pairs are flagged <b>uncertain</b> (matches.csv: uncertain = 1): '
                    "the centroid moved farther than the radius changed, by more than a voxel; it may be an object "
                    "that dissolved and a new one formed beside its spot, not one object that changed."
                    if uncertain else "") + "</p>")
    parts.append("<h3>Growth of persisting objects by size class (equivalent radius before)</h3>")
    rows, headers = _growth_rows(summary["growth_by_size_class"])  # Δradius in nm, µm or mm
    parts.append(_table(rows, ["radius_from_vox", "radius_to_vox", "objects", "mean_delta_radius_nm",
                               "mean_delta_radius_vox", "median_delta_volume_rel", "grew_10pct", "shrank_10pct"],
                        headers))
    if summary.get("truth"):
        t = summary["truth"]
        parts.append("<h3>Against the phantom's truth</h3>")
        keys = ("truth_links", "predicted_links", "recall", "precision", "status_accuracy",
                "transform_rotation_error_deg", "transform_max_error_vox")
        parts.append(_table([{"quantity": k, "value": t[k]} for k in keys if k in t], ["quantity", "value"]))
    for path, caption in figs.items():
        parts.append(_figure(Path(path), caption))
    return "\n".join(parts)


def write_tracking(result: Tracking, out_dir, *, shape=None, voxel_size=None, inputs: dict | None = None,
                   labels_name: str = "after_match_ids.tif", overwrite: bool = False, image=None,
                   progress=None, origin=None, orientation=None) -> dict:
    """Write everything about a tracking into ``out_dir`` (``image``: the AFTER scan, drawn behind the map;
    ``shape``: the AFTER scan's, the map's extent);
    returns {name: path}. The AFTER labels numbered by match ID are written chunk by chunk (TIFF: uint16, or
    float32 past 65535 matches, for ImageJ; other formats uint32); ``progress`` is given their voxels. They lie
    where the AFTER scan lies: ``origin`` ((z, y, x) nm, its translation or space origin) kept by a Zarr output
    as its translation and by an NRRD output as its space origin, ``orientation`` (an NRRD scan's) by an NRRD
    output, as :func:`~tomoseg.io.create_volume` keeps them."""
    from ..errors import warn
    from ..io import format_of
    from ..io.output_guard import check_output, write_provenance
    from ..io.result_folders import read_captions, write_result_json, write_result_text
    from ..io.result_folders import json_safe
    from ..objects.label_image import TIFF_MAX_ID, label_dtype_for, write_mapped

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs_dir = out / "figures"
    figs_dir.mkdir(exist_ok=True)
    paths = {"matches": write_csv(result.matches, out / "matches.csv", overwrite=overwrite)}
    if result.registration.crops:
        paths["crops"] = write_csv(result.registration.crops, out / "registration_crops.csv", overwrite=overwrite)
    summary = dict(result.summary)
    if summary.get("segmentation"):
        summary["segmentation"] = {**summary["segmentation"], "caveat": SEGMENTED_CAVEAT}
    summary["provenance"] = {"tool": MARKER, "tomoseg": __version__, "python": platform.python_version(),
                             "numpy": np.__version__, "inputs": inputs or {}}
    summary["notes"] = said()  # what the run said (notes, warnings), for the record
    unit = "nm" if voxel_size else "vox"
    made = [figures.radius_figure(result.matches, figs_dir / "track_radius.png", unit=unit),
            figures.volume_change_histogram(result.matches, figs_dir / "track_volume_change.png"),
            figures.change_map(result.matches, figs_dir / "track_map.png", shape=shape,
                               matrix=result.registration.matrix, image=image, voxel_size=voxel_size)]
    captions = read_captions(figs_dir)  # the figures wrote them
    figs = {p: captions.get(p.stem, p.stem) for p in made}
    paths.update({p.stem: p for p in figs})
    # (NaN, e.g. an empty size class or a given transform's residual, as null: JSON has no NaN)
    write_result_json(out / "transform.json", json_safe({
        "matrix": result.registration.matrix.tolist(), "convention": "BEFORE voxel (z, y, x) -> AFTER voxel, 4x4",
        **{k: v for k, v in result.registration.to_dict().items() if k != "matrix"}}), default=float)
    write_result_json(out / "summary.json", json_safe(summary), default=float)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>tomoseg track</title><style>{_CSS}</style>"
            f"</head><body><h1>tomoseg track</h1><p class='note'>{html.escape(inputs_line(inputs))}; tomoseg "
            f"{__version__}.</p>{track_section(summary, figs)}</body></html>")
    write_result_text(out / "track.html", page)
    lookup = result.match_id_lookup  # the AFTER labels numbered by match ID, written chunk by chunk
    top = int(lookup.max(initial=0))
    if top > TIFF_MAX_ID and format_of(out / labels_name, for_writing=True) in ("tiff", "tiff-folder"):
        # more matches than a TIFF label image holds: Zarr beside it, rather than losing hours of work here
        wanted, labels_name = labels_name, Path(labels_name).with_suffix(".zarr").name
        check_output(out / labels_name, overwrite=overwrite)
        warn(f"{out / wanted}: {top} match IDs do not fit a TIFF label image (IDs up to 2^24); written as "
             f"{out / labels_name} (OME-Zarr) instead")
    dtype = label_dtype_for(out / labels_name, top)
    write_mapped(result.after_labels, lookup, out / labels_name, dtype=dtype, chunks=(64, 256, 256),
                 voxel_size=voxel_size, overwrite=overwrite, progress=progress, origin=origin,
                 orientation=orientation)
    # its record marks it as tomoseg's and holds its stamp: edited later (painted in napari), it is not replaced
    write_provenance(out / labels_name, {
        "tool": "tomoseg track", "tomoseg_version": __version__, "written": "the AFTER labels numbered by match ID",
        "ids": "each AFTER object's voxels hold its match_id in matches.csv; 0 is background", "max_label": top,
        "dtype": str(np.dtype(dtype)), "voxel_size_nm": None if voxel_size is None else [float(v) for v in voxel_size],
        "inputs": inputs or {}})
    paths.update({"summary": out / "summary.json", "transform": out / "transform.json", "html": out / "track.html",
                  "labels": out / labels_name})
    return paths
