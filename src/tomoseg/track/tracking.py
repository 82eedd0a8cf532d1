"""``track``: follow each object from a BEFORE scan to an AFTER scan of one sample.

register (images) → label and measure both scans (:mod:`tomoseg.objects`) → carry BEFORE through the
transform and match (:mod:`.matching`) → optionally refit the transform on the matched centroids and match
again → a tidy table of links with the changes, a summary, and the AFTER labels renumbered by match ID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import TomosegError, warn
from ..objects import label_objects
from ..objects.matching import RADIUS_BINS
from ..io.volume import checked_voxel_size, path_of
from ..objects.measure import blank_nm_columns
from .matching import (STATUSES, MatchOptions, _edge_flags, label_rows, links_from, match,  # noqa: F401
                       refine_on_objects, tolerance_nm)
from .registration import (Registration, RegistrationOptions, apply, decompose, given_transform, overlap_fraction,
                           register, reliability_problems)
from ..objects.labelled import IN_MEMORY_VOXELS, label_scan
from ..objects.reading import Reading, check_threshold, read_as

MEASURES = (("volume_vox", "volume_vox"), ("volume_nm3", "volume_nm3"), ("radius_vox", "equivalent_radius_vox"),
            ("radius_nm", "equivalent_radius_nm"), ("sphericity_mesh", "sphericity_mesh"),
            ("sphericity_voxel", "sphericity_voxel"), ("mean_gray", "mean_gray"))
MIN_OVERLAP = 0.05  # a transform that puts less of BEFORE inside AFTER is refused before the labelling
CONFIRMING_PAIRS = 20  # matched objects whose centroids, within 1 voxel RMS, outweigh poor image figures


@dataclass(frozen=True)
class TrackOptions:
    """Settings of :func:`track` (defaults live here and in the two option classes)."""

    registration: RegistrationOptions = field(default_factory=RegistrationOptions)
    matching: MatchOptions = field(default_factory=MatchOptions)
    refine_on_objects: bool = True   # refit the transform on persisting objects' centroids, then match again
    threshold: int = 127             # probability maps: object where value > threshold (0-255)
    read_as: str = "auto"            # how given labels are read: "auto" (analyze's rule), "probability", "mask"
    connectivity: int = 26
    in_memory_voxels: int = IN_MEMORY_VOXELS  # larger scans are labelled, measured and matched chunk by chunk
    chunks: tuple = (128, 128, 128)  # of the labels kept on disk for larger scans

    def __post_init__(self):
        check_threshold(self.threshold)


@dataclass
class Tracking:
    """What :func:`track` found: ``matches`` (one row per link), ``summary``, ``registration``, the object
    tables of both scans, and the label volumes the tables describe (arrays, or for scans larger than
    ``TrackOptions.in_memory_voxels`` labels on disk until :meth:`discard`).

    ``match_id_lookup`` maps an AFTER label to its match ID; :attr:`after_match_ids` is the AFTER label image
    so mapped, in memory (:func:`~tomoseg.track.write_tracking` writes it block by block)."""

    matches: dict
    summary: dict
    registration: Registration
    before: dict
    after: dict
    seconds: dict = field(default_factory=dict)
    before_labels: object = field(default=None, repr=False)
    after_labels: object = field(default=None, repr=False)
    scans: tuple = field(default=(), repr=False)

    @property
    def match_id_lookup(self) -> np.ndarray:
        top = int(self.after["label"].max(initial=0))
        return match_id_lookup(self.matches, top)

    @property
    def after_match_ids(self) -> np.ndarray:
        """The AFTER labels with each object's match ID (uint32; 0 stays background), in memory."""
        return self.match_id_lookup[np.asarray(self.after_labels[:, :, :])]

    def discard(self) -> None:
        """Remove the labels kept on disk for a scan larger than memory (after writing the outputs)."""
        for scan in self.scans:
            scan.discard()


def _whole(volume) -> np.ndarray:
    return volume if isinstance(volume, np.ndarray) else volume[:, :, :]


def _scaled_voxels(vs, vs_a, options: TrackOptions) -> TrackOptions:
    """Scans of different voxel sizes: one ratio along z, y and x (a change of magnification), which the
    transform holds as a scale: the registration then estimates one."""
    if vs_a is None or (vs is not None and np.allclose(vs_a, vs, rtol=1e-6)):
        return options
    if vs is None:
        raise TomosegError("after_voxel_size given without voxel_size (the BEFORE scan's): give both")
    ratio = np.asarray(vs_a) / np.asarray(vs)
    if not np.allclose(ratio, ratio.mean(), rtol=0.01):
        raise TomosegError(f"the AFTER scan's voxels are {' x '.join(f'{r:.3f}' for r in ratio)} times the BEFORE "
                           "scan's along z, y, x: not one change of magnification, which the transform models as a "
                           "scale; resample one scan to the other's voxel size first")
    return replace(options, registration=replace(options.registration, similarity=True))


def segment_labels(image: np.ndarray, *, model=None, threshold: int = 127, connectivity: int = 26) -> np.ndarray:
    """Segment an image with the model (:func:`tomoseg.inference.predict`) and label its objects."""
    from ..inference import predict
    from ..inference.engine import to_uint8

    prob = to_uint8(predict(np.asarray(image), model))
    return label_objects(prob > threshold, connectivity=connectivity)[0]


