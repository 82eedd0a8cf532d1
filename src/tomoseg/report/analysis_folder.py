"""An analysis written as a result folder: the objects table, the curve along z, the figures, ``summary.json``
(last: it says the results are complete) and optionally the HTML report; what ``tomoseg analyze --out`` writes,
from the command line or from Python (:func:`save_analysis`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import TomosegError
from ..progress import step


def settings_of(options) -> dict:
    """How the objects were read, labelled and selected (summary.json's and evaluation.json's ``settings``):
    analyze's and evaluate's results stand together in one folder only where these match."""
    return {"threshold": options.threshold, "connectivity": options.connectivity,
            "exclude_border": options.exclude_border, "min_voxels": options.min_voxels, "read_as": options.read_as}


def save_analysis(analysis, folder, *, volume=None, intensity=None, report: bool = False, title: str | None = None,
                  all_objects: bool = False, overwrite: bool = False) -> Path:
    """Write ``analysis`` (:func:`tomoseg.objects.analyze`'s result) as ``tomoseg analyze --out FOLDER`` does.

    Parameters
    ----------
    analysis : Analysis
    folder : str or Path
        A new or empty folder, or an earlier tomoseg result folder with ``overwrite`` (never a folder of other
        files: the same check as the command line's).
    volume : Volume or ndarray, optional
        The volume analyzed; with ``intensity``, for the orthoslices figure (the objects drawn over the gray
        values).
    intensity : Volume or ndarray, optional
        The gray-value image.
    report : bool
        Also write ``report.html`` (:func:`tomoseg.report.build_report`).
    all_objects : bool
        ``objects.csv`` lists every object (``touches_border`` and the others excluded too), not only the kept.

    Returns
    -------
    Path : the folder.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from tomoseg.objects import analyze
    >>> mask = np.zeros((20, 40, 40), np.uint8); mask[8:13, 10:15, 10:15] = 1
    >>> out = save_analysis(analyze(mask, voxel_size=(30.0, 30.0, 30.0)), os.path.join(tempfile.mkdtemp(), "r"))
    >>> sorted(p.name for p in out.iterdir() if not p.name.startswith("."))[:3]
    ['figures', 'fraction_along_z.csv', 'objects.csv']
    """
    from ..io.result_folders import check_result_folder, make_result_folder
    from ..io.volume import check_array, path_of

    if not hasattr(analysis, "summary") or not hasattr(analysis, "fraction_along_z"):
        raise TomosegError(f"analysis: give tomoseg.objects.analyze's result, not a {type(analysis).__name__}")
    if intensity is not None and volume is None:
        raise TomosegError("intensity: give the volume analyzed too (volume=), for the orthoslices figure")
    for name, array in (("volume", volume), ("intensity", intensity)):
        if array is not None and tuple(check_array(array, name).shape) != tuple(analysis.shape):
            raise TomosegError(f"{name} has shape {tuple(array.shape)}, the analysis {tuple(analysis.shape)}")
    out = check_result_folder(folder, overwrite=overwrite, tool="analyze")
    if report:
        from ..io.output_guard import check_report_output

        check_report_output(Path(out) / "report.html")
    out = make_result_folder(out, "analyze", fresh=True)
    from ..io.segment_record import segmentation_of

    summary = {"input": path_of(volume) if volume is not None else None, "sample_mask": None, "labels": None}
    summary["segmentation"] = segmentation_of(summary["input"]) if summary["input"] else None  # review S5
    write_analysis_results(analysis, out, volume=volume, intensity=intensity, summary=summary, report=report,
                           title=title, all_objects=all_objects)
    return out


def write_analysis_results(analysis, out: Path, *, volume=None, intensity=None, summary: dict | None = None,
                           report: bool = False, title: str | None = None, all_objects: bool = False,
                           bar=None, csv=None) -> dict:
    """:func:`save_analysis` into a folder made ready for it (checked, earlier results cleared: the command
    line's joining rules decide that); ``summary`` adds to summary.json's record (the input's path ...), and
    ``bar`` (a :class:`~tomoseg.progress.Progress` over steps) moves one step a figure and the report; ``csv``,
    the objects table written already (``analyze --csv``), is copied as objects.csv. Returns the summary
    written."""
    from ..errors import said
    from ..io.result_folders import json_safe, write_result_json
    from ..table import write_csv

    out = Path(out)
    table = analysis.objects if all_objects else analysis.selected  # nm columns NaN without a voxel size
    voxel_size = analysis.voxel_size
    record = {"tool": "tomoseg analyze", **analysis.summary,
              "voxel_size_nm": list(voxel_size) if voxel_size else None, "shape": list(analysis.shape),
              **(summary or {}), "settings": settings_of(analysis.options)}
    write_csv(table, out / "objects.csv", overwrite=True, written=csv)
    record["figures"] = _write_figures(analysis, volume, intensity, out, bar, steps_after=int(report))
    # what analyze said, and what was said since (reading the files, the figures), once each
    record["notes"] = list(dict.fromkeys([*(analysis.summary.get("notes") or []), *said()]))
    # last: summary.json says the results are complete (an interrupted run leaves none; report checks it)
    write_result_json(out / "summary.json", json_safe(record))
    if report:
        from .html import build_report

        step(bar, "report")
        build_report(out, title=title or f"tomoseg analysis of {Path(str(record.get('input') or 'a volume')).name}")
        step(bar)
    return record


def no_objects_note(summary: dict, options, sample: bool) -> str:
    """Why no object is counted, for the figures that would be empty: "no objects kept (2 touch the border,
    0 under 8 voxels)"."""
    if summary.get("objects_all", 0) == 0:
        return "no objects found"
    why = f"{summary['excluded_border']:,} touch the border, {summary['excluded_small']:,} under " \
          f"{options.min_voxels} voxels"
    if sample:
        why += f", {summary.get('objects_outside_sample', 0):,} outside the sample mask"
    return f"no objects kept ({why})"


def _write_figures(analysis, volume, intensity, out: Path, bar, *, steps_after: int = 0) -> list:
    """The figures, one step of ``bar`` each (reset to their number and ``steps_after``: the report), and the
    curve of the volume fraction along z as ``fraction_along_z.csv``; returns the figures' names (summary.json
    lists them)."""
    from ..table import write_csv
    from . import figures
    from .slices import choose_planes, excluded_in_plane

    voxel_size, options, population = analysis.voxel_size, analysis.options, analysis.population
    sample = "in_sample" in analysis.selected  # analyzed with a sample mask
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    write_csv(figures.fraction_along_z_table(analysis.fraction_along_z, voxel_size, analysis.fraction_along_z_all),
              out / "fraction_along_z.csv", overwrite=True)
    tables = {"objects": population}  # the figures show the summary's objects
    empty = no_objects_note(analysis.summary, options, sample)
    steps = [("size_histogram", lambda path: figures.size_histogram(tables, path, voxel_size=voxel_size,
                                                                     empty_note=empty)),
             ("sphericity_vs_radius", lambda path: figures.sphericity_figure(tables, path, voxel_size=voxel_size,
                                                                            empty_note=empty)),
             ("fraction_along_z", lambda path: figures.fraction_along_z(
                 {"objects": analysis.fraction_along_z}, path, voxel_size=voxel_size, inside_sample=sample,
                 note="" if len(population["label"]) else empty)),
             ("objects_3d", lambda path: figures.objects_3d(population, analysis.shape, path, voxel_size=voxel_size,
                                                            empty_note=empty))]
    if intensity is not None and volume is not None:  # three planes read, whatever the volume's size
        from ..objects.reading import MaskView

        centre, why = choose_planes(population, analysis.shape, analysis.fraction_along_z_all)
        reading = analysis.reading
        probability = reading is not None and reading.probability
        read = reading.view(volume) if probability else volume  # a map in [0, 1], or of another type: as uint8
        steps.append(("orthoslices", lambda path: figures.orthoslices(
            intensity, MaskView(read, options, probability=probability), path, centre=centre,
            voxel_size=voxel_size, reason=why,
            excluded=excluded_in_plane(analysis.objects, population["label"], connectivity=options.connectivity))))
    names = [name for name, _ in steps]
    if bar is not None:
        bar.reset(total=len(steps) + steps_after)
    for name, draw in steps:
        step(bar, name)
        draw(figs / f"{name}.png")
        step(bar)
    return names
