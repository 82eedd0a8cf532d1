"""Sub-command ``track`` (follow objects between two scans), and ``phantom --pair``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import TomosegError, note, warn
from ..io.result_folders import check_result_folder, make_result_folder, strict_json
from ..io.units import voxel_size_text
from ..io.voxel_sizes import UNKNOWN_NOTE
from .registry import check_threshold, command, length_nm, overwrite_arg


@command("track")
def _track(sub):
    p = sub.add_parser(
        "track", help="follow each object between two scans of one sample (before and after a thermal cycle)",
        description="Register the AFTER scan to the BEFORE scan (rigid, optionally similarity), match their "
                    "objects (one to one, merges, splits) and measure each object's change. Writes matches.csv, "
                    "summary.json, transform.json, figures, track.html and the AFTER labels numbered by match ID "
                    "into OUT. Without --before-labels/--after-labels both images are segmented with one model.")
    p.add_argument("before", help="BEFORE gray-value image")
    p.add_argument("after", help="AFTER gray-value image")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--before-labels", metavar="FILE",
                   help="BEFORE objects: a label image (object IDs, uint16 or wider; each ID one object), a mask "
                        "(0/1 of any type) or a probability map (whole values 0-255 of any type), told apart "
                        "from the values as `tomoseg analyze` does (--read-as) and said on stderr")
    p.add_argument("--after-labels", metavar="FILE", help="AFTER objects, as --before-labels")
    p.add_argument("--read-as", choices=["auto", "probability", "mask"], default="auto",
                   help="how to read --before-labels and --after-labels: probability = a 0-255 map, object where "
                        "value > --threshold; mask = object where value is not 0 (objects found by "
                        "connectivity); auto (default) decides from the values (docs/analysis.md)")
    p.add_argument("--transform", metavar="JSON",
                   help="JSON with a 4x4 'matrix' (BEFORE voxel -> AFTER voxel): skip registration")
    p.add_argument("--similarity", action="store_true", help="also estimate a scale factor")
    p.add_argument("--max-rotation", type=float, default=180.0, metavar="DEG",
                   help="largest rotation about the pillar axis to search, degrees (default 180: any)")
    p.add_argument("--no-refine", action="store_true",
                   help="keep the image-based transform (no refit on matched object centroids)")
    p.add_argument("--tolerance-nm", type=float, metavar="NM",
                   help="centroid distance for matches without overlap, nm, measured in the AFTER scan "
                        "(default 3 voxels of the coarser scan)")
    p.add_argument("--min-voxels", type=int, default=8, help="smaller objects are flagged 'small' (default 8)")
    p.add_argument("--threshold", type=int, default=127,
                   help="probability maps: object where value > this (0-254; default 127)")
    p.add_argument("--model", help="model for segmenting images without labels: a file, or a shipped model's "
                   "name (default, v2, v1); default: the shipped default")
    p.add_argument("--truth", metavar="JSON",
                   help="a phantom pair's truth JSON (phantom --pair-truth): score the tracking")
    p.add_argument("--labels-out", default="after_match_ids.tif", metavar="NAME",
                   help="file name in OUT for the AFTER labels numbered by match ID (default after_match_ids.tif)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in OUT: scans too large to segment in memory reuse their "
                        "finished probability maps there and resume a segmentation cut short")
    p.add_argument("--voxel-size", nargs=3, type=length_nm, metavar=("Z", "Y", "X"),
                   help="voxel size in nm (or with a unit: 0.65um) of both scans; overrides the files'. Without it "
                        "each scan is measured with the voxel size its file records")
    overwrite_arg(p)
    p.set_defaults(run=_run_track)


def read_transform(path) -> np.ndarray:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        m = np.asarray(data["matrix"], float)
    except FileNotFoundError:
        raise TomosegError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError):
        raise TomosegError(f"{path}: expected JSON with a 4x4 'matrix' (BEFORE voxel -> AFTER voxel)") from None
    if m.shape in ((4, 4), (3, 4)):  # the right shape: say what else is wrong with it
        if not np.all(np.isfinite(m)):
            raise TomosegError(f"{path}: 'matrix' holds NaN or infinite values; give finite numbers "
                               "(BEFORE voxel -> AFTER voxel)")
        det = float(np.linalg.det(m[:3, :3]))
        if abs(det) < 1e-6:
            raise TomosegError(f"{path}: 'matrix' is not invertible (determinant of its 3x3 part {det:.3g}); "
                               "a rigid transform has a rotation there (determinant 1)")
    return m


def _run_track(args) -> int:
    import contextlib

    with contextlib.ExitStack() as opened:  # the truth's instance images, opened once, closed at the end
        return _track_files(args, opened)


def _track_files(args, opened) -> int:
    """``tomoseg track``; files it opens for the whole run (the truth's instance images) go on ``opened``."""
    from ..io import open_volume
    from ..progress import progress_while
    from ..track import track
    from ..track.registration import RegistrationError
    from . import progress_enabled

    out = check_result_folder(args.out, overwrite=args.overwrite, resume="track" if args.resume else None)
    if (args.before_labels is None) != (args.after_labels is None):
        raise TomosegError("give --before-labels and --after-labels together, or neither (then both images are "
                           "segmented with the same model)")
    # one image as both scans is fine with two label files (two segmentations of one scan compared); one label
    # file as both, or one image as both to be segmented twice by one model, compares a result with itself: said
    # (a check of the tool on known input does it on purpose)
    pairs = [(args.before_labels, args.after_labels, "--before-labels and --after-labels")]
    if args.before_labels is None:
        pairs.append((args.before, args.after, "BEFORE and AFTER"))
    for first, second, names in pairs:
        if first is not None and second is not None and _same_file(first, second):
            warn(f"{first} is given as both {names}: both scans get the same objects, so the links compare a "
                 "result with itself and say nothing of the sample; give the files of the two scans (before and after "
                 "the treatment) to follow the objects")
    if args.min_voxels < 1:
        raise TomosegError(f"--min-voxels {args.min_voxels}: give at least 1")
    if args.tolerance_nm is not None and not (np.isfinite(args.tolerance_nm) and args.tolerance_nm > 0):
        raise TomosegError(f"--tolerance-nm {args.tolerance_nm:g}: give a positive distance in nm")
    if not 0 <= args.max_rotation <= 180:
        raise TomosegError(f"--max-rotation {args.max_rotation:g}: give degrees from 0 to 180 (180: any rotation)")
    check_threshold(args.threshold)
    transform = read_transform(args.transform) if args.transform else None
    truth = _read_truth(args.truth) if args.truth else None
    if truth is not None:  # each instance image opened once: checked before the work, read for the scores
        truth["instance_volumes"] = {scan: opened.enter_context(open_volume(truth[f"{scan}_instances"]))
                                     for scan in ("before", "after")
                                     if truth.get(f"{scan}_instances") and Path(truth[f"{scan}_instances"]).exists()}
    # --voxel-size given: each file's own size, where it records another, is said (review U1)
    vb, va = open_volume(args.before, voxel_size=args.voxel_size), open_volume(args.after, voxel_size=args.voxel_size)
    vs = tuple(args.voxel_size) if args.voxel_size else (vb.voxel_size or va.voxel_size)
    vs_a = tuple(args.voxel_size) if args.voxel_size else (va.voxel_size or vb.voxel_size)
    if vs and vs_a and not np.allclose(vs, vs_a, rtol=1e-6):  # each scan measured with its own
        sizes = [voxel_size_text(size) for size in (vs, vs_a)]
        note(f"{args.before} has voxels of {sizes[0]}, {args.after} of {sizes[1]}: each "
             "scan is measured with its own; the transform's scale (estimated: --similarity) includes their ratio")
    _note_assumed_voxel_size(args, vb, va, vs)
    if vs is None:
        note(UNKNOWN_NOTE)
    labels = []
    for name, path, img, img_path in (("--before-labels", args.before_labels, vb, args.before),
                                      ("--after-labels", args.after_labels, va, args.after)):
        if path:
            labels.append(open_volume(path))
            _check_labels(labels[-1], path, name, img, img_path, args.read_as)
    _check_before_work(args, transform, truth, vb, va)
    if labels and args.model:
        note(f"--model {args.model} is not used: the labels are given, so nothing is segmented")
    _check_track_outputs(args, out, truth, segmenting=not labels, shape=tuple(va.shape))
    options = _options(args)
    if not labels and max(vb.size, va.size) > options.in_memory_voxels:
        labels = _segment_scans(args, out, (vs, vs_a))  # too large to segment in memory: probability maps in OUT
    estimated = transform is None
    matchings = 2 if estimated and options.refine_on_objects else 1  # a second one after the refit on objects
    work = (vb.size + va.size if estimated else 0) + vb.size + va.size + matchings * va.size  # register, label, match
    with progress_while(progress_enabled(args), work, desc="track") as bar:
        try:
            result = track(vb, va, before_labels=labels[0] if labels else None,
                           after_labels=labels[1] if labels else None, voxel_size=vs, after_voxel_size=vs_a,
                           transform=transform,
                           model=args.model, options=options, progress=bar)
        except RegistrationError as exc:  # name the scans
            raise TomosegError(f"{args.before} -> {args.after}: {exc}") from None
    if args.before_labels:  # how each label file was read, as analyze says it
        from ..objects.labelled import label_note

        for path, option, scan in ((args.before_labels, "--before-labels", result.scans[0]),
                                   (args.after_labels, "--after-labels", result.scans[1])):
            note(f"{path} ({option}): {label_note(scan.reading, args.threshold)}")
    if labels and not args.before_labels:  # segmented by segment into OUT: its records name the model (S5)
        from ..io.segment_record import segmentation_of

        maps = {scan: segmentation_of(out / name) for scan, name in zip(("before", "after"), PROBABILITY_MAPS)}
        result.summary["segmentation"] = {"how": f"both scans segmented by tomoseg segment into {out}",
                                          "model": (maps["before"] or {}).get("model"),
                                          "threshold": args.threshold, "maps": maps}
    try:
        return _finish_track(args, out, result, truth, vb, va, (vs, vs_a), labels)
    finally:
        result.discard()


def _same_file(first, second) -> bool:
    """Whether two volume arguments name one volume (one file, or one dataset of one file; links followed)."""
    from ..io import split_dataset

    (f1, d1), (f2, d2) = split_dataset(first), split_dataset(second)
    if (d1 or "").strip("/") != (d2 or "").strip("/"):
        return False
    try:
        return os.path.samefile(f1, f2)
    except OSError:  # a missing file: said where it is opened
        return os.path.abspath(f1) == os.path.abspath(f2)


def _note_assumed_voxel_size(args, before, after, vs) -> None:
    """Where only one scan's file records a voxel size (and --voxel-size is not given), say that the other scan
    is taken to have it too."""
    if args.voxel_size or not vs or bool(before.voxel_size) == bool(after.voxel_size):
        return
    known, unknown = (args.before, args.after) if before.voxel_size else (args.after, args.before)
    note(f"{unknown} records no voxel size: using {known}'s {voxel_size_text(vs)} for both scans; pass "
         "--voxel-size Z Y X to confirm (and --similarity if the magnification changed)")


def _check_labels(volume, path, option: str, image, image_path, read: str) -> None:
    """A label volume of the wrong shape, or one ``analyze`` would refuse to read (fractions, negative values,
    a gray-value image, object IDs stored as uint8: :func:`~tomoseg.objects.reading.read_as`), named with its
    option, before any work."""
    from ..objects.reading import read_as

    if tuple(volume.shape) != tuple(image.shape):
        raise TomosegError(f"{path} ({option}) has shape {tuple(volume.shape)}, its image {image_path} "
                           f"{tuple(image.shape)}; they must match voxel for voxel")
    read_as(volume, read, where=f"{path} ({option})", command="track")  # raises its refusal


def _check_before_work(args, transform, truth, before, after) -> None:
    """The given transform and truth against the scans, before the registration and labelling."""
    from ..track.registration import given_transform, overlap_fraction
    from ..track.tracking import MIN_OVERLAP

    if transform is not None:
        try:
            m = given_transform(transform, before.shape).matrix
        except TomosegError as exc:
            raise TomosegError(f"{args.transform}: {exc}") from None
        inside = overlap_fraction(m, before.shape, after.shape)
        if inside < MIN_OVERLAP:
            back = overlap_fraction(np.linalg.inv(m), before.shape, after.shape)
            raise TomosegError(
                f"{args.transform}: the transform maps the BEFORE scan (almost) entirely outside the AFTER scan's "
                f"field of view ({inside:.0%} of it inside); is the translation in voxels (not nm), and the "
                "matrix BEFORE voxel -> AFTER voxel?"
                + (f" (its inverse would put {back:.0%} inside: is it AFTER -> BEFORE?)" if back >= 0.5 else ""))
    if truth is not None:
        for scan, image in (("before", before), ("after", after)):
            ids = truth.get(f"{scan}_instances")
            if scan in truth["instance_volumes"]:
                shape = tuple(truth["instance_volumes"][scan].shape)
                if shape != tuple(image.shape):
                    raise TomosegError(f"{args.truth}: its {scan.upper()} instance image {ids} is "
                                       f"{'x'.join(map(str, shape))}, the scans "
                                       f"{'x'.join(map(str, image.shape))}; give the truth of this pair")
        from ..inference.fingerprint import content_hash

        for scan, image, path in (("before", before, args.before), ("after", after, args.after)):
            known = truth.get(f"{scan}_image_sha256")
            if known and content_hash(image) != known:
                raise TomosegError(f"{args.truth}: describes another pair of scans: {path} (the {scan.upper()} "
                                   "scan) is not the image it was written with; give the truth of this pair")


PROBABILITY_MAPS = ("before_probability.zarr", "after_probability.zarr")  # scans segmented into OUT


def _check_track_outputs(args, out: Path, truth, *, segmenting: bool, shape) -> None:
    """Before the registration: --labels-out is a plain file name in OUT of a format that holds the match IDs,
    not one of track's own files, and replaceable; no file written into OUT is an input of this run."""
    from ..io import check_output_format, split_dataset
    from ..io.output_guard import FOLDER_MARKER, PROVENANCE_SUFFIX, check_output, check_outputs_apart
    from ..objects.label_image import label_dtype_for
    from ..track.output import WRITTEN

    name = str(args.labels_out)
    file, _ = split_dataset(name)
    if file.is_absolute() or len(file.parts) != 1 or file.name in ("", ".", ".."):
        raise TomosegError(f"--labels-out {name}: give a plain file name (no folder); the labels are written into "
                           f"OUT ({out}), chosen with --out")
    own = (*WRITTEN, FOLDER_MARKER, *PROBABILITY_MAPS)
    if file.name in own or file.name.endswith((".partial", PROVENANCE_SUFFIX)):
        raise TomosegError(f"--labels-out {name}: track writes its own {file.name} into OUT; choose another name, "
                           "e.g. after_match_ids.tif")
    labels_path = str(out / name)
    check_output_format(labels_path, label_dtype_for(labels_path, 0), shape)
    outputs = [("--labels-out", labels_path)] + [(None, out / n) for n in WRITTEN]
    if segmenting:
        outputs += [(None, out / n) for n in PROBABILITY_MAPS]
    truth = truth or {}
    check_outputs_apart(outputs, inputs=[
        (None, args.before), (None, args.after), ("--before-labels", args.before_labels),
        ("--after-labels", args.after_labels), ("--transform", args.transform), ("--truth", args.truth),
        ("--truth's instances", truth.get("before_instances")), ("--truth's instances", truth.get("after_instances"))])
    check_output(labels_path, overwrite=args.overwrite or args.resume)


def _options(args):
    from ..track import MatchOptions, RegistrationOptions, TrackOptions

    return TrackOptions(
        registration=RegistrationOptions(similarity=args.similarity, max_rotation_deg=args.max_rotation),
        matching=MatchOptions(tolerance_nm=args.tolerance_nm, min_voxels=args.min_voxels),
        refine_on_objects=not args.no_refine, threshold=args.threshold, read_as=args.read_as)


def _segment_scans(args, out: Path, sizes) -> list:
    """Scans too large to segment in memory are segmented by ``segment`` (streamed, tiled, on the GPU where
    there is one) into OUT/before_probability.zarr and OUT/after_probability.zarr, kept as results, each with
    its own scan's voxel size (``sizes``: BEFORE's and AFTER's)."""
    from ..inference import SegmentOptions, segment
    from ..io import open_volume
    from . import progress_enabled

    make_result_folder(out, "track", fresh=True, keep=("track",))  # another tool's results go (review D5)
    maps = []
    for scan, path, voxel_size in (("before", args.before, sizes[0]), ("after", args.after, sizes[1])):
        prob = out / f"{scan}_probability.zarr"
        record, stale = _finished_map(prob, path, args.model, args.threshold, voxel_size) if args.resume \
            else (None, [])
        if record is not None:
            print(f"tomoseg: reusing {prob}, segmented {record.get('started', '?')} with model "
                  f"{str((record.get('model') or {}).get('sha256', '?'))[:12]}", file=sys.stderr)
        else:
            if stale:
                note(f"{prob} was segmented with another {', '.join(stale)} than this run's "
                     f"({path}, --model {args.model or 'default'}); segmenting {path} again")
            segment(path, prob, model=args.model,
                    options=SegmentOptions(threshold=args.threshold, voxel_size=voxel_size,
                                           overwrite=args.overwrite or bool(stale), resume=args.resume),
                    progress=progress_enabled(args))
        maps.append(open_volume(prob))
    return maps


def _finished_map(prob: Path, source, model, threshold: int, voxel_size) -> tuple[dict | None, list]:
    """The provenance of a probability map that ``segment`` finished from ``source``'s present content with
    ``model`` and these settings, else None and what differs (empty where there is no finished map)."""
    from ..inference.fingerprint import changes, input_fingerprint
    from ..io import open_volume
    from ..shipped import file_sha256, model_path

    from ..io.output_guard import provenance_path, read_record

    try:
        record = read_record(provenance_path(prob)) or {}
        same = Path(str(record["input"])).resolve() == Path(str(source)).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None, []
    if not (same and prob.exists()):
        return None, []
    differ = changes(record.get("input_content"), input_fingerprint(open_volume(source), source))
    stale = [f"input content ({', '.join(differ)})"] if differ else []
    try:
        sha = file_sha256(model_path(model))
    except OSError:
        sha = None  # segment names the missing model
    if (record.get("model") or {}).get("sha256") != sha:
        stale.append("model")
    if record.get("threshold") != threshold:
        stale.append("threshold")
    saved_vs = record.get("voxel_size_nm")
    if voxel_size and saved_vs and not np.allclose(saved_vs, voxel_size, rtol=1e-6):
        stale.append("voxel size")
    return (None, stale) if stale else (record, [])


def _finish_track(args, out: Path, result, truth, before, after, sizes, labels: list) -> int:
    """Score against a phantom's truth where given, write the results and say what was found (``sizes``: both
    scans' voxel sizes)."""
    vs, vs_a = sizes
    from ..progress import progress_while
    from ..io.volume import origin_of
    from ..track import write_tracking
    from . import progress_enabled

    if truth is not None:
        from ..track.scoring import compare_with_truth
        from ..track.registration import corner_error_vox, rotation_error_deg

        from ..track.scoring import label_map

        maps, unmapped = {}, []
        for k, scan in enumerate(("before", "after")):  # the tool's labels -> the phantom's ids, where named
            if scan in truth["instance_volumes"]:  # opened once, before the work
                table = getattr(result, scan)
                maps[f"{scan}_map"] = label_map(getattr(result, f"{scan}_labels"), truth["instance_volumes"][scan],
                                                voxels=dict(zip(table["label"].tolist(),
                                                                table["volume_vox"].tolist())))
            elif not (args.before_labels and result.scans[k].reading.kind == "labels"):
                # (given label images keep their IDs: the truth's, where they are its instance images)
                unmapped.append(scan)
        scores = {}
        if unmapped:  # the tool numbered the objects itself: its labels say nothing about the truth's ids
            note(f"{args.truth} names no instance image for the {' and '.join(unmapped)} scan, so "
                 "the objects found cannot be matched to the truth's: the transform is scored, the links are not. "
                 "Make the pair with `tomoseg phantom ... --instances ... --pair-instances ...`, or give those "
                 "as the labels.")
        else:
            scores = compare_with_truth(result.matches, truth["matches"], min_voxels=args.min_voxels, **maps)
        m_true = np.asarray(truth["matrix"])
        scores["transform_rotation_error_deg"] = rotation_error_deg(result.registration.matrix, m_true, vs)
        scores["transform_max_error_vox"] = corner_error_vox(result.registration.matrix, m_true, before.shape)
        result.summary["truth"] = scores
    make_result_folder(out, "track", fresh=True, keep=("track",))  # another tool's results go (review D5)
    with progress_while(progress_enabled(args), after.size, desc="match IDs") as bar:
        write_tracking(result, out, shape=after.shape, voxel_size=vs_a, labels_name=args.labels_out,
                       overwrite=args.overwrite or args.resume, image=after, progress=bar,
                       origin=origin_of(after) if vs_a else None, orientation=after.orientation,
                       inputs={"before": str(args.before), "after": str(args.after),
                               "before_labels": args.before_labels, "after_labels": args.after_labels,
                               "transform": args.transform})
    c = result.summary["objects_by_status"]
    r = result.registration
    uncertain = result.summary.get("uncertain_pairs", 0)
    print(f"transform ({r.source}): rotation {r.rotation_angle_deg:.2f} deg, translation "
          f"{', '.join(f'{t:.2f}' for t in r.translation_vox)} voxels (z, y, x); "
          + "; ".join(_count(s, v, uncertain) for s, v in c.items()) + _not_counted(result.matches) + f" -> {out}")
    if result.summary.get("segmentation"):  # objects from the model: the counts' reliability (review S7)
        from ..track.output import SEGMENTED_CAVEAT

        print(f"caution: {SEGMENTED_CAVEAT}")
    if truth is not None:
        s = result.summary["truth"]
        links = (f"recall {s['recall']:.3f}, precision {s['precision']:.3f} ({s['false_links']} false links), "
                 f"status accuracy {s['status_accuracy']:.3f}, " if "recall" in s else "")
        print(f"against the truth: {links}rotation error {s['transform_rotation_error_deg']:.3f} deg, largest "
              f"displacement error {s['transform_max_error_vox']:.3f} voxels")
        if "by_status" in s:
            print("links by status (truth, found with that status, reported): " + "; ".join(
                f"{k} {v['truth']}, {v['recovered']}, {v['predicted']}" for k, v in s["by_status"].items()))
    return 0


def _not_counted(matches: dict) -> str:
    """The stdout line's word on the links left out of its counts (at an edge of a field of view, or below the
    minimum size: hollow in the change map), where there are any: a split cut by the field showed in the map, and
    the line said "split 0"."""
    from ..track.tracking import links_not_counted

    n = links_not_counted(matches)
    return f"; not counted (at an edge or small): {n} link{'s' if n != 1 else ''}" if n else ""


def _count(status: str, counts: dict, uncertain: int = 0) -> str:
    """One status of the stdout line: its events, and for merges and splits the objects on each side (the
    figures' legends give the same numbers, naming the unit: track.tracking.count_label); the persisting pairs
    flagged uncertain among them, where there are any (summary.json's ``uncertain_pairs``)."""
    if status in ("merged", "split"):
        return (f"{status} {counts['events']} ({counts['before_objects']} BEFORE -> {counts['after_objects']} AFTER "
                "objects)")
    if status == "persisting" and uncertain:
        return f"{status} {counts['events']} ({uncertain} flagged uncertain in matches.csv)"
    return f"{status} {counts['events']}"


def _read_truth(path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        matches = {k: np.asarray(v, dtype=object if k in ("status", "change") else None)
                   for k, v in data["matches"].items()}
        folder = Path(path).parent
        return {"matrix": data["matrix"], "matches": matches,
                **{k: str(folder / data[k]) for k in ("before_instances", "after_instances") if data.get(k)},
                **{k: str(data[k]) for k in ("before_image_sha256", "after_image_sha256") if data.get(k)}}
    except FileNotFoundError:
        raise TomosegError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError):
        raise TomosegError(f"{path}: not a phantom pair truth file (tomoseg phantom --pair-truth)") from None


# ------------------------------------------------------------------ phantom --pair
def add_pair_args(p) -> None:
    g = p.add_argument_group("pair", "a second scan of the same pillar after a known motion and known changes")
    g.add_argument("--pair", metavar="AFTER_IMAGE",
                   help="also write the AFTER scan's image here. IMAGE is then the BEFORE scan; with --objects, "
                        "the BEFORE scan's objects table. The pair draws its motion and changes from the same "
                        "seed, so its BEFORE scan differs from the single phantom of that seed (a seed gives "
                        "identical files within each mode)")
    g.add_argument("--pair-labels", metavar="AFTER_LABELS", help="the AFTER scan's labels (uint8, 1 = object)")
    g.add_argument("--pair-instances", metavar="AFTER_INSTANCES", help="the AFTER scan's object ids (uint32)")
    g.add_argument("--pair-truth", metavar="JSON", help="the transform and the exact expected matches")
    g.add_argument("--pair-matches", metavar="CSV",
                   help="the expected matches as a CSV table (group, before_label, after_label, status, change, "
                        "edge, voxels and radii), the same rows as in --pair-truth")
    g.add_argument("--rotation", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="rotation of the sample about z, y, x, degrees (default: random, up to 20 and 2)")
    g.add_argument("--translation", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="translation of the sample, voxels (default: random, up to 6)")


def run_phantom_pair(args, sets: dict, changes=None) -> int:
    """``phantom --pair``: both scans, their truth and records (``changes``: the PairChanges, default ones
    without)."""
    from ..io import write_volume
    from ..synthetic.pair import Motion, make_phantom_pair, motion_record, random_motion

    if not args.pair_labels:
        raise TomosegError("--pair needs --pair-labels AFTER_LABELS too")
    rng = np.random.default_rng(args.seed)
    motion = random_motion(rng)
    if args.rotation or args.translation:
        motion = Motion(rotation_deg=tuple(args.rotation or motion.rotation_deg),
                        translation_vox=tuple(args.translation or motion.translation_vox))
    vs = tuple(args.voxel_size)
    pair = make_phantom_pair(args.shape, rng=rng, motion=motion, changes=changes, preset_name=args.preset,
                             voxel_size=vs, **sets)
    volumes = {"image": (args.image, pair.before["image"]), "labels": (args.labels, pair.before["labels"]),
               "pair": (args.pair, pair.after["image"]), "pair_labels": (args.pair_labels, pair.after["labels"]),
               "instances": (args.instances, pair.before["instances"]),
               "pair_instances": (args.pair_instances, pair.after["instances"])}
    volumes = {what: v for what, v in volumes.items() if v[0]}
    for path, data in volumes.values():
        write_volume(path, data, voxel_size=vs, overwrite=args.overwrite)
    if args.objects or args.pair_matches:
        from ..table import write_csv

        if args.objects:  # the BEFORE scan's objects, as `tomoseg phantom --objects` writes them
            table = dict(pair.before["objects"])
            table["equivalent_radius_nm"] = table["equivalent_radius_vox"] * float(np.cbrt(np.prod(vs)))
            write_csv(table, args.objects, overwrite=args.overwrite)
        if args.pair_matches:
            write_csv(pair.truth, args.pair_matches, overwrite=args.overwrite)
    if args.pair_truth:
        folder = Path(args.pair_truth).resolve().parent

        def rel(p):  # instance files named relative to the truth file, for scoring segmented labels
            return None if p is None else str(Path(os.path.relpath(Path(p).resolve(), folder)))

        from .data import PAIR_TRUTH_TOOL

        from ..inference.fingerprint import content_hash

        record = {"tool": PAIR_TRUTH_TOOL, **motion_record(pair), "voxel_size_nm": list(vs),
                  # which scans this truth describes (a sample of their content): track --truth checks it
                  "before_image_sha256": content_hash(pair.before["image"]),
                  "after_image_sha256": content_hash(pair.after["image"]),
                  "before_instances": rel(args.instances),
                  "after_instances": rel(args.pair_instances),
                  "changes_asked": asdict(pair.changes),  # --pair-remove ... (the matches: what was made)
                  "matches": {k: [v.item() if hasattr(v, "item") else v for v in col]
                              for k, col in pair.truth.items()}}
        tmp = Path(args.pair_truth).with_name(Path(args.pair_truth).name + ".partial")
        tmp.write_text(strict_json(record, indent=1, default=float), encoding="utf-8")
        tmp.replace(args.pair_truth)
    t = pair.truth
    counts = {s: int(len(np.unique(t["group"][t["status"] == s]))) for s in ("persisting", "appeared", "vanished",
                                                                             "merged", "split")}
    from .data import write_phantom_records

    write_phantom_records(args, volumes, pair.config, sets,
                          {"objects": int(len(pair.before["objects"]["label"])), "changes": counts,
                           "changes_asked": asdict(pair.changes), "motion": motion_record(pair)})
    print(f"phantom pair {tuple(args.shape)} seed {args.seed}: "
          f"rotation {tuple(round(a, 2) for a in motion.rotation_deg)}"
          f" deg, translation {tuple(round(a, 2) for a in motion.translation_vox)} voxels; "
          + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" -> {args.image}, {args.pair}")
    return 0
