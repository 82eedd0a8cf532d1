"""One self-contained HTML report (figures embedded, no scripts, opens offline) from a results folder."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
from pathlib import Path

from .._version import __version__
from ..io.output_guard import PROVENANCE_SUFFIX, REPORT_MARK, check_report_output
from ..io.units import MM3_BELOW_PER_UM3, number_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}.note{color:#666;font-size:.9em}
figure{margin:0}figcaption{color:#555;font-size:.9em}.wide{overflow-x:auto}
.incomplete{border:2px solid #D55E00;background:#fff4ec;padding:.4em 1em}
.said li{color:#555;font-size:.92em}.said li.warning{color:#A34400;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1em;align-items:start}
.full{grid-column:1/-1}
"""

_CAPTIONS = {
    "confusion_matrix": "Normalized confusion matrix (rows: ground truth), as the paper's Fig. 4.",
    "size_histogram": "Equivalent-radius histograms, as the paper's Fig. 6(a).",
    "sphericity_vs_radius": "Sphericity (voxel faces) against equivalent radius, as the paper's Fig. 6(b, c). "
                            "Voxel faces bias ψ toward 2/3 for large spheres.",
    "orthoslices": "Orthogonal slices with the segmentation outlined.",
    "fraction_along_z": "Object volume fraction along z.",
    "hit_map": "Hit map: true positives white, false positives vermillion, false negatives sky blue (the paper's "
               "Fig. 5).",
    "phantom": "Input volume.",
    "objects_3d": "3D view of the objects, coloured by equivalent radius.",
}


def _fmt(v) -> str:
    if v is None:  # JSON null: not measured (e.g. nm values without a voxel size)
        return "–"
    if isinstance(v, float):
        if v != v:
            return "–"
        if v != 0 and abs(v) < 1e-3:  # small values keep their digits: 1.409e-04, not 0.0001409 or 0
            return f"{v:.3e}"
        return number_text(v)
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _score(v) -> str:
    """Accuracy, recall, precision ...: six decimals (the paper's Table 2 tells models apart at the 4th)."""
    return _fmt(v) if not isinstance(v, float) or v != v else f"{v:.6f}"


def _percent(v) -> str:
    """A fraction (0-1) as a percentage with 4 significant digits."""
    return _fmt(v) if not isinstance(v, (int, float)) or v != v else f"{100 * v:.4g} %"


# readable names of summary.json's and Table 1's keys (the key itself is shown beside, as the files name it)
_NAMES = {"objects": "Number of objects", "mean_radius_vox": "Mean radius (voxels)",
          "sd_radius_vox": "S.d. of the radius (voxels)", "mean_radius_nm": "Mean radius (nm)",
          "mean_sphericity_voxel": "Mean sphericity (voxel faces)", "mean_sphericity_mesh": "Mean sphericity (mesh)",
          "objects_all": "Objects found (before exclusions)", "excluded_border": "Left out: touching the border",
          "excluded_small": "Left out: under the minimum size",
          "objects_outside_sample": "Kept, but outside the sample mask",
          "sd_radius_nm": "S.d. of the radius (nm)",
          "volume_fraction": "Volume fraction, kept objects only (objects at the border and small ones left out)",
          "volume_fraction_all_objects": "Volume fraction, every object voxel (the phase's volume fraction)",
          "number_density_per_mvox": "Number density (objects per 10⁶ voxels)", "number_density_per_um3": "Number density (objects per µm³)",
          "number_density_corrected_per_mvox": "Number density, edge-corrected (Miles–Lantuéjoul; per 10⁶ voxels)",
          "number_density_corrected_per_um3": "Number density, edge-corrected (Miles–Lantuéjoul; per µm³)",
          "analysed_volume_um3": "Analysed volume (µm³)", "analysed_voxels": "Analysed voxels",
          "voxel_size_nm": "Voxel size z × y × x (nm)", "shape": "Shape z × y × x (voxels)",
          "true_objects": "True objects", "predicted_objects": "Predicted objects", "recall": "Recall",
          "precision": "Precision", "f1": "F1", "radius_from_vox": "Radius from (voxels)",
          "radius_to_vox": "Radius to (voxels)", "data": "Data"}
_SCORES = ("accuracy", "recall", "precision", "f1", "iou", "F1 (Dice)", "IoU")
_PERCENTS = ("volume_fraction", "volume_fraction_all_objects")