def track(before, after, *, before_labels=None, after_labels=None, voxel_size=None, after_voxel_size=None,
          transform=None, model=None, options: TrackOptions | None = None, workdir=None,
          progress=None) -> Tracking:
    """Follow every object from the BEFORE scan to the AFTER scan.

    Parameters
    ----------
    before, after : ndarray or Volume (z, y, x)
        Gray-value images of the two scans.
    before_labels, after_labels : ndarray or Volume, optional
        Label images, masks or probability maps, read as ``analyze`` reads a volume
        (:func:`~tomoseg.objects.reading.read_as`, ``options.read_as``), except that a label image keeps its
        IDs; refused before the registration where ``analyze`` refuses them. Without them both images are segmented with the
        same ``model`` (default: the shipped one) and threshold, in memory. Scans larger than
        ``options.in_memory_voxels`` are never read whole: they are labelled, measured and matched chunk by
        chunk, their labels kept in ``workdir`` (default: the temporary folder) until
        :meth:`Tracking.discard`.
    voxel_size : (z, y, x) nm, optional
        Of both scans, or of the BEFORE scan where ``after_voxel_size`` is given. Without it the tables' nm
        columns are empty (NaN), as ``analyze`` leaves them.
    after_voxel_size : (z, y, x) nm, optional
        The AFTER scan's, where it differs (a change of magnification): each scan is measured with its own. The
        ratio must be the same along z, y and x; the transform (BEFORE voxel -> AFTER voxel) then holds it as a
        scale, so the registration estimates one (``similarity``) and its ``scale`` includes the ratio.
    transform : 4 × 4 array, optional
        BEFORE voxel → AFTER voxel; skips the registration.
    options : TrackOptions, optional
    progress : optional
        Given voxels as the work goes (``update(n)``): both scans' as the registration reads them (unless
        ``transform`` is given), each scan's as it is labelled, then the AFTER scan's as it is matched (twice
        where the transform is estimated and refitted on the objects: ``refine_on_objects``).

    Returns
    -------
    Tracking

    Examples
    --------
    >>> from tomoseg.synthetic.pair import make_phantom_pair
    >>> pair = make_phantom_pair((48, 160, 160), rng=0)
    >>> result = track(pair.before["image"], pair.after["image"], before_labels=pair.before["labels"],
    ...                after_labels=pair.after["labels"], voxel_size=(29.33,) * 3)
    >>> sorted(result.summary["objects_by_status"]) == sorted(STATUSES)
    True
    """
    options = options or TrackOptions()
    t = {}
    t0 = time.perf_counter()
    from ..io.volume import check_array

    # arrays, Volumes, Zarr arrays are sliced; a nested list becomes an array; a path, 2D, empty or complex refused
    before, after = check_array(before, "before"), check_array(after, "after")
    before_labels, after_labels = (None if lab is None else check_array(lab, name) for lab, name in
                                   ((before_labels, "before_labels"), (after_labels, "after_labels")))
    shape_b, shape_a = tuple(before.shape), tuple(after.shape)
    for name, img, lab in (("BEFORE", before, before_labels), ("AFTER", after, after_labels)):
        if lab is not None and tuple(np.shape(lab)) != tuple(img.shape):
            raise TomosegError(f"{name} labels {tuple(np.shape(lab))} and image {tuple(img.shape)} differ in shape")
    if (before_labels is None) != (after_labels is None):
        raise TomosegError("give labels for both scans, or for neither (then both are segmented with one model)")
    if before_labels is None:
        largest = max(int(np.prod(shape_b, dtype=np.int64)), int(np.prod(shape_a, dtype=np.int64)))
        if largest > options.in_memory_voxels:
            raise TomosegError(f"a scan of {largest} voxels is too large to segment in memory: segment both scans "
                               "first (tomoseg.segment, or `tomoseg track` does it) and give the probability maps "
                               "as before_labels and after_labels")
    readings = [None, None]
    if before_labels is not None:  # how each is read, judged (and refused) before the registration
        readings = [read_as(lab, options.read_as, where=path_of(lab) or f"the {name} labels",
                            command="track")
                    for name, lab in (("BEFORE", before_labels), ("AFTER", after_labels))]
    vs = checked_voxel_size(voxel_size)
    vs_a = checked_voxel_size(after_voxel_size, "after_voxel_size") if after_voxel_size is not None else vs
    options = _scaled_voxels(vs, vs_a, options)
    vs1 = vs or (1.0, 1.0, 1.0)
    vs1_a = vs_a or vs1
    if transform is None:
        reg = register(before, after, voxel_size=vs1, after_voxel_size=vs_a, options=options.registration,
                       progress=progress)
    else:
        reg = given_transform(transform, shape_b, voxel_size=vs1)
    inside = overlap_fraction(reg.matrix, shape_b, shape_a)
    if inside < MIN_OVERLAP:
        raise TomosegError(f"the {'given' if transform is not None else 'estimated'} transform maps the BEFORE scan "
                           f"(almost) entirely outside the AFTER scan's field of view ({inside:.0%} of it inside); "
                           + ("is the translation in voxels (not nm), and the matrix BEFORE voxel -> AFTER voxel?"
                              if transform is not None else
                              "the registration failed: check that the scans overlap, or give the transform"))
    t["registration_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    if before_labels is None:
        before_labels = segment_labels(_whole(before), model=model, threshold=options.threshold,
                                       connectivity=options.connectivity)
        after_labels = segment_labels(_whole(after), model=model, threshold=options.threshold,
                                      connectivity=options.connectivity)
        readings = [Reading("labels", "uint32", verified=True, where=f"the {name} objects found", command="track")
                    for name in ("BEFORE", "AFTER")]  # the model's objects, numbered: their IDs as they are
        from ..io.segment_record import model_record

        # the model that made the objects (review S5: a run that fits in memory writes no map nor its record)
        segmented = {"how": "both scans segmented in memory (tomoseg.inference.predict, its default "
                            "tiling), the maps not written", "model": model_record(model), "threshold": options.threshold}
    else:
        segmented = None
    scans = []
    try:
        # measured in 1 nm voxels where the size is unknown (the relative changes need them); blanked below
        for image, labels, reading, size in ((before, before_labels, readings[0], vs1),
                                             (after, after_labels, readings[1], vs1_a)):
            scans.append(label_scan(image, labels, reading=reading, voxel_size=size, threshold=options.threshold,
                                    connectivity=options.connectivity, in_memory_voxels=options.in_memory_voxels,
                                    chunks=options.chunks, workdir=workdir, progress=progress))
        _check_some_objects(scans, (before, after), segmented is not None, options.threshold)
        (tb, lb), (ta, la) = ((s.table, s.labels) for s in scans)
        t["labels_and_measures_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        matrix = reg.matrix
        # the label files against the transform, which never saw them (estimated from the images, or given)
        swap_said = segmented is None and _said_swapped((before, after), (tb, ta), reg, voxel_size=vs1,
                                                        after_voxel_size=vs1_a, options=options)
        links, _ = match(lb, la, tb, ta, matrix, voxel_size=vs1, after_voxel_size=vs1_a, options=options.matching,
                         progress=progress)
        refit = {}
        if options.refine_on_objects and reg.source == "estimated":
            matrix, refit = refine_on_objects(tb, ta, links, matrix, voxel_size=vs1, after_voxel_size=vs1_a,
                                              similarity=options.registration.similarity,
                                              min_voxels=options.matching.min_voxels)
            if refit.get("used", 0):
                links, _ = match(lb, la, tb, ta, matrix, voxel_size=vs1, after_voxel_size=vs1_a,
                                 options=options.matching, progress=progress)
                image_matrix = reg.matrix
                parts = decompose(matrix, shape_b, vs1)
                reg.coarse["image_matrix"] = image_matrix.tolist()
                reg.matrix = matrix
                reg.rotation_deg, reg.rotation_angle_deg = parts["rotation_deg"], parts["rotation_angle_deg"]
                reg.translation_vox, reg.scale = parts["translation_vox"], parts["scale"]
                reg.source = "estimated, refined on objects"
            elif progress is not None:  # the second matching was not needed: its share of the work is done
                progress.update(int(np.prod(shape_a, dtype=np.int64)))
        reg.coarse["objects_refit"] = refit
        if reg.source.startswith("estimated"):
            problems = reliability_problems(reg)
            # the refit on objects confirms the transform where many matched centroids agree with it closely
            confirmed = refit.get("used", 0) >= CONFIRMING_PAIRS and refit.get("residual_vox", np.inf) <= 1.0
            if problems and not confirmed:
                warn("registration unreliable: " + "; ".join(problems) + ". The links and changes may be wrong: "
                     "check that the two scans show the same part of the sample (field of view, cropping), or "
                     "give the transform (--transform JSON)")
        t["matching_s"] = time.perf_counter() - t2
        overlap = objects_in_overlap(tb, ta, matrix, shape_b, shape_a)
        if few_objects_in_overlap(overlap):
            warn(overlap_problem(overlap, given=reg.source == "given"))
        edge_b, edge_a = _edge_flags(tb, ta, matrix, shape_b, shape_a, options.matching.border_margin_vox, vs1)
        table = link_table(links, tb, ta, edge_b, edge_a, matrix, voxel_size=vs1, after_voxel_size=vs_a,
                           min_voxels=options.matching.min_voxels)
        if reg.source == "given" and not swap_said:  # (swapped labels look like an inverted transform)
            problems = given_transform_problems(table, tb, ta, matrix, shape_a, voxel_size=vs1,
                                                after_voxel_size=vs1_a, options=options.matching)
            if problems:
                warn("the given transform disagrees with the objects: " + "; ".join(problems) + ". The links and "
                     "changes may be wrong: check the --transform file (BEFORE voxel -> AFTER voxel, translation in "
                     "voxels), or leave it out to estimate the transform")
        if vs is None:  # nm columns computed with 1 nm voxels: empty, as analyze writes them
            table, tb, ta = (blank_nm_columns(t) for t in (table, tb, ta))
        summary = summarize_tracking(table, reg, voxel_size=vs)
        if segmented is not None:
            summary["segmentation"] = segmented
        summary["after_voxel_size_nm"] = list(vs_a) if vs_a else None
        # the volume centre's shift in nm (review U6: only in voxels, which on anisotropic voxels is no distance)
        summary["transform"]["translation_nm"] = translation_nm(matrix, shape_b, vs, vs_a) if vs else None
        # the centroid distance for pairs without overlap: given, or 3 voxels of the coarser scan
        summary["tolerance_nm"] = tolerance_nm(options.matching, vs1, vs1_a) if vs else None
        # beyond it, the share of the smaller object an overlap must hold to pair (and of a merged or split piece)
        summary["min_overlap"] = options.matching.min_overlap
    except BaseException:
        for scan in scans:
            scan.discard()
        raise
    t["total_s"] = time.perf_counter() - t0
    summary["seconds"] = t
    return Tracking(matches=table, summary=summary, registration=reg, before=tb, after=ta, seconds=t,
                    before_labels=lb, after_labels=la, scans=tuple(scans))


def _check_some_objects(scans, images, segmented: bool, threshold: int) -> None:
    """Two scans without objects are refused: there is nothing to follow. One scan without objects is warned of:
    every object of the other is reported vanished (or appeared), which can be the sample's truth (precipitates
    dissolved by a solution treatment, or formed by ageing) but is more often a wrong file, threshold or reading."""
    empty = [(name, scan, image) for name, scan, image in zip(("BEFORE", "AFTER"), scans, images)
             if not len(scan.table["label"])]
    if not empty:
        return

    def what(name, scan, image) -> str:
        if segmented:
            return f"the model found no objects in the {name} scan ({path_of(image) or 'the image'})"
        return f"{scan.reading.where}: holds no objects ({scan.reading.note(threshold)})"

    check = ("check the scan and --model/--threshold, or give --before-labels and --after-labels" if segmented else
             "check that each file holds its scan's objects, and --threshold or --read-as for a probability map")
    if len(empty) == 2:
        raise TomosegError(f"{what(*empty[0])}, and {what(*empty[1])}: nothing to follow between the scans; {check}")
    name = empty[0][0]
    other, fate = ("AFTER", "appeared") if name == "BEFORE" else ("BEFORE", "vanished")
    warn(f"{what(*empty[0])}: every {other} object is reported as {fate}. If the treatment did not truly "
         f"{'form them all' if fate == 'appeared' else 'dissolve them all'}, {check}")


OVERLAP_MIN_SHARE = 0.05  # under this share of a scan's objects in the fields' overlap, the run is warned of


def objects_in_overlap(before: dict, after: dict, matrix, shape_before, shape_after) -> dict:
    """How many of each scan's objects lie where the other scan sees them: ``{"before": (inside, total),
    "after": (inside, total)}``, a BEFORE object inside when the transform carries its centroid into the AFTER
    field of view, an AFTER object when the inverse carries its centroid into the BEFORE field of view. Only the
    objects inside can persist; the others are reported vanished (appeared) whatever the sample did."""
    m = np.asarray(matrix, float)
    counts = {}
    for scan, table, transform, shape in (("before", before, m, shape_after),
                                          ("after", after, np.linalg.inv(m), shape_before)):
        q = apply(transform, np.stack([np.asarray(table[f"centroid_{a}"], float) for a in "zyx"], axis=1)
                  .reshape(-1, 3))
        inside = np.all((q >= -0.5) & (q <= np.asarray(shape, float) - 0.5), axis=1)
        counts[scan] = (int(inside.sum()), int(len(q)))
    return counts


def few_objects_in_overlap(counts: dict, share: float = OVERLAP_MIN_SHARE) -> bool:
    """Whether the overlap of the fields holds none, or under ``share``, of a scan's objects (a scan without
    objects is left out: :func:`_check_some_objects` speaks of it)."""
    return any(n and k < share * n for k, n in counts.values())


def overlap_problem(counts: dict, *, given: bool) -> str:
    """The warning of :func:`few_objects_in_overlap`, naming both scans' shares (:func:`objects_in_overlap`)."""
    def part(scan):
        k, n = counts[scan]
        return f"{k:,} of the {n:,} {scan.upper()} objects ({k / n:.0%})" if n else f"no {scan.upper()} object"

    return (f"the part of the sample both scans show holds {part('before')} and {part('after')}, where the "
            f"{'given' if given else 'estimated'} transform puts them: the others are reported vanished or "
            "appeared because the other scan does not show them, not because the sample changed. Check that the two "
            "scans show the same region of the sample (a crop, another part of it) and "
            + ("the --transform file (BEFORE voxel -> AFTER voxel, translation in voxels)" if given else
               "the registration (or give the transform: --transform JSON)"))


def link_table(links, before: dict, after: dict, edge_b, edge_a, matrix, *, voxel_size, after_voxel_size=None,
               min_voxels: int = 8) -> dict:
    """One row per link: ids, status, flags, both scans' measures, and the changes (AFTER − BEFORE).

    A persisting pair is one row, a merge one row per BEFORE object (beside the first AFTER object), a split one
    row per AFTER piece; the rows of a link share its ``match_id``. A merge whose AFTER object also split off
    pieces (many to many) has its merge rows and a "split" row for each further piece (beside the first BEFORE
    object), so every object of both scans is in the table. ``links``: :class:`~.matching.Links` (or tuples,
    see :func:`~.matching.links_from`). Built column by column, NumPy over all rows. ``displacement_nm`` is
    measured in the AFTER scan (``after_voxel_size``, default ``voxel_size``); ``delta_radius_vox`` is
    ``delta_radius_nm`` in BEFORE voxels.
    """
    vs = np.asarray(voxel_size, float)
    links = links_from(links)
    code = {name: k for k, name in enumerate(STATUSES)}
    nb, na = links.before_count, links.after_count
    first_b, first_a = links.first("before"), links.first("after")
    # links in order of their lowest BEFORE label (none: last), then lowest AFTER label
    low_b = _lowest(links.before, links.before_start, none=1 << 40)
    low_a = _lowest(links.after, links.after_start, none=0)
    match_id = np.empty(len(links), np.int64)
    match_id[np.lexsort((low_a, low_b))] = np.arange(1, len(links) + 1)
    # rows: one per BEFORE object of a persisting, merged or vanished link (beside its first AFTER object), one
    # per AFTER object of a split or appeared link (beside its first BEFORE object), and one per further AFTER
    # object of a merge ("split": many to many)
    by_b = np.isin(links.status, [code["persisting"], code["merged"], code["vanished"]])
    by_a = ~by_b
    extra = links.status == code["merged"]
    link_of_b = np.repeat(np.arange(len(links)), nb)
    link_of_a = np.repeat(np.arange(len(links)), na)
    pos_a = np.arange(len(links.after)) - links.after_start[:-1][link_of_a]  # place within its link
    rows_b = by_b[link_of_b]
    rows_a = by_a[link_of_a]
    rows_x = extra[link_of_a] & (pos_a > 0)
    link = np.concatenate([link_of_b[rows_b], link_of_a[rows_a], link_of_a[rows_x]])
    bl = np.concatenate([links.before[rows_b], first_b[link_of_a[rows_a]], first_b[link_of_a[rows_x]]])
    al = np.concatenate([first_a[link_of_b[rows_b]], links.after[rows_a], links.after[rows_x]])
    row_status = np.concatenate([links.status[link_of_b[rows_b]], links.status[link_of_a[rows_a]],
                                 np.full(int(rows_x.sum()), code["split"], np.uint8)])
    order = np.lexsort((np.arange(len(link)), match_id[link]))  # a link's rows together, in the order above
    link, bl, al, row_status = link[order], bl[order], al[order], row_status[order]
    mid = match_id[link]
    n = len(mid)
    table: dict = {"match_id": mid, "status": np.asarray(STATUSES, dtype=object)[row_status],
                   "before_label": bl, "after_label": al}
    ib = label_rows(before["label"], table["before_label"])  # row of each label in its scan's table, -1 for none
    ia = label_rows(after["label"], table["after_label"])
    hb, ha = ib >= 0, ia >= 0
    # a link is at the edge (or small) if any of its objects is, in either scan
    flags = {}
    for name, per_b, per_a in (("edge", np.asarray(edge_b, bool), np.asarray(edge_a, bool)),
                               ("small", np.asarray(before["volume_vox"]) < min_voxels,
                                np.asarray(after["volume_vox"]) < min_voxels)):
        row = np.zeros(n, bool)
        row[hb] |= per_b[ib[hb]]
        row[ha] |= per_a[ia[ha]]
        per_link = np.bincount(table["match_id"], weights=row, minlength=len(links) + 1) > 0
        flags[name] = per_link[table["match_id"]].astype(np.int64)
    table.update(flags)
    table["group_before"] = nb[link]
    table["group_after"] = na[link]

    def gather(scan: dict, rows: np.ndarray, column: str) -> np.ndarray:
        out = np.full(n, np.nan)
        have = rows >= 0
        out[have] = np.asarray(scan[column], float)[rows[have]]
        return out

    for name, src in MEASURES:
        table[f"before_{name}"] = gather(before, ib, src)
        table[f"after_{name}"] = gather(after, ia, src)
    pb = np.stack([gather(before, ib, f"centroid_{x}") for x in "zyx"], axis=1).reshape(n, 3)
    pa = np.stack([gather(after, ia, f"centroid_{x}") for x in "zyx"], axis=1).reshape(n, 3)
    for k, x in enumerate("zyx"):
        table[f"before_centroid_{x}"] = pb[:, k]
        table[f"after_centroid_{x}"] = pa[:, k]
    both = hb & ha
    table["displacement_nm"] = np.full(n, np.nan)
    if both.any():
        vs_a = np.asarray(after_voxel_size if after_voxel_size is not None else vs, float)
        table["displacement_nm"][both] = np.linalg.norm((pa[both] - apply(matrix, pb[both])) * vs_a, axis=1)
    table.update(_changes(table, n, vs))
    edge_nm = float(np.cbrt(np.prod(np.asarray(after_voxel_size if after_voxel_size is not None else vs, float))))
    uncertain = uncertain_pairs(table, voxel_edge_nm=edge_nm)
    out = {}
    for key, column in table.items():  # the flag beside edge and small
        out[key] = column
        if key == "small":
            out["uncertain"] = uncertain
    return out


UNCERTAIN_SLACK_VOX = 1.0  # centroid shift allowed beyond the change of radius (registration, digitization)


def uncertain_pairs(table: dict, *, voxel_edge_nm: float) -> np.ndarray:
    """1 for each persisting pair whose centroid, after the transform, lies farther from where the transform puts
    it (``displacement_nm``) than its radius changed (``|delta_radius_nm|``) plus :data:`UNCERTAIN_SLACK_VOX`
    AFTER voxels (``voxel_edge_nm``: their edge, the cube root of their volume), else 0 (int64).

    A ball that grows or shrinks, evenly or on one side only, moves its centroid by at most the change of its
    radius; two objects (one dissolved, a new one formed beside its spot) need not. On 15 phantom pairs of known
    truth (docs/tracking.md) it flagged none of 1,996 true pairs off the edge (3 of 114 at an edge, cut by a field
    of view) and 207 of the 299 false pairs that a new object formed 1.5-3.5 voxels from a dissolved one's spot
    made; one formed closer, or whose radius differs more, cannot be told from one object that changed. Those
    pairs used the phantoms' exact labels: with both scans segmented by the shipped model, 16 of 638 true pairs
    were flagged too (benchmarks/results/track_uncertain.md, where other features were tried and none added)."""
    shift = np.asarray(table["displacement_nm"], float)
    grew = np.abs(np.asarray(table["delta_radius_nm"], float))
    flag = (table["status"] == "persisting") & np.isfinite(shift) & (shift > grew + UNCERTAIN_SLACK_VOX
                                                                       * voxel_edge_nm)
    return flag.astype(np.int64)


GIVEN_MAX_DISPLACEMENT_VOX = 1.5  # median residual of persisting pairs under a given transform (right: ~0.1)
GIVEN_MIN_LINKED = 0.5            # share of BEFORE objects off the edge a right transform links to AFTER ones


def given_transform_problems(table: dict, before: dict, after: dict, matrix, shape_after, *, voxel_size,
                             options: MatchOptions, after_voxel_size=None) -> list[str]:
    """What in the link table says a given transform is wrong (empty when nothing does): the persisting pairs'
    centroids far from where it puts them (at least 3 pairs), or few BEFORE objects linked (at least 6 off the
    edge); with a note where its inverse puts clearly more objects on AFTER objects."""
    vs = np.asarray(voxel_size, float)
    keep = counted(table)
    pers = keep & (table["status"] == "persisting")
    problems = []
    if pers.sum() >= 3:
        vs_a = vs if after_voxel_size is None else np.asarray(after_voxel_size, float)
        off = float(np.median(table["displacement_nm"][pers])) / float(np.cbrt(np.prod(vs_a)))  # AFTER voxels
        if off > GIVEN_MAX_DISPLACEMENT_VOX:
            problems.append(f"the {int(pers.sum())} persisting objects lie a median {off:.1f} voxels from where it "
                            f"puts them (a right transform: under {GIVEN_MAX_DISPLACEMENT_VOX})")
    b = table["before_label"]
    considered = np.unique(b[keep & (b > 0)])
    linked = np.unique(b[keep & (b > 0) & (table["status"] != "vanished")])
    if len(considered) >= 6 and len(linked) < GIVEN_MIN_LINKED * len(considered):
        problems.append(f"only {len(linked)} of {len(considered)} BEFORE objects off the edge are linked to an "
                        "AFTER object")
    if problems:
        from .matching import centroid_hits

        kw = dict(voxel_size=vs, after_voxel_size=after_voxel_size, options=options)
        n, hits = centroid_hits(before, after, matrix, shape_after, **kw)
        n_inv, hits_inv = centroid_hits(before, after, np.linalg.inv(matrix), shape_after, **kw)
        if n_inv and hits_inv >= 3 and hits_inv / n_inv > max(2 * hits / max(n, 1), 0.5):
            problems.append(f"its inverse puts {hits_inv} of {n_inv} BEFORE objects on an AFTER object, {hits} of "
                            f"{n} as given (is it AFTER -> BEFORE?)")
    return problems


SWAP_MIN_OBJECTS = 6   # objects off the border, of at least min_voxels, the swap check needs in each scan
SWAP_MIN_SHARE = 0.5   # share of them that the transform puts on an object of the other scan with labels swapped


def swapped_labels_problem(before: dict, after: dict, matrix, shape_after, *, voxel_size,
                           after_voxel_size=None, options: MatchOptions, given: bool = False,
                           evidence: str = "") -> str:
    """A line saying that the two scans' labels look swapped, or "" where they do not: the transform (estimated
    from the images, which never see the labels, or ``given``) puts at least half of the AFTER table's objects
    on the BEFORE table's (centroids within the tolerance, :func:`~.matching.centroid_hits`) and more than twice
    as many as it puts of the BEFORE table's on the AFTER table's, as given. Only centroids: no image is read.
    (Each table's objects carried with the other scan's voxel size: a swap needs scans of one shape anyway.)
    With centroids alone, swapped labels under a given transform look like right labels under its inverse:
    :func:`_said_swapped` asks the images (``evidence``: what they say, put in the line)."""
    from .matching import centroid_hits

    kw = dict(options=options)
    n, hits = centroid_hits(before, after, matrix, shape_after, voxel_size=voxel_size,
                            after_voxel_size=after_voxel_size, **kw)
    n_sw, hits_sw = centroid_hits(after, before, matrix, shape_after, voxel_size=after_voxel_size or voxel_size,
                                  after_voxel_size=voxel_size, **kw)
    if n_sw < SWAP_MIN_OBJECTS or hits_sw < SWAP_MIN_SHARE * n_sw or hits_sw <= 2 * hits * n_sw / max(n, 1):
        return ""
    transform = "given transform" if given else "transform estimated from the images"
    return (f"the label files look swapped: the {transform} puts {hits} of {n} BEFORE objects on an AFTER object, "
            f"but {hits_sw} of {n_sw} with the two label files exchanged{evidence}. Check that --before-labels holds "
            "the objects of the BEFORE scan and --after-labels those of the AFTER scan (each object dark in its own "
            "scan); as given, the links and changes " + ("are wrong" if given else
                                                         "and the transform refitted on them are wrong"))


SWAP_IMAGE_MARGIN = 0.1  # correlation by which the images favour a given transform over its inverse, or back
SWAP_CROPS = 4           # crops about each label file's largest objects for that comparison


def _said_swapped(images, tables, reg: Registration, *, voxel_size, after_voxel_size, options: TrackOptions) -> bool:
    """Warn where the label files look swapped (:func:`swapped_labels_problem`); True where it warned.

    Under a given transform, centroids cannot tell swapped labels from a transform given AFTER -> BEFORE: the
    images can (crops about the objects, :func:`~.registration.image_agreement`, the transform as given against
    its inverse). Where they favour the inverse, nothing is said here (:func:`given_transform_problems` names the
    inverse); where they do not tell, the warning names both."""
    from .registration import image_agreement

    (before, after), (tb, ta) = images, tables
    given = reg.source == "given"
    kw = dict(voxel_size=voxel_size, after_voxel_size=after_voxel_size, options=options.matching, given=given)
    line = swapped_labels_problem(tb, ta, reg.matrix, tuple(after.shape), **kw)
    if line and given:
        centres = np.concatenate([_largest_centroids(t, SWAP_CROPS) for t in tables])
        crops = dict(size=min(32, options.registration.crop_size), band=options.registration.band)
        as_given = image_agreement(before, after, reg.matrix, centres, **crops)
        inverted = image_agreement(before, after, np.linalg.inv(reg.matrix), centres, **crops)
        figures = f"band-passed correlation of the images {as_given:.2f} as given, {inverted:.2f} inverted"
        if inverted >= as_given + SWAP_IMAGE_MARGIN:
            return False  # the transform is AFTER -> BEFORE, the labels are right: given_transform_problems says it
        line = swapped_labels_problem(tb, ta, reg.matrix, tuple(after.shape), **kw, evidence=(
            f"; the images confirm the transform ({figures})" if as_given >= inverted + SWAP_IMAGE_MARGIN else
            f"; or the --transform file is AFTER -> BEFORE: the images do not tell ({figures})"))
    if line:
        warn(line)
    return bool(line)


def _largest_centroids(table: dict, n: int) -> np.ndarray:
    """The centroids (z, y, x voxels) of a table's ``n`` largest objects off their scan's border."""
    rows = np.flatnonzero(~np.asarray(table["touches_border"], bool))
    rows = rows[np.argsort(-np.asarray(table["volume_vox"])[rows], kind="stable")[:n]]
    return np.stack([np.asarray(table[f"centroid_{a}"], float)[rows] for a in "zyx"], axis=1).reshape(-1, 3)


def _lowest(labels: np.ndarray, start: np.ndarray, *, none: int) -> np.ndarray:
    """The lowest label of each link (``labels[start[k]:start[k + 1]]``), ``none`` where it has none."""
    count = np.diff(start)
    out = np.full(len(count), none, np.int64)
    if len(labels):  # non-empty links' starts rise strictly, and each one's labels end where the next one's begin
        out[count > 0] = np.minimum.reduceat(labels, start[:-1][count > 0])
    return out


def _changes(table: dict, n: int, vs: np.ndarray) -> dict:
    """AFTER − BEFORE for each row: object to object for pairs; merges and splits compare the group's total
    volume (each object counted once) and the radius of a sphere of that volume."""
    d = {k: np.full(n, np.nan) for k in ("delta_volume_nm3", "delta_volume_rel", "delta_radius_nm",
                                         "delta_radius_vox", "delta_sphericity_mesh", "delta_mean_gray")}
    if not n:
        return d
    status = table["status"]
    ids, vb, va = group_totals(table, np.arange(n))
    at = np.searchsorted(ids, table["match_id"])
    vb, va = vb[at], va[at]
    changed = (status != "appeared") & (status != "vanished")
    d["delta_volume_nm3"][changed] = (va - vb)[changed]
    rel = changed & (vb > 0)
    d["delta_volume_rel"][rel] = ((va - vb) / np.where(vb > 0, vb, 1))[rel]
    pers = status == "persisting"
    for key, col in (("delta_radius_nm", "radius_nm"), ("delta_sphericity_mesh", "sphericity_mesh"),
                     ("delta_mean_gray", "mean_gray")):
        d[key][pers] = (table[f"after_{col}"] - table[f"before_{col}"])[pers]
    d["delta_radius_vox"][pers] = d["delta_radius_nm"][pers] / float(np.cbrt(np.prod(vs)))  # in BEFORE voxels
    group = changed & ~pers  # the radius of a sphere of the group's total volume
    rb, ra = (np.cbrt(3 * v / (4 * np.pi)) for v in (vb, va))
    d["delta_radius_nm"][group] = (ra - rb)[group]
    d["delta_radius_vox"][group] = ((ra - rb) / float(np.cbrt(np.prod(vs))))[group]
    return d


def group_totals(table: dict, rows, column: str = "volume_nm3") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The match IDs among some rows of a link table (a boolean mask or indices), and each one's total BEFORE
    and AFTER ``column`` (``volume_nm3``, ``volume_vox``) over its objects in those rows, each object once.
    A total over an object whose value is NaN (nm columns without a voxel size) is NaN, not a sum of zeros; a
    side with no object (a vanished object's AFTER) totals 0."""
    rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, np.int64)
    mids = table["match_id"][rows]
    ids, where = np.unique(mids, return_inverse=True)
    totals = []
    for scan in ("before", "after"):
        labels = table[f"{scan}_label"][rows]
        key = mids * (int(labels.max(initial=0)) + 1) + labels
        _, first = np.unique(key, return_index=True)  # each (match, object) once
        first = first[labels[first] > 0]
        values = np.asarray(table[f"{scan}_{column}"], float)[rows][first]  # NaN stays NaN in its group's sum
        totals.append(np.bincount(where[first], weights=values, minlength=len(ids)))
    return ids, totals[0], totals[1]


def match_id_lookup(table: dict, max_label: int) -> np.ndarray:
    """AFTER label → match ID (uint32; 0 stays background), for labels up to ``max_label``."""
    has = table["after_label"] > 0
    lookup = np.zeros(max(int(max_label), int(table["after_label"].max(initial=0))) + 1, np.uint32)
    lookup[table["after_label"][has]] = table["match_id"][has]
    return lookup


SIZE_CLASSES_VOX = RADIUS_BINS  # equivalent radius, voxels (the evaluation's bins)


def counted(table: dict) -> np.ndarray:
    """The link rows the counts take: off the edge of both fields of view and of at least the minimum size."""
    return (table["edge"] == 0) & (table["small"] == 0)


def links_not_counted(table: dict, status: str | None = None) -> int:
    """The links (of ``status``, else of any) left out of the counts: at an edge or below the minimum size."""
    rows = ~counted(table) if status is None else ~counted(table) & (table["status"] == status)
    return int(len(np.unique(table["match_id"][rows])))


def status_counts(table: dict) -> dict:
    """Per status, over the rows off the edge and of at least the minimum size (those the summary, the stdout
    line and the figures' legends count): ``events`` (links: a pair, an object that appeared or vanished, a
    merged or split group) and the distinct ``before_objects`` and ``after_objects`` in them."""
    keep = counted(table)
    b, a = table["before_label"], table["after_label"]
    counts = {}
    for status in STATUSES:
        rows = keep & (table["status"] == status)
        counts[status] = {"events": int(len(np.unique(table["match_id"][rows]))),
                          "before_objects": int(len(np.unique(b[rows & (b > 0)]))),
                          "after_objects": int(len(np.unique(a[rows & (a > 0)])))}
    return counts


EVENT_NAMES = {"persisting": ("pair", "pairs"), "appeared": ("object", "objects"),
               "vanished": ("object", "objects"), "merged": ("group", "groups"), "split": ("group", "groups")}


def count_label(status: str, counts: dict) -> str:
    """One status's count as the figures' legends say it, naming what is counted (:func:`status_counts`):
    ``persisting: 12 pairs``, ``merged: 1 group (2 → 1 objects)`` (BEFORE → AFTER objects in the groups)."""
    n = counts["events"]
    text = f"{status}: {n:,} {EVENT_NAMES[status][n != 1]}"
    if status in ("merged", "split"):
        text += f" ({counts['before_objects']:,} → {counts['after_objects']:,} objects)"
    return text


def translation_nm(matrix, shape, voxel_size, after_voxel_size=None) -> list[float]:
    """Where the transform moves the centre of the BEFORE volume (``shape``), in nm along z, y, x: its AFTER
    position (AFTER voxels × their size) less its BEFORE position (both from voxel 0)."""
    centre = (np.asarray(shape, float) - 1) / 2
    after = np.asarray(after_voxel_size if after_voxel_size else voxel_size, float)
    return [float(v) for v in apply(matrix, centre) * after - centre * np.asarray(voxel_size, float)]


def summarize_tracking(table: dict, reg: Registration, *, voxel_size=None) -> dict:
    """Counts by status (objects off the edge and of at least ``min_voxels``), the persisting pairs among them
    flagged ``uncertain`` (:func:`uncertain_pairs`), growth by size class, and the persisting objects'
    displacement after the registration (``displacement``: median and largest, nm; None without a voxel size)."""
    keep = counted(table)
    counts = status_counts(table)
    pers = keep & (table["status"] == "persisting")
    classes = []
    r = table["before_radius_vox"]
    for lo, hi in zip(SIZE_CLASSES_VOX[:-1], SIZE_CLASSES_VOX[1:]):
        sel = pers & (r >= lo) & (r < hi)
        dv = table["delta_volume_rel"][sel]
        dr = table["delta_radius_nm"][sel]
        classes.append({"radius_from_vox": lo, "radius_to_vox": hi if np.isfinite(hi) else None,
                        "objects": int(sel.sum()),
                        "mean_delta_radius_nm": float(dr.mean()) if sel.any() else float("nan"),
                        "mean_delta_radius_vox": float(table["delta_radius_vox"][sel].mean()) if sel.any()
                        else float("nan"),
                        "median_delta_volume_rel": float(np.median(dv)) if sel.any() else float("nan"),
                        "grew_10pct": int((dv > 0.1).sum()), "shrank_10pct": int((dv < -0.1).sum())})
    moved = table["displacement_nm"][pers]
    moved = moved[np.isfinite(moved)]
    displacement = ({"objects": int(moved.size), "median_nm": float(np.median(moved)), "max_nm": float(moved.max())}
                    if voxel_size and moved.size else None)
    uncertain = int((pers & (table["uncertain"] == 1)).sum()) if "uncertain" in table else 0
    return {"objects_by_status": counts, "uncertain_pairs": uncertain, "growth_by_size_class": classes,
            "displacement": displacement,
            "excluded_rows": {"edge": int((table["edge"] == 1).sum()), "small": int((table["small"] == 1).sum())},
            "transform": reg.to_dict(), "voxel_size_nm": list(voxel_size) if voxel_size else None}
