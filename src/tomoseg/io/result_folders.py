"""Result folders (``analyze --out``, ``evaluate --out``, ``track --out``): checked before the work, marked as
tomoseg's, and cleared of an earlier run's results (each tool's own figure names, :data:`RESULT_FIGURES`) while a
user's own files stay. What may be replaced at all is :mod:`tomoseg.io.output_guard`'s rule."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .disk_space import check_writable_folder
from .output_guard import FOLDER_MARKER, _objects_table_header, read_record, report_of_tomoseg


def check_result_folder(folder, *, overwrite: bool, resume: str | None = None, tool: str | None = None,
                        shares_with: tuple = ()) -> Path:
    """Check a folder for a command's results (tables, JSON, figures) before the work; return it.

    A new or empty folder is fine; an earlier result folder of tomoseg (its ``.tomoseg`` marker, or a
    ``summary.json`` whose provenance names tomoseg) only with ``overwrite``; a folder of other files never,
    since its ``summary.json`` or ``objects.csv`` could be someone's own. With ``resume`` (a tool's name, e.g.
    ``"track"``) a folder whose marker says that tool wrote it is accepted too, and only such a folder: resuming
    never writes into another tool's results. :func:`make_result_folder` creates it when the results are ready.

    ``tool`` (this run's) and ``shares_with`` (the tools whose results in the folder describe the same
    prediction read with the same settings: :func:`same_prediction`): a folder holding only such results, none
    of ``tool``'s own, is accepted without ``overwrite``: nothing in it is replaced (``analyze`` then
    ``evaluate`` of one prediction into one folder, one report of both). A folder holding another tool's
    results of another prediction or settings is refused without ``overwrite``, saying that it removes them.
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: is a file, not a folder; give a folder for the results")
    if out.exists() and any(out.iterdir()):
        if resume and not overwrite:
            if result_folder_tool(out) != resume:
                raise TomosegError(f"{out}: holds no interrupted {resume} run (its {FOLDER_MARKER} marker does not "
                                   f"say tomoseg {resume} wrote it); --resume continues only such a folder: pass "
                                   "--overwrite to replace an earlier tomoseg result there, or choose another folder")
        elif not overwrite:
            there = results_in(out)
            others = sorted(t for t in there if t != tool)
            if tool and there and tool not in there and set(others) <= set(shares_with) \
                    and _result_folder_of_tomoseg(out):
                check_results_not_edited(out)  # joins them: nothing replaced (the report is built again)
                return out
            if tool and others and tool not in there:
                raise TomosegError(f"{out}: holds {' and '.join(others)}'s results of another prediction or with "
                                   f"other settings (threshold, connectivity, border rule, minimum size, reading); "
                                   "pass --overwrite to remove them (your own files there stay), or choose another "
                                   "folder")
            raise TomosegError(f"{out}: folder exists and is not empty; pass --overwrite to replace an earlier "
                               "tomoseg result there, or choose another folder")
        if not _result_folder_of_tomoseg(out):
            raise TomosegError(f"{out}: a folder of other files, not an earlier tomoseg result (no {FOLDER_MARKER} "
                               "marker); tomoseg does not write into it, even with --overwrite: choose a new folder")
        check_results_not_edited(out)
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    check_writable_folder(existing)
    return out


def check_results_not_edited(folder) -> None:
    """Refuse a result folder where a result tomoseg wrote (and stamped: :mod:`tomoseg.io.result_stamps`) has
    been changed since: an annotated ``objects.csv``, a figure retouched in place."""
    from .result_stamps import LEDGER, check_not_edited, _ledger

    out = Path(folder)
    stamped = [out / name for name in _ledger(out)] + [out / "figures" / name for name in _ledger(out / "figures")]
    check_not_edited([p for p in stamped if p.name != LEDGER])


def results_in(folder) -> set:
    """The tools (``analyze``, ``evaluate``, ``track``) whose results lie in the tomoseg result folder
    ``folder``: its records and tables, and its figures (the report belongs to none)."""
    out = Path(folder)
    tools = {_result_owner(p)[1] for p in out.iterdir() if p.is_file() and not p.is_symlink()}
    figs = out / "figures"
    if figs.is_dir() and not figs.is_symlink():
        tools |= {_figure_owner(p.name)[1] for p in figs.iterdir() if p.is_file() and not p.is_symlink()}
    return tools - {None}


