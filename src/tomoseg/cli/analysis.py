"""Sub-commands ``analyze``, ``evaluate`` and ``report`` (no PyTorch import)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import TomosegError, note, said, warn
from ..io.output_guard import (FOLDER_MARKER, PROVENANCE_SUFFIX, check_outputs_apart, check_report_output,
                               check_table_output, read_record)
from ..io.result_folders import check_result_folder, make_result_folder, same_prediction
from ..io.segment_record import segmentation_of
from ..io.units import MM3_BELOW_PER_UM3, number_text, readable_unit
from ..io.voxel_sizes import UNKNOWN_NOTE, shared_voxel_size
from .registry import check_threshold, checked_voxel_size, command, overwrite_arg, voxel_size_arg


def _exclusion_args(p) -> None:
    p.add_argument("--threshold", type=int, default=127,
                   help="probability maps: object where value > this (default 127, the paper's)")
    p.add_argument("--read-as", choices=["auto", "probability", "mask"], default="auto",
                   help="how to read the input: probability = a 0-255 map, object where value > --threshold; "
                        "mask = object where value is not 0; auto (default) decides from the values and says "
                        "how on stderr (docs/analysis.md)")
    p.add_argument("--connectivity", type=int, default=26, choices=[6, 18, 26],
                   help="voxels that touch by a face (6), an edge (18) or a corner (26, default) are one object")
    p.add_argument("--keep-border", action="store_true", help="keep objects touching the volume border")
    p.add_argument("--min-voxels", type=int, default=8, help="drop objects smaller than this (default 8)")


def _options(args):
    """The analysis options of ``analyze`` and ``evaluate``. Objects are measured on the labelling's threads: since
    they are measured all at once (objects/region_measure.py) worker processes were slower (12.2-12.5 s against
    9.4-10.0 s on 2 cores, 448^3 map of 421,875 objects: shipping each chunk to a process costs more than the
    GIL)."""
    from ..objects import AnalysisOptions

    if args.min_voxels < 1:
        raise TomosegError(f"--min-voxels {args.min_voxels}: give at least 1")
    check_threshold(args.threshold)
    return AnalysisOptions(threshold=args.threshold, connectivity=args.connectivity,
                           exclude_border=not args.keep_border, min_voxels=args.min_voxels, read_as=args.read_as)


def _settings(options) -> dict:
    from ..report.analysis_folder import settings_of

    return settings_of(options)


def _segmented_box(path, done: str = "scored", more: str = ""):
    """The ``--roi`` box a map was segmented in (its provenance record), said in a note: the command works
    inside it (``done``: analysed, scored; ``more``: what else to say); None where there is none."""
    from ..io.segment_record import segmented_roi

    roi = segmented_roi(path)
    if roi is not None:
        box = ",".join(f"{a}:{b}" for a, b in roi)
        whole = {"analysed": "analyses", "scored": "scores"}[done]
        note(f"{path}: segmented with --roi {box} (its provenance record): {done} inside that box, objects "
             f"touching its faces left out as border objects{more}. --no-roi {whole} the whole volume")
    return roi


def _origin(vol, voxel_size):
    """Where the volume's voxel (0, 0, 0) lies (nm), for the ``centroid_*_nm`` columns and the label images: an
    OME-Zarr level's translation, an NRRD's space origin (:func:`~tomoseg.io.volume.origin_of`); None elsewhere
    or without a voxel size. A note where an origin is there but cannot be used."""
    from ..io.volume import origin_of

    if not voxel_size:
        return None
    origin = origin_of(vol)
    if origin is None and (getattr(vol, "orientation", None) or {}).get("space origin") is not None:
        note(f"{vol.path}: its space origin is not added to the centroid_*_nm columns (rotated or "
             "flipped space directions, or no space units): they are measured from voxel (0, 0, 0)")
    return origin





@command("analyze")
def _analyze(sub):
    p = sub.add_parser("analyze", help="count and measure objects of a mask or probability map",
                       description="Label 3D connected components and measure each object: volume, equivalent "
                                   "radius, centroid, bounding box, surface (voxel faces and marching cubes), "
                                   "sphericity, mean gray value and probability. Volumes larger than memory are "
                                   "labelled chunk by chunk.")
    p.add_argument("volume", help="mask (nonzero = object) or probability map (0-255; see --read-as)")
    p.add_argument("--intensity", help="the gray-value image, for mean gray values")
    p.add_argument("--probability", help="the probability map, for confidence columns (if VOLUME is a mask)")
    p.add_argument("--sample-mask", metavar="FILE|auto",
                   help="mask of the sample (nonzero inside): objects are marked in_sample by their centroid, and "
                        "the summary (objects, radii, sphericity, volume fraction, number density) covers the kept "
                        "objects inside it (default: the whole volume). 'auto': found in the --intensity image "
                        "as segment finds the sample (a pillar in air), without segment's margin")
    p.add_argument("--no-roi", action="store_true",
                   help="a map from segment --roi is analysed inside its box (read from the map's provenance "
                        "record: the box is the analysed volume, its faces a border); this analyses the whole "
                        "volume instead")
    p.add_argument("--csv", help="write the objects table here")
    p.add_argument("--out", help="write summary.json, objects.csv and figures into this folder")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    p.add_argument("--all-objects", action="store_true",
                   help="CSV with every object, exclusions marked (touches_border, too_small)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--labels", metavar="LABELS_OUT",
                   help="write the object label image here (IDs = the CSV's label column; objects the CSV leaves "
                        "out are 0); any format, .zarr gets a pyramid; TIFF holds uint16")
    p.add_argument("--ome-zarr", metavar="OUT.ome.zarr",
                   help="write one OME-Zarr for viewers: the image (--intensity, else VOLUME) as a pyramid with "
                        "labels/mask and labels/objects")
    _exclusion_args(p)
    voxel_size_arg(p)
    overwrite_arg(p)
    p.set_defaults(run=_run_analyze)


def _run_analyze(args) -> int:
    from ..io import open_volume
    from ..objects import analyze

    if not (args.csv or args.out or args.json or args.labels or args.ome_zarr):
        raise TomosegError("say where the results go: --csv objects.csv, --out FOLDER, --labels, --ome-zarr "
                           "or --json")
    if args.report and not args.out:
        raise TomosegError("--report needs --out FOLDER")
    folder = [(None, Path(args.out) / name) for name in ("objects.csv", "summary.json", "report.html")] \
        if args.out else []
    check_outputs_apart([("--csv", args.csv), ("--labels", args.labels), ("--ome-zarr", args.ome_zarr), *folder],
                        inputs=[(None, args.volume), ("--intensity", args.intensity),
                                ("--probability", args.probability),
                                ("--sample-mask", None if args.sample_mask == "auto" else args.sample_mask)])
    if args.sample_mask == "auto" and not args.intensity:
        raise TomosegError("--sample-mask auto finds the sample in the gray-value image: give it with --intensity "
                           "IMAGE, or give a mask file")
    if args.csv:
        check_table_output(args.csv, overwrite=args.overwrite)
    _check_label_outputs(args)
    options = _options(args)
    vs = checked_voxel_size(args.voxel_size)
    out = _check_shared_folder(args, "analyze", args.volume, options)
    if out is not None and args.report:
        check_report_output(out / "report.html")
    vol = open_volume(args.volume, voxel_size=vs)
    intensity = open_volume(args.intensity) if args.intensity else None
    prob = open_volume(args.probability) if args.probability else None
    sample_mask = open_volume(args.sample_mask) if args.sample_mask and args.sample_mask != "auto" else None
    for name, other in (("--intensity", intensity), ("--probability", prob), ("--sample-mask", sample_mask)):
        if other is not None and tuple(other.shape) != tuple(vol.shape):
            from ..sample_mask import binned_hint

            hint = binned_hint(other.shape, vol.shape) if name == "--sample-mask" else ""
            raise TomosegError(f"{other.path}: {name} volume has shape {tuple(other.shape)}, {args.volume} has "
                               f"{tuple(vol.shape)}; they must match voxel for voxel" + (f"; {hint}" if hint else ""))
        if other is not None:  # one cut elsewhere or turned: said, as evaluate says it (brief H2)
            from ..io.placement import warn_if_placed_apart

            given = getattr(args, name[2:].replace("-", "_"))
            warn_if_placed_apart(vol, args.volume, other, f"{name} {given}", vol.voxel_size,
                                 how="matched voxel by voxel")
    if args.sample_mask == "auto" and tuple(intensity.shape) == tuple(vol.shape):
        from ..sample_mask import analysis_sample_mask

        sample_mask = analysis_sample_mask(intensity)
        note(f"--sample-mask auto: the sample found in {args.intensity} (Otsu threshold "
             f"{sample_mask.record['otsu_threshold']:g} of segment's automatic mask, a prism along z) covers "
             f"{sample_mask.fraction():.1%} of each slice; the summary is measured inside it. Check it in the "
             "report's orthoslices, or give a mask file")
    voxel_size = vol.voxel_size if vs is not None else shared_voxel_size(  # review U2: disagreements said
        [(args.volume, vol), (f"--intensity {args.intensity}", intensity),
         (f"--probability {args.probability}", prob), (f"--sample-mask {args.sample_mask}", sample_mask)])
    if voxel_size is None:
        note(UNKNOWN_NOTE)
    origin = _origin(vol, voxel_size)
    from ..io.segment_record import segmented_mask_file

    mask_file = segmented_mask_file(args.volume) if sample_mask is None else None
    if mask_file:  # review SM8: the map is 0 outside that mask (and its halo), not measured there
        note(f"{args.volume}: segmented inside --sample-mask {mask_file} (its provenance record): the network ran "
             "on the tiles that touch it and its halo only (the map is 0 elsewhere), and the fractions and "
             f"densities here are over the whole volume; pass --sample-mask {mask_file} to measure inside the "
             "sample")
    over = (f"--sample-mask {args.sample_mask} inside the box (the sample that was segmented)"
            if sample_mask is not None else "the box")
    roi = None if args.no_roi else _segmented_box(
        args.volume, "analysed", f"; the volume fraction and number density are over {over}")
    _warn_if_a_scan(args.volume, vol, args.read_as, f"tomoseg analyze map.tif --intensity {args.volume} (for mean "
                    "gray values)")
    from ..progress import progress_while
    from . import progress_enabled

    with progress_while(progress_enabled(args), vol.size, desc="analyze") as bar:
        result = analyze(vol, intensity=intensity, probability=prob, voxel_size=voxel_size, options=options,
                         sample_mask=sample_mask, keep_labels=bool(args.labels or args.ome_zarr), progress=bar,
                         origin=origin, roi=roi)
    note(f"{args.volume}: {result.summary['reading']}")
    try:
        return _write_analysis(args, vol, result, options, voxel_size, intensity, sample_mask, out)
    finally:
        if result.labels is not None:
            result.labels.discard()


def _keep_joined_report(args, out: Path, same: bool) -> None:
    """A run joining the other tool's results (``same``: the same prediction and settings) into a folder whose
    report.html tomoseg wrote: the report is built again with both, as if --report were given. The folder's
    clearing removes every report (it would miss this run's results); without this, evaluate after
    ``analyze --report`` left no report at all."""
    from ..io.output_guard import report_of_tomoseg

    if same and not args.report and report_of_tomoseg(Path(out) / "report.html"):
        args.report = True
        note(f"{Path(out) / 'report.html'}: built again with both tools' results")


def _check_shared_folder(args, tool: str, prediction, options):
    """analyze's or evaluate's ``--out`` checked before the work: the other tool's results of the same
    prediction and settings may stay there without --overwrite (they are kept: one report of both)."""
    if not args.out:
        return None
    other, record, key = (("evaluate", "evaluation.json", "prediction") if tool == "analyze"
                          else ("analyze", "summary.json", "input"))
    same = same_prediction(read_record(Path(args.out) / record), prediction, _settings(options), key=key)
    return check_result_folder(args.out, overwrite=args.overwrite, tool=tool, shares_with=(other,) if same else ())


def _write_analysis(args, vol, result, options, voxel_size, intensity, sample_mask, out) -> int:
    """The tables, label images, summary, figures and report of ``analyze``'s result."""
    from ..io.result_folders import json_safe
    from ..report.analysis_folder import write_analysis_results
    from ..table import write_csv

    table = result.objects if args.all_objects else result.selected  # nm columns NaN without a voxel size
    if out is not None:  # an earlier run's results removed, before --csv and the label outputs, which may go there
        same = same_prediction(read_record(Path(out) / "evaluation.json"), args.volume, _settings(options),
                               key="prediction")
        _keep_joined_report(args, out, same)
        make_result_folder(out, "analyze", fresh=True, keep=("evaluate",) if same else ())
    if args.csv:
        write_csv(table, args.csv, overwrite=args.overwrite)
    _write_label_outputs(args, vol, result, table, intensity, voxel_size, out)
    paths = {"input": str(args.volume), "sample_mask": args.sample_mask,
             "labels": args.labels}  # the label image (its own provenance record beside it), if one was written
    paths["segmentation"] = segmentation_of(args.volume)  # the model and segment settings of the map (review S5)
    summary = {"tool": "tomoseg analyze", **result.summary, "voxel_size_nm": list(voxel_size) if voxel_size else None,
               "shape": list(result.shape), **paths, "settings": _settings(options)}
    if out is not None:
        with _steps(args, 1, "results") as bar:  # one step a figure, then the report
            summary = write_analysis_results(result, out, volume=vol, intensity=intensity, summary=paths,
                                             report=args.report, all_objects=args.all_objects, bar=bar,
                                             csv=args.csv,
                                             title=f"tomoseg analysis of {Path(args.volume).name}")
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(_summary_line(result.summary, options, sample_mask is not None))
    return 0


def _warn_if_a_scan(name, volume, how: str, then: str) -> None:
    """Before the work: a uint8 volume read as a probability map (not one segment wrote) whose values are mostly
    neither near 0 nor near 255 is likely the gray-value scan itself, given in the map's place: the raw cement
    scan was analysed as a map without a word (6 objects, where its map holds 915)."""
    from ..objects.reading import value_spread, written_as_probability

    if how != "auto" or str(volume.dtype) != "uint8" or written_as_probability(volume):
        return
    middle, mode = value_spread(volume)
    if middle > 0.5 and mode < 0.5:
        warn(f"{name}: {middle:.0%} of its voxels lie between 13 and 242 (of 255) and spread over many values, as "
             "in a gray-value scan; a probability map is mostly at one value near 0 away from the objects. If it "
             "is the scan itself, segment it first: "
             f"tomoseg segment {name} map.tif, then {then}")


def _summary_line(s: dict, options, masked: bool) -> str:
    """analyze's printed result: counts, the radius (nm and voxels), the volume fraction of every object voxel
    (the phase's) beside that of the kept objects, and the number density, each saying what it counts."""
    roi = s.get("roi")
    where = "inside the sample mask" if masked else \
        "inside the ROI box" if roi else "of the whole volume"
    kept = f"{s['objects']} objects kept" if s.get("objects_outside_sample") is None or not masked else \
        f"{s['objects']} objects kept inside the sample mask ({s['objects_outside_sample']} more outside it)"
    radius = _mean_sd(s['mean_radius_vox'], s['sd_radius_vox'], 'voxels')
    if s.get("mean_radius_nm") is not None and s['objects']:  # in nm, µm or mm: not 94271.61 nm at 50 µm voxels
        name, size = readable_unit(s['mean_radius_nm'])
        sd = s.get('sd_radius_nm')
        radius = f"{_mean_sd(s['mean_radius_nm'] / size, None if sd is None else sd / size, name)} ({radius})"
    border = "touch the border" + (" or the ROI box" if roi else "")
    per_um3 = s.get("number_density_per_um3") is not None
    key, unit, scale = ("per_um3", " /µm³", 1.0) if per_um3 else ("per_mvox", " per 10^6 voxels", 1.0)
    if per_um3 and s["number_density_per_um3"] < MM3_BELOW_PER_UM3:  # lab scans: 3.49 /mm³, not 3.49e-09 /µm³
        unit, scale = " /mm³", 1e9
    density = f"{number_text(scale * s['number_density_' + key])}{unit}" + ("" if per_um3 else " (voxel size unknown)")
    corrected = s.get("number_density_corrected_" + key)
    density += (f" (kept objects; {number_text(scale * corrected)}{unit} with the Miles-Lantuéjoul edge correction)"
                if corrected is not None else " (kept objects: biased low by the border exclusion)")
    return (f"{kept} of {s['objects_all']} ({s['excluded_border']} {border}, {s['excluded_small']} more under "
            f"{options.min_voxels} voxels); mean radius {radius}; volume fraction {s['volume_fraction_all_objects']:.3%} "
            f"{where} (every object voxel; {s['volume_fraction']:.3%} in the kept objects); number density "
            f"{density}")


def _steps(args, total: int, desc: str):
    """A bar over ``total`` steps (figures, a report) on stderr for a ``with`` block, or none under ``-q``."""
    import contextlib

    from ..progress import Progress
    from . import progress_enabled

    return Progress(total, desc=desc, unit="steps") if progress_enabled(args) else contextlib.nullcontext()


def _mean_sd(mean, sd, unit: str) -> str:
    """"3.94 ± 0.51 voxels"; a mean without an s.d. (one object) or none at all (no objects) said as such,
    not as nan."""
    if mean is None or mean != mean:
        return "n/a (no objects)"
    if sd is None or sd != sd:
        return f"{mean:.2f} {unit} (one object: no s.d.)"
    return f"{mean:.2f} ± {sd:.2f} {unit}"


def _check_label_outputs(args) -> None:
    """Before the heavy work: the label outputs' formats and whether they may be written."""
    from ..io import format_of, split_dataset
    from ..io.output_guard import check_output

    for opt, target in (("--labels", getattr(args, "labels", None)), ("--ome-zarr", getattr(args, "ome_zarr", None))):
        if not target:
            continue
        if opt == "--ome-zarr":
            from ..io.ome_zarr import have_models

            if format_of(target, for_writing=True) != "zarr":
                raise TomosegError(f"--ome-zarr {target}: give a path ending in .ome.zarr")
            if not have_models():
                from ..errors import needs_package

                raise needs_package("--ome-zarr", "ome-zarr-models", "it supports Python 3.11 to 3.13")
        f, _ = split_dataset(target)
        source = getattr(args, "volume", None) or getattr(args, "input", None)
        # refused now, not after the analysis: an existing output unless it is tomoseg's and --overwrite is given;
        # a new dataset in an existing HDF5 file (the map's own, say) replaces nothing
        check_output(target, overwrite=args.overwrite, input_path=source)
        out = getattr(args, "out", None)  # analyze makes its --out folder
        in_out = bool(out) and f.parent.resolve() == Path(out).resolve()
        if not f.parent.exists() and not in_out:
            raise TomosegError(f"{f.parent}: output folder does not exist; create it first")
        _check_label_room(args, opt, target, source)


def _check_label_room(args, opt: str, target, source) -> None:
    """Before the work: the folder of a label output writable, and room on its disk for it at the input's
    shape (TIFF, NRRD, NPY: refused when it cannot fit, with the other uncompressed outputs of the run on the
    same disk; compressed formats: a warning when less than their uncompressed size is free)."""
    import numpy as np

    from ..io import check_output_format, format_of, split_dataset
    from ..io.output_guard import _shape_of
    from ..io.disk_space import (UNCOMPRESSED, check_file_size_limit, check_free_space, check_writable_folder,
                                 output_bytes, warn_if_short)
    from ..objects.label_image import label_dtype_for

    f, _ = split_dataset(target)
    folder = next(p for p in (f.parent, *f.parent.parents) if p.exists())  # analyze --out: made later
    check_writable_folder(folder)
    shape = _shape_of(source)
    if shape is None:  # the input is checked (and refused) when it is opened
        return
    if opt == "--ome-zarr":  # the image (at most float32), the mask and the objects (uint32), compressed
        warn_if_short(folder, output_bytes(shape, np.float32) + output_bytes(shape, np.uint8)
                      + output_bytes(shape, np.uint32), what=f"the OME-Zarr {f.name}", resume=False)
        return
    dtype = label_dtype_for(target, 1)  # TIFF: uint16 (float32 past 65535 objects); other formats uint32
    check_output_format(target, dtype, shape)
    nbytes = output_bytes(shape, dtype)
    fmt = format_of(target, for_writing=True)
    if fmt not in UNCOMPRESSED:
        staged = 2 if fmt == "hdf5" and f.exists() else 1  # into an existing HDF5 file: staged, then copied in
        warn_if_short(folder, staged * nbytes, what=f"the label image {f.name}", resume=False)
        return
    check_file_size_limit(f, nbytes, what="the label image")
    need = nbytes
    for other in (getattr(args, "output", None), getattr(args, "mask", None)):  # segment's map and mask
        if other and format_of(other, for_writing=True) in UNCOMPRESSED and _same_disk(split_dataset(other)[0],
                                                                                        folder):
            need += output_bytes(shape, np.uint8)
    check_free_space(folder, need, what=f"writing {f.name}" + (" (with the probability map and mask)"
                                                                if need > nbytes else ""))


def _same_disk(path: Path, folder: Path) -> bool:
    import os

    try:
        there = next(p for p in (path.parent, *path.parent.parents) if p.exists())
        return os.stat(there).st_dev == os.stat(folder).st_dev
    except (OSError, StopIteration):
        return False


def _write_label_outputs(args, vol, result, table, intensity, voxel_size, out) -> None:
    from ..objects.label_image import write_label_image, write_objects_ome_zarr

    tables = [str(t) for t in (args.csv, out / "objects.csv" if out is not None else None) if t]
    # the input's origin (its translation, its space origin), as the centroid_*_nm columns count from it: the
    # labels then lie on the input in viewers that place images by it (napari-ome-zarr, neuroglancer, Slicer)
    origin = result.summary.get("origin_nm")
    about = {"objects_tables": tables, "all_objects": args.all_objects,
             "summary": str(out / "summary.json") if out is not None else None,
             "origin_nm": origin}  # also in the image's metadata where its format holds one (OME-Zarr, NRRD)
    if getattr(args, "labels", None):
        from ..progress import progress_while
        from . import progress_enabled

        about["command"] = "tomoseg analyze --labels"
        with progress_while(progress_enabled(args), vol.size, desc="label image") as bar:
            write_label_image(vol, args.labels, table, options=result.options, voxel_size=voxel_size,
                              overwrite=args.overwrite, labels=result.labels, progress=bar, provenance=about,
                              probability=result.reading.probability, origin=origin)
    if getattr(args, "ome_zarr", None):
        from ..progress import progress_while
        from . import progress_enabled

        # the image, the mask and the objects: the volume's voxels three times
        with progress_while(progress_enabled(args), 3 * vol.size, desc="OME-Zarr") as bar:
            write_objects_ome_zarr(vol, args.ome_zarr, table, image=intensity, options=result.options,
                                   voxel_size=voxel_size, overwrite=args.overwrite, labels=result.labels,
                                   probability=result.reading.probability, progress=bar, origin=origin,
                                   provenance={**about, "command": "tomoseg analyze --ome-zarr"})


@command("evaluate")
def _evaluate(sub):
    p = sub.add_parser("evaluate", help="compare a prediction with ground truth: voxel and object scores",
                       description="Confusion matrix (counts and normalized), accuracy, recall, precision, "
                                   "F1/Dice, IoU, computed slab by slab; object detection recall, precision and "
                                   "F1 (one-to-one matching by overlap, then centroid distance).")
    p.add_argument("prediction", help="probability map (0-255; see --read-as) or mask")
    p.add_argument("labels", help="ground truth (0/1 or 0/255)")
    p.add_argument("--intensity", help="the gray-value image (for hit maps and mean gray values)")
    p.add_argument("--out", help="write evaluation.json, object tables and figures into this folder")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--no-roi", action="store_true",
                   help="a prediction from segment --roi is scored inside its box (read from its provenance "
                        "record: the map is 0 outside it; the box's faces are a border); this scores the whole "
                        "volume instead")
    _exclusion_args(p)
    voxel_size_arg(p)
    overwrite_arg(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from ..evaluation import evaluate, write_evaluation
    from ..io import open_volume

    if args.report and not args.out:
        raise TomosegError("--report needs --out FOLDER")
    folder = [(None, Path(args.out) / name) for name in ("evaluation.json", "objects_prediction.csv",
                                                         "report.html")] if args.out else []
    check_outputs_apart(folder, inputs=[(None, args.prediction), (None, args.labels),
                                        ("--intensity", args.intensity)])
    options = _options(args)
    override = checked_voxel_size(args.voxel_size)
    out = _check_shared_folder(args, "evaluate", args.prediction, options)
    if out is not None and args.report:
        check_report_output(out / "report.html")
    pred = open_volume(args.prediction, voxel_size=override)  # a size the files record otherwise is said (U1)
    labels = open_volume(args.labels, voxel_size=override)
    if tuple(pred.shape) != tuple(labels.shape):  # no voxel grid in common: refused (review LO3: it named no file)
        raise TomosegError(f"prediction {args.prediction} {pred.shape} and labels {args.labels} {labels.shape} "
                           "differ in shape: they cannot be compared voxel by voxel")
    intensity = open_volume(args.intensity) if args.intensity else None
    vs = override or shared_voxel_size([(args.prediction, pred), (args.labels, labels),  # review U2
                                        (f"--intensity {args.intensity}", intensity)])
    from ..io.placement import warn_if_placed_apart

    warn_if_placed_apart(pred, args.prediction, labels, args.labels, vs)  # one frame rotated, or cut elsewhere
    _warn_if_a_scan(args.prediction, pred, args.read_as, f"tomoseg evaluate map.tif {args.labels}")
    if intensity is not None:
        warn_if_placed_apart(pred, args.prediction, intensity, f"--intensity {args.intensity}", vs)
    if vs is None:
        note(UNKNOWN_NOTE)  # as analyze says it (review U5: evaluate said nothing)
    from ..progress import progress_while
    from . import progress_enabled

    roi = None if args.no_roi else _segmented_box(args.prediction)
    # four passes over the voxels (the voxel scores, both labellings, the overlaps) on one bar of the voxels
    with progress_while(progress_enabled(args), pred.size, desc="evaluate") as bar:
        result = evaluate(pred, labels, threshold=args.threshold, intensity=intensity, voxel_size=vs,
                          options=options, progress=None if bar is None else _Passes(bar, 4),
                          origin=_origin(pred, vs), roi=roi)
    note(f"{args.prediction}: {result['prediction_reading']}")
    result["segmentation"] = segmentation_of(args.prediction)  # the model and segment settings (review S5)
    result["notes"] = said()  # what the run said (notes, warnings), for the record
    if out is not None:
        # an earlier run's results there removed; analyze's of this prediction kept, for one report of both
        same = same_prediction(read_record(Path(out) / "summary.json"), args.prediction, _settings(options),
                               key="input")
        _keep_joined_report(args, out, same)
        make_result_folder(out, "evaluate", fresh=True, keep=("analyze",) if same else ())
        result["prediction"], result["ground_truth"] = str(Path(args.prediction).absolute()), \
            str(Path(args.labels).absolute())
        result["settings"] = _settings(options)
        with _steps(args, 1, "results") as bar:  # one step a figure, then the report
            # the hit maps read their slices; the bar is reset to the number of figures
            write_evaluation(result, out, image=intensity, voxel_size=vs, progress=bar)
            if args.report:
                from ..report import build_report
                from ..progress import step

                if bar is not None:
                    bar.reset(total=1)
                step(bar, "report")
                build_report(out, title=f"tomoseg evaluation of {Path(args.prediction).name}")
                step(bar)
    else:
        result.pop("_tables", None)
        result.pop("_masks", None)
    if args.json:
        from ..io.result_folders import strict_json

        print(strict_json(result, default=float))
    else:
        v = result["voxel"]
        print(f"voxels: accuracy {_score(v['accuracy'], 6)}, recall {_score(v['recall'])}, precision "
              f"{_score(v['precision'])}, F1 {_score(v['f1'])}, IoU {_score(v['iou'])} (TP {v['tp']}, FP {v['fp']}, "
              f"FN {v['fn']}, TN {v['tn']})")
        o = result.get("objects")
        if o:
            print(f"objects (>= {args.min_voxels} voxels{'' if args.keep_border else ', off the border'}): "
                  f"recall {_score(o['recall'])}, precision {_score(o['precision'])}, F1 {_score(o['f1'])} "
                  f"({o['true_objects']} true, {o['predicted_objects']} predicted)")
    return 0


def _score(value, digits: int = 4) -> str:
    """A score for the printed line; "n/a" where it is undefined (precision with nothing predicted: 0/0)."""
    value = float(value) if value is not None else float("nan")
    return "n/a" if value != value else f"{value:.{digits}f}"


class _Passes:
    """A bar of the volume's voxels fed by ``passes`` passes over them: each voxel of a pass counts
    ``1 / passes``, so the bar's total and rate are the volume's voxels (and voxels per second), not ``passes``
    times them."""

    def __init__(self, bar, passes: int):
        self.bar, self.passes, self._rest = bar, int(passes), 0

    def update(self, n: int) -> None:
        whole, self._rest = divmod(self._rest + int(n), self.passes)
        if whole:
            self.bar.update(whole)

    def reset(self, *args, **kwargs) -> None:
        self._rest = 0
        self.bar.reset(*args, **kwargs)

    # the bar's total and description, in this bar's units (voxels of a pass): a stage read again adds its voxels
    # to the total (:class:`~tomoseg.progress.Stage`) instead of restarting the bar
    @property
    def total(self):
        total = getattr(self.bar, "total", None)
        return None if total is None else total * self.passes

    @total.setter
    def total(self, value) -> None:
        self.bar.total = -(-int(value) // self.passes)

    @property
    def desc(self):
        return getattr(self.bar, "desc", None)

    def set_description(self, desc: str, **kwargs) -> None:
        self.bar.set_description(desc, **kwargs)


@command("report")
def _report(sub):
    p = sub.add_parser("report", help="build one self-contained HTML report from a results folder",
                       description="Assemble report.html (figures embedded; opens offline) from the results "
                                   "that analyze --out and evaluate --out wrote into RUN_DIR.")
    p.add_argument("run_dir", help="a folder of results: analyze, evaluate or track --out")
    p.add_argument("--title", help="the report's title (default: 'tomoseg report')")
    p.set_defaults(run=_run_report)


def _run_report(args) -> int:
    from ..report import build_report

    run = Path(args.run_dir)
    if not run.is_dir():
        raise TomosegError(f"{run}: not a folder of results")
    for f in [run / "summary.json", run / "evaluation.json"] + sorted(run.glob("*" + PROVENANCE_SUFFIX)):
        if f.exists():
            try:
                if not isinstance(json.loads(f.read_text(encoding="utf-8")), dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TomosegError(f"{f}: is not valid JSON ({exc}); run analyze/evaluate --out again or remove "
                                   "the file") from None
    if not any((run / name).is_file() for name in (FOLDER_MARKER, "summary.json", "evaluation.json")):
        raise TomosegError(f"{run}: holds no analyze/evaluate results (no {FOLDER_MARKER} marker, summary.json or "
                           "evaluation.json); nothing to report. Give the folder of analyze --out or evaluate --out")
    check_report_output(run / "report.html")
    from ..report.html import incomplete_results

    for missing in incomplete_results(run):  # said here and at the top of the report
        print(f"tomoseg: warning: {run}: {missing}", file=sys.stderr)
    try:
        path = build_report(run, title=args.title)
    except (KeyError, TypeError, ValueError) as exc:
        raise TomosegError(f"{run}: a results file lacks what the report needs ({type(exc).__name__}: {exc}); "
                           "run analyze/evaluate --out again") from None
    print(f"wrote {path}")
    return 0