def _cell(key, v) -> str:
    if key in _SCORES and not isinstance(v, list):
        return _score(v)
    if key in _PERCENTS:
        return _percent(v)
    if str(key).endswith("_per_um3") and isinstance(v, float) and 0 < v < MM3_BELOW_PER_UM3:  # a lab scan's 1e-09:
        return f"{_fmt(v)} ({_fmt(v * 1e9)} per mm³)"                           # also said per mm³, as analyze
    return _fmt(v)


def _is_numbers(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _fmt_value(key, v) -> str:
    """A value or a list of numbers (the voxel size, the shape: "29.33 × 29.33 × 29.33")."""
    return " × ".join(_fmt(x) for x in v) if _is_numbers(v) else _cell(key, v)


def _name(key) -> str:
    key = str(key)
    if key in _NAMES:
        return f'{html.escape(_NAMES[key])} <span class="note">{html.escape(key)}</span>'
    return html.escape(key)


def settings_text(settings: dict) -> str:
    """The settings of an analysis in words (the page printed their JSON): "object where the map exceeds 127 of
    255; voxels touching by a face, an edge or a corner (26-connectivity) are one object; objects touching the
    border left out; objects under 8 voxels left out; input read as: auto". Keys it does not know are listed as
    ``key value``."""
    said, rest = [], dict(settings)
    if "threshold" in rest:
        said.append(f"object where the map exceeds {rest.pop('threshold')} of 255")
    if "connectivity" in rest:
        c = rest.pop("connectivity")
        said.append("voxels touching by " + {6: "a face", 18: "a face or an edge"}.get(c, "a face, an edge or a corner")
                    + f" ({c}-connectivity) are one object")
    if "exclude_border" in rest:
        said.append("objects touching the border " + ("left out" if rest.pop("exclude_border") else "kept"))
    if "min_voxels" in rest:
        said.append(f"objects under {rest.pop('min_voxels')} voxels left out")
    if "read_as" in rest:
        said.append(f"input read as: {rest.pop('read_as')}")
    said += [f"{k.replace('_', ' ')} {v}" for k, v in rest.items()]
    return "; ".join(said)


def _kv_table(d: dict, skip=()) -> str:
    rows = "".join(f"<tr><td>{_name(k)}</td><td>{_fmt_value(k, v)}</td></tr>" for k, v in d.items()
                   if k not in skip and not isinstance(v, dict) and (not isinstance(v, list) or _is_numbers(v)))
    return f"<table><tr><th>quantity</th><th>value</th></tr>{rows}</table>"


def _columns_table(rows: list[dict], columns: list[str], *, named: bool = False) -> str:
    head = "".join(f"<th>{_name(c) if named else html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c, r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


WIDE_PX = 1500  # a figure wider than this (5 in at 300 dpi: made for a full page width) gets a row of its own


def _figure(path: Path, captions: dict | None = None, *, number: int = 0, page_dir: Path | None = None) -> str:
    """One figure, embedded, numbered, linked to its full-size files (relative to the report's folder
    ``page_dir``), with its caption; wide figures span the grid's row."""
    from PIL import Image

    data = base64.b64encode(path.read_bytes()).decode()
    key = next((k for k in _CAPTIONS if path.stem.startswith(k)), None)
    caption = (captions or {}).get(path.stem) or _CAPTIONS.get(key, path.stem.replace("_", " "))
    page_dir = page_dir or path.parent.parent

    def link(p: Path) -> str:
        return f'<a href="{html.escape(link_target(p, page_dir))}">{html.escape(p.name)}</a>'

    others = [path.with_suffix(f".{ext}") for ext in ("svg", "pdf")] + [path.parent.parent / f"{path.stem}.csv"]
    files = ", ".join(link(p) for p in [path] + [p for p in others if p.is_file()])
    try:
        with Image.open(path) as im:
            wide = im.size[0] > WIDE_PX
    except (OSError, ValueError):  # a user's file of that name that is not a PNG: embedded as it is
        wide = False
    label = f"<b>Figure {number}.</b> " if number else ""
    return (f'<figure class="{"full" if wide else "half"}"><a href="{html.escape(link_target(path, page_dir))}">'
            f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></a>'
            f'<figcaption>{label}{html.escape(caption)} <span class="note">(full size: {files})</span>'
            "</figcaption></figure>")


def link_target(path: Path, page_dir: Path) -> str:
    """``path`` relative to the folder of the page that links it."""
    return Path(os.path.relpath(Path(path).resolve(), Path(page_dir).resolve())).as_posix()


def _captions(fig_dir: Path) -> dict:
    """Captions the figure functions wrote (they know why a slice was chosen)."""
    from ..io.result_folders import read_captions

    return read_captions(fig_dir)


# the order the report shows the figures of analyze, evaluate and track in (io.output_guard.RESULT_FIGURES)
_FIGURE_ORDER = ("confusion_matrix", "hit_map_z", "evaluate_size_histogram", "evaluate_sphericity_vs_radius",
                 "size_histogram", "sphericity_vs_radius", "orthoslices",
                 "objects_3d", "fraction_along_z", "track_radius", "track_volume_change", "track_map")


def _figure_rank(path: Path):
    rank = next((i for i, k in enumerate(_FIGURE_ORDER) if path.stem.startswith(k)), len(_FIGURE_ORDER))
    return rank, path.stem


def _csv_preview(path: Path, columns: list[str], n: int = 10) -> str:
    from ..table import read_csv_head

    try:
        t, total = read_csv_head(path, n)  # n rows held, the rest counted: any length of table
    except (UnicodeDecodeError, csv.Error, IndexError) as exc:  # a binary file or ragged rows: not a table
        return (f'<p class="note">{html.escape(path.name)} is not shown: it is not a readable table '
                f"({html.escape(str(exc))}).</p>")
    if not t:
        return "<p>No objects.</p>"
    cols = [c for c in columns if c in t]
    note = ""
    if not cols:  # not an objects table (track's matches.csv, a user's own CSV): its own first columns
        cols = list(t)[:8]
        note = f"; its first {len(cols)} of {len(t)} columns" if len(t) > len(cols) else ""
    rows = [{c: (t[c][i].item() if hasattr(t[c][i], "item") else t[c][i]) for c in cols}
            for i in range(min(n, len(t[cols[0]])))]
    return _columns_table(rows, cols) + (f'<p class="note">{min(n, total)} of {total} rows{note}; all in '
                                         f"{html.escape(path.name)}.</p>")


# what each tool writes last (the record that says its results are complete), and the files it writes before
_COMPLETION = {"analyze": ("summary.json", ("objects.csv",), ("fraction_along_z", "objects_3d", "orthoslices")),
               "evaluate": ("evaluation.json", ("objects_prediction.csv", "objects_ground_truth.csv"),
                            ("confusion_matrix", "hit_map_z"))}


def incomplete_results(run_dir) -> list[str]:
    """What a results folder lacks, in sentences: the record analyze or evaluate writes last (``summary.json``,
    ``evaluation.json``) where the files written before it are there (a run interrupted on the way), and the
    figures a record lists that are not in ``figures/``. Empty for complete results."""
    run = Path(run_dir)
    figs = sorted(p.stem for p in (run / "figures").glob("*.png")) if (run / "figures").is_dir() else []
    notes = []
    for tool, (record, tables, figures) in _COMPLETION.items():
        path = run / record
        if not path.is_file():
            found = [t for t in tables if (run / t).is_file()] + \
                [f"figures/{f}.png" for f in figs if any(f.startswith(k) for k in figures)]
            if found:
                notes.append(f"{record} is missing, though {tool} wrote {', '.join(found[:4])}"
                             f"{' and more' if len(found) > 4 else ''}: the run did not finish (interrupted?), so "
                             f"its results here are incomplete; run tomoseg {tool} --out again")
            continue
        try:
            listed = json.loads(path.read_text(encoding="utf-8")).get("figures") or []
        except (ValueError, UnicodeDecodeError, AttributeError):
            continue  # a record that is not a JSON object: the report's own checks say so
        lacking = [str(f) for f in listed if str(f) not in figs]
        if lacking:
            notes.append(f"{record} lists {len(listed)} figures, of which {', '.join(lacking)} "
                         f"{'is' if len(lacking) == 1 else 'are'} not in figures/; run tomoseg {tool} --out again")
    return notes


_FIGURE_DATA = ("fraction_along_z.csv",)  # a figure's data: linked from the figure, not previewed as a table
_ROW_KEYS = ("label", "volume_vox", "centroid_z", "centroid_y", "centroid_x")


def same_rows(a, b) -> bool:
    """Whether two objects tables hold the same objects (the same labels, volumes and centroids, row by row),
    read as they stream past: memory for one row, whatever their length."""
    import itertools

    try:
        with open(a, newline="", encoding="utf-8") as fa, open(b, newline="", encoding="utf-8") as fb:
            ra, rb = csv.reader(fa), csv.reader(fb)
            ha, hb = next(ra, []), next(rb, [])
            keys = [k for k in _ROW_KEYS if k in ha and k in hb]
            if not keys:
                return False
            ia, ib = [ha.index(k) for k in keys], [hb.index(k) for k in keys]
            for row_a, row_b in itertools.zip_longest(ra, rb):
                if row_a is None or row_b is None or [row_a[i] for i in ia] != [row_b[i] for i in ib]:
                    return False
    except (OSError, UnicodeDecodeError, csv.Error, IndexError):
        return False
    return True


def _said(run: Path) -> list[str]:
    """The notes and warnings the runs that wrote ``run`` gave (``notes`` of summary.json and evaluation.json),
    warnings first, each once."""
    said = []
    for name in ("summary.json", "evaluation.json"):
        try:
            record = json.loads((run / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        notes = record.get("notes") if isinstance(record, dict) else None
        said += [str(n) for n in notes if isinstance(n, str)] if isinstance(notes, list) else []
        seg = record.get("segmentation") if isinstance(record, dict) else None
        warned = seg.get("warnings") if isinstance(seg, dict) else None  # segment's, on the map (review U3)
        said += [f"warning: segment: {n[len('warning:'):].strip()}" for n in warned if isinstance(n, str)] \
            if isinstance(warned, list) else []
    said = list(dict.fromkeys(said))
    return [m for m in said if m.startswith("warning:")] + [m for m in said if not m.startswith("warning:")]


def _is_tracking(summary: dict) -> bool:
    from ..io.result_folders import TRACK_SUMMARY_TOOL

    provenance = summary.get("provenance")
    return isinstance(provenance, dict) and provenance.get("tool") == TRACK_SUMMARY_TOOL and "transform" in summary


def _segmentation_section(run: Path) -> str:
    """The segmentation that made the map analysed (model, its SHA-256, segment's settings), as summary.json
    or evaluation.json copied it from segment's provenance record (review S5); a note where the map has none."""
    from ..io.segment_record import methods_sentence, voxel_size_text

    records = [json.loads(p.read_text(encoding="utf-8")) for p in (run / "summary.json", run / "evaluation.json")
               if p.exists()]
    if not records or _is_tracking(records[0]):
        return ""
    seg = next((r["segmentation"] for r in records if isinstance(r.get("segmentation"), dict)), None)
    if seg is None:
        return ('<h2>Segmentation</h2><p class="note">The map analysed has no provenance record of tomoseg '
                "segment beside it (made by another tool, or its record was not kept): the model and the "
                "segmentation settings are not known to this report.</p>")
    m = seg.get("model") or {}
    n = seg.get("normalization") or {}
    t = seg.get("tiling") or {}
    rows = {"model": m.get("shipped") or "a model file", "model version": m.get("version"),
            "model file": None if m.get("shipped") else m.get("path_resolved") or m.get("path"),
            "model SHA-256": m.get("sha256"), "model recipe": m.get("recipe"), "threshold (0-255)": seg.get("threshold"),
            "normalization": n.get("method"), "statistics": n.get("statistics"), "objects": n.get("objects"),
            "clip (s.d.)": n.get("clip"), "fill value": n.get("fill_value"), "tile size": t.get("tile_size"),
            "halo": t.get("halo"), "backend": seg.get("backend"), "precision": seg.get("precision"),
            "voxel size (nm, z × y × x)": voxel_size_text(seg.get("voxel_size_nm") or ()),
            "model's training voxel size (nm)": voxel_size_text(m.get("trained_voxel_size_nm") or ()),
            "ROI": json.dumps(seg.get("roi")) if seg.get("roi") else None,
            "sample mask": (seg.get("sample_mask") or {}).get("method"),
            "segment input": seg.get("input"), "tomoseg version (segment)": seg.get("tomoseg_version"),
            "provenance record": seg.get("record")}
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items()
                   if v is not None)
    return ("<h2>Segmentation</h2>" + f"<p>{html.escape(methods_sentence(seg))}</p>"
            + f"<table><tr><th>setting</th><th>value</th></tr>{body}</table>")


def build_report(run_dir, *, title: str | None = None, output=None) -> Path:
    """Assemble ``report.html`` from what a results folder holds: ``summary.json`` (analyze),
    ``evaluation.json`` (evaluate), ``*.provenance.json``, object CSVs and ``figures/*.png``; what the folder
    lacks (:func:`incomplete_results`) is said at the top."""
    run = Path(run_dir)
    parts = [f"<h1>{html.escape(title or 'tomoseg report')}</h1>",
             f'<p class="note">Results folder {html.escape(str(run.resolve()))}; tomoseg {__version__}.</p>']
    missing = incomplete_results(run)
    if missing:
        parts.append('<div class="incomplete"><h2>Incomplete results</h2><ul>'
                     + "".join(f"<li>{html.escape(m)}</li>" for m in missing) + "</ul></div>")
    said = _said(run)
    if said:  # what the runs warned of and assumed, as they said it on the terminal
        parts.append('<div class="said"><h2>Notes and warnings</h2><ul>' + "".join(
            f'<li{" class=warning" if m.startswith("warning:") else ""}>{html.escape(m)}</li>' for m in said)
            + "</ul></div>")
    ev = run / "evaluation.json"
    if ev.exists():
        e = json.loads(ev.read_text(encoding="utf-8"))
        v = e["voxel"]
        parts.append("<h2>Voxel scores</h2>")
        parts.append(_kv_table({"threshold (0-255)": e["threshold"], "accuracy": v["accuracy"],
                                "recall": v["recall"], "precision": v["precision"], "F1 (Dice)": v["f1"],
                                "IoU": v["iou"], "TP": v["tp"], "FP": v["fp"], "FN": v["fn"], "TN": v["tn"]}))
        if e.get("objects"):
            o = e["objects"]
            parts.append("<h2>Object detection</h2>")
            parts.append(_kv_table({k: o[k] for k in ("true_objects", "predicted_objects", "recall", "precision",
                                                      "f1")}))
            parts.append(_columns_table(o["by_radius"], ["radius_from_vox", "radius_to_vox", "true_objects",
                                                         "predicted_objects", "recall", "precision"], named=True))
            t1 = e["table1"]
            parts.append("<h2>Objects (the paper's Table 1)</h2>")
            parts.append(_columns_table([{"data": k.replace("_", " "), **t1[k]} for k in ("ground_truth", "prediction")],
                                        ["data", "objects", "mean_radius_vox", "sd_radius_vox", "mean_radius_nm",
                                         "mean_sphericity_voxel", "mean_sphericity_mesh"], named=True))
        elif e.get("objects_note"):
            parts.append(f'<p class="note">{html.escape(e["objects_note"])}</p>')
    summ = run / "summary.json"
    out = Path(output) if output else run / "report.html"
    figs = sorted((run / "figures").glob("*.png"), key=_figure_rank) if (run / "figures").exists() else []
    captions = _captions(run / "figures")
    if summ.exists():
        s = json.loads(summ.read_text(encoding="utf-8"))
        if _is_tracking(s):  # track's summary: its own section (transform, counts by status, growth)
            from ..track.output import track_section

            parts.append(track_section(s, {}))
        else:
            parts.append("<h2>Object analysis</h2>")
            parts.append(_kv_table(s, skip=("settings",)))
            if "settings" in s:
                parts.append('<p class="note">Settings: ' + html.escape(settings_text(s["settings"])) + "</p>")
    if figs:
        parts.append("<h2>Figures</h2>")
        parts.append('<div class="grid">' + "".join(_figure(f, captions, number=i, page_dir=out.parent)
                                                    for i, f in enumerate(figs, start=1)) + "</div>")
    csvs = [c for c in sorted(run.glob("*.csv")) if c.name not in _FIGURE_DATA]
    if (run / "objects.csv").exists() and (run / "objects_prediction.csv").exists() and \
            same_rows(run / "objects.csv", run / "objects_prediction.csv"):
        csvs = [c for c in csvs if c.name != "objects_prediction.csv"]  # the same objects, shown once
    for table in csvs:
        parts.append(f"<h2>Table: {html.escape(table.name)}</h2>")
        parts.append(_csv_preview(table, ["label", "volume_vox", "equivalent_radius_nm", "centroid_z", "centroid_y",
                                        "centroid_x", "sphericity_voxel", "sphericity_mesh", "mean_gray",
                                        "mean_probability"]))
    parts.append(_segmentation_section(run))
    provs = sorted(run.glob("*" + PROVENANCE_SUFFIX))  # segment's, label images' (io.output_guard.provenance_path)
    if provs:
        parts.append("<h2>Provenance</h2>")
        for p in provs:
            parts.append(f"<h3>{html.escape(p.name)}</h3><pre>{html.escape(p.read_text(encoding='utf-8'))}</pre>")
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{REPORT_MARK}"
           f"<title>{html.escape(title or 'tomoseg')}</title><style>{_CSS}</style></head><body>{''.join(parts)}"
           "</body></html>")
    check_report_output(out)  # never a report.html (or any file) tomoseg did not write
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    from ..io.result_stamps import stamp_results

    stamp_results([out])
    return out