def make_result_folder(folder, tool: str, *, fresh: bool = False, keep: tuple = ()) -> Path:
    """Create a result folder checked by :func:`check_result_folder` and mark it as tomoseg's.

    With ``fresh`` (a run that writes all its results anew: analyze, evaluate) the results an earlier tomoseg
    run left there are removed first (:func:`clear_result_folder`), except those of the tools in ``keep``
    (evaluate's results kept by an analyze of the same prediction, and the reverse: one report of both), so
    the folder and its report hold only results of this prediction."""
    out = Path(folder)
    if fresh and out.is_dir() and _result_folder_of_tomoseg(out):
        others = results_in(out) - {tool, *keep}
        clear_result_folder(out, keep=keep)
        if others:  # removed with --overwrite: said, as the folder's message before the work said it would be
            from ..errors import note

            note(f"{out}: {' and '.join(sorted(others))}'s results there (of another prediction or with other "
                 "settings) were removed")
    out.mkdir(parents=True, exist_ok=True)
    (out / FOLDER_MARKER).write_text(f"results written by tomoseg {tool}\n", encoding="utf-8")
    return out


# The figures analyze, evaluate and track write into OUT/figures, by the tool that writes them (each its own
# names: analyze's and evaluate's results share a folder), and the records and tables they write into OUT.
# Volumes written into the folder (--labels, track's maps) are not among them.
RESULT_FIGURES = {"analyze": ("fraction_along_z", "objects_3d", "orthoslices", "size_histogram",
                              "sphericity_vs_radius"),
                  "evaluate": ("confusion_matrix", "hit_map_z", "evaluate_size_histogram",
                               "evaluate_sphericity_vs_radius"),
                  "track": ("track_radius", "track_volume_change", "track_map")}
FIGURE_FORMATS = ("png", "svg", "pdf")  # report.figures.FORMATS
# the "tool" of track's summary.json (in its provenance): that summary is track's result, not analyze's
TRACK_SUMMARY_TOOL = "tomoseg-track"
_RESULT_RECORDS = {"evaluation.json": "evaluate", "transform.json": "track", "track.html": "track",
                   "matches.csv": "track", "registration_crops.csv": "track", "fraction_along_z.csv": "analyze"}


def _figure_owner(name: str):
    """``(True, tool)`` for a figure file tomoseg names (PNG, SVG or PDF; its tool),
    else ``(False, None)``."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in FIGURE_FORMATS:
        return False, None
    for tool, stems in RESULT_FIGURES.items():
        if stem in stems or (stem.startswith("hit_map_z") and stem[9:].isdigit() and "hit_map_z" in stems):
            return True, tool
    return False, None


def _result_owner(p: Path):
    """``(True, tool)`` when ``p``, a file at the top of a tomoseg result folder, is one of tomoseg's results
    (by its name and, where the file says who wrote it, its content; ``tool`` None for the report), else
    ``(False, None)``."""
    name = p.name
    if name == "summary.json":  # analyze's ("tool": "tomoseg analyze") or track's (its provenance's tool)
        tool = str(_json_tool(p))
        if not tool.startswith("tomoseg"):
            return False, None
        return True, ("track" if tool == TRACK_SUMMARY_TOOL else "analyze")
    if name == "report.html":
        return (True, None) if report_of_tomoseg(p) else (False, None)
    if name == "objects.csv" or (name.startswith("objects_") and name.endswith(".csv")):
        ours = _objects_table_header(p) is True
        return (ours, ("analyze" if name == "objects.csv" else "evaluate") if ours else None)
    return (True, _RESULT_RECORDS[name]) if name in _RESULT_RECORDS else (False, None)


def _json_tool(p: Path):
    record = read_record(p) or {}
    provenance = record.get("provenance")
    return record.get("tool") or (provenance.get("tool") if isinstance(provenance, dict) else None)


def clear_result_folder(folder, *, keep: tuple = ()) -> list[Path]:
    """Remove the results an earlier tomoseg run wrote into ``folder`` (a tomoseg result folder): its
    ``summary.json``, ``evaluation.json``, ``report.html``, objects tables, track's records, and in
    ``figures/`` the figures tomoseg names (:data:`RESULT_FIGURES`, PNG, SVG, PDF), their captions with them
    (out of ``captions.json``: :func:`write_captions`).
    The results of the tools in ``keep`` stay (the report is always removed: it is built again). Any other file
    (a user's notes, a table or figure of another name, volumes) is kept; a result changed since tomoseg wrote
    it (:mod:`tomoseg.io.result_stamps`) is refused, with nothing removed. Returns what was removed."""
    out = Path(folder)
    gone = []
    for p in out.iterdir():
        ours, tool = _result_owner(p) if p.is_file() and not p.is_symlink() else (False, None)
        if ours and (tool is None or tool not in keep):
            gone.append(p)
    figs = out / "figures"
    if figs.is_dir() and not figs.is_symlink():
        for p in figs.iterdir():
            ours, tool = _figure_owner(p.name) if p.is_file() and not p.is_symlink() else (False, None)
            if ours and (tool is None or tool not in keep):
                gone.append(p)
    from .result_stamps import check_not_edited, forget_results

    removed_figures = {p.stem for p in gone if p.parent == figs}
    # checked before the work (check_result_folder); again: never one edited meanwhile (captions.json too)
    check_not_edited(gone + ([figs / CAPTIONS_FILE] if removed_figures else []))
    _prune_captions(figs, removed_figures)  # first: refused (a user's captions.json) with nothing removed
    for p in gone:
        p.unlink()
    forget_results(gone)
    return gone


def _prune_captions(figs: Path, removed: set) -> None:
    """The captions of removed figures taken out of ``captions.json`` (the others stay with their figures)."""
    if removed and (figs / CAPTIONS_FILE).is_file() and not (figs / CAPTIONS_FILE).is_symlink():
        write_captions(figs, remove=removed)


CAPTIONS_FILE = "captions.json"  # in a figures folder: {figure name (no suffix): its caption}


def read_captions(folder) -> dict:
    """The figure captions in ``folder``'s ``captions.json`` (``{figure name without suffix: caption}``), as the
    figure functions wrote them (:func:`write_captions`); empty where there is none, or none readable."""
    try:
        captions = json.loads((Path(folder) / CAPTIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in captions.items()} if isinstance(captions, dict) else {}


def write_captions(folder, captions: dict | None = None, *, remove=()) -> Path | None:
    """``captions`` (``{figure name: caption}``) added to ``folder``'s ``captions.json`` and those named in
    ``remove`` taken out, the file written by :func:`write_result_text` (renamed when complete, stamped: edited
    later, it is never replaced; a stamped one edited since is refused, naming it, as tomoseg's other results
    are). A ``captions.json`` that holds no captions (not a JSON object: a user's file) is refused, not
    replaced. Nothing left: the file is removed. Returns the file, or None where it is gone."""
    from .result_stamps import check_not_edited, forget_results

    store = Path(folder) / CAPTIONS_FILE
    check_not_edited([store])
    merged = {}
    if store.exists() or store.is_symlink():
        try:
            merged = json.loads(store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            merged = None
        if not isinstance(merged, dict) or store.is_symlink():
            raise TomosegError(f"{store}: holds no figure captions tomoseg can read (not the JSON object of captions "
                               "tomoseg writes); tomoseg does not replace it: move it away (or rename it), then run "
                               "again")
    merged.update(captions or {})
    for name in remove:
        merged.pop(name, None)
    if not merged:
        store.unlink(missing_ok=True)
        forget_results([store])
        return None
    return write_result_text(store, json.dumps(merged, indent=1))


def same_prediction(record: dict | None, prediction, settings: dict, *, key: str) -> bool:
    """Whether a result record (analyze's summary.json, evaluate's evaluation.json) describes ``prediction``
    (the same file, resolved) read and selected with the same ``settings`` (threshold, connectivity, border
    rule, minimum size, reading: every key of ``settings`` equal in the record's ``settings``): its results may
    then stand beside this run's in one report, as the same objects."""
    if not isinstance(record, dict) or not record.get(key) or not isinstance(record.get("settings"), dict):
        return False
    try:
        same_file = Path(str(record[key])).resolve() == Path(str(prediction)).resolve()
    except (OSError, RuntimeError):
        return False
    return same_file and all(record["settings"].get(k) == v for k, v in settings.items())


def result_folder_tool(folder) -> str | None:
    """The tool named by a result folder's marker (``results written by tomoseg TOOL``), else None."""
    try:
        text = (Path(folder) / FOLDER_MARKER).read_text(errors="replace")
    except OSError:
        return None
    m = re.match(r"results written by tomoseg (\S+)", text)
    return m.group(1) if m else None


def _result_folder_of_tomoseg(folder: Path) -> bool:
    if (folder / FOLDER_MARKER).is_file():
        return True
    # result folders of earlier versions: their summary.json names tomoseg
    return str(_json_tool(folder / "summary.json")).startswith("tomoseg")


def write_result_text(path, text: str) -> Path:
    """A result written as text (a JSON record, an HTML page) under a temporary name, renamed when complete, and
    stamped (:func:`~tomoseg.io.result_stamps.stamp_results`): edited later, it is never replaced."""
    from .result_stamps import stamp_results

    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    stamp_results([path])
    return path


def write_result_json(path, record: dict, **dumps) -> None:
    """A result record (``summary.json``, ``evaluation.json``, track's ``transform.json``) written by
    :func:`write_result_text`; ``dumps``: options of ``json.dumps``. NaN and infinities are written as null
    (strict JSON, review S10: ``evaluation.json`` held ``Infinity`` and ``NaN``)."""
    write_result_text(path, strict_json(record, indent=1, **dumps))


def strict_json(record, **dumps) -> str:
    """``json.dumps`` of ``record`` with NaN and infinities as null (what a ``default`` returns too), so that
    strict readers (JavaScript's ``JSON.parse``, ``jq``) read it; every JSON file tomoseg writes goes through
    it."""
    default = dumps.pop("default", None)
    if default is not None:
        dumps["default"] = lambda value: json_safe(default(value))
    return json.dumps(json_safe(record), allow_nan=False, **dumps)


def json_safe(value):
    """NaN and infinities as None (JSON null), recursively: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return json_safe(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
