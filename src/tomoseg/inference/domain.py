"""Tell the user when the data differ from what the model was trained on (warnings, never errors).

Checked before the heavy work: the voxel size against the model's training
voxel size (and an unknown voxel size). Checked after: the share of voxels
segmented as objects, which a model far from its training data floods.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import note, warn
from ..io.units import voxel_size_text

VOXEL_RATIO = 1.5        # warn beyond this factor between the data's and the model's voxel size
FLOOD_FRACTION = 0.30    # warn when more than this share of the (sampled) voxels are objects
FLOOD_SLICE_FRACTION = 0.40  # ... or of a z slice
FLOOD_SLICE_FLOOR, FLOOD_SLICE_RATIO = 0.15, 5.0  # ... or a slice over 15 % with 5x the median slice's share
FINE_TUNE = ("fine-tune on a few annotated slices of your data (README, 'Fine-tune on your own data'; "
             "tomoseg train --example finetune-default > my.yaml)")


def learned_radius(meta: dict) -> tuple[float, float] | None:
    """The equivalent radii (voxels) of the objects a model learned from phantoms (the generator's range, with
    the model's recipe), or None for a model trained on scans only (their objects' sizes are not recorded)."""
    data = meta
    for key in ("training", "config", "data"):  # a model file's record, which may lack any of them (or be odd)
        data = data.get(key) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data.get("phantoms"):
        return None
    from ..synthetic.config import PhantomConfig

    return PhantomConfig.radius_min, PhantomConfig.radius_max


def voxel_size_warning(data_voxel, model_voxel, where, radius: tuple[float, float] | None = None) -> str | None:
    """The note for an unknown voxel size, or the warning for a voxel size far from the model's, or None.

    The network sees voxels, not nanometres (G6): a scan at 50 µm whose objects are 1-3 voxels wide is in its
    range, and resampling it to the training scans' 29 nm would be absurd. So the message states the model's
    range in voxels (``radius``: :func:`learned_radius`) and in the data's units, and leaves the judgement to
    the size of the user's objects in voxels and the look of the scan."""
    if not model_voxel:
        return None
    try:
        model_voxel = [float(v) for v in model_voxel]
    except (TypeError, ValueError):
        return None
    if len(model_voxel) != 3 or not all(v > 0 for v in model_voxel):
        return None
    learned = (f"objects of about {radius[0]:g}-{radius[1]:g} voxels in radius" if radius
               else "objects of the sizes in voxels of its training data")
    if data_voxel is None:
        return (f"{where}: voxel size unknown: sizes come out in voxels (pass --voxel-size Z Y X to have them in "
                f"nm). The network works in voxels: it finds {learned}, whatever the voxel size")
    ratios = [d / m for d, m in zip(data_voxel, model_voxel)]
    ratio = max(max(r, 1 / r) for r in ratios)
    stretch = _anisotropy(data_voxel) / _anisotropy(model_voxel)
    if ratio <= VOXEL_RATIO and max(stretch, 1 / stretch) <= VOXEL_RATIO:
        return None
    here = ""
    if radius:
        hi_nm = radius[1] * max(data_voxel)
        unit, scale = ("µm", 1e3) if hi_nm >= 1e3 else ("nm", 1.0)
        groups = _axes_by_size(data_voxel)
        spans = [f"{radius[0] * v / scale:.3g}-{radius[1] * v / scale:.3g} {unit}" for v in groups]
        here = (f" (here {spans[0]})" if len(groups) == 1 else
                " (here " + ", ".join(f"{span} along {axes}" for span, axes in zip(spans, groups.values())) + ")")
    return (f"{where}: voxel size {voxel_size_text(data_voxel)} is {_how_far(ratios)} the model's training scans' "
            f"({voxel_size_text(model_voxel)}).{_shape_note(data_voxel, model_voxel)} The network sees voxels, not "
            f"nanometres: it finds {learned}{here}, in scans that look like its training data. If your objects are "
            f"much larger or smaller than that in voxels, resample the volume; if they are found poorly, {FINE_TUNE}")


_AXES = "zyx"


def _anisotropy(voxel_size) -> float:
    return max(voxel_size) / min(voxel_size)


def _axes_by_size(voxel_size) -> dict:
    """{size: 'z' or 'y, x', ...} in the order of the axes, axes of equal size together."""
    groups: dict = {}
    for axis, v in zip(_AXES, voxel_size):
        key = next((k for k in groups if abs(k - v) <= 1e-3 * v), v)
        groups[key] = f"{groups[key]}, {axis}" if key in groups else axis
    return groups


def _times(r: float) -> str:
    """A ratio to 3 significant digits, in whole numbers from 1000 up ("1,705x"; .3g wrote "1.7e+03x" for a lab
    scan's 50 µm voxels)."""
    return f"{r:.3g}" if r < 999.5 else f"{r:,.0f}"


def _how_far(ratios) -> str:
    """'2.05x larger than', '3x smaller than', or per direction where the axes differ (review U4: the direction
    was z's, so a scan 2x coarser across and a bit finer along z was called smaller)."""
    up = [(r, a) for r, a in zip(ratios, _AXES) if r > 1.001]
    down = [(1 / r, a) for r, a in zip(ratios, _AXES) if r < 1 / 1.001]
    if not up and not down:
        return "as large as"  # (only the voxels' shape differs: said next)
    if not down:
        return f"{_times(max(up)[0])}x larger than"
    if not up:
        return f"{_times(max(down)[0])}x smaller than"
    return (f"{_times(max(up)[0])}x larger along {', '.join(a for _, a in up)} and {_times(max(down)[0])}x smaller "
            f"along {', '.join(a for _, a in down)} than")


def _shape_note(data_voxel, model_voxel) -> str:
    """A sentence where the scan's voxels are more elongated than the model's (to the network, round objects
    look squashed along the long axis), else ''."""
    if _anisotropy(data_voxel) / _anisotropy(model_voxel) <= VOXEL_RATIO:
        return ""
    groups = _axes_by_size(data_voxel)
    longest, shortest = groups[max(groups)], groups[min(groups)]
    return (f" Its voxels are {_anisotropy(data_voxel):.3g}x longer along {longest} than along {shortest} (the "
            f"model's {'are cubic' if _anisotropy(model_voxel) < 1.001 else f'{_anisotropy(model_voxel):.3g}x'}): "
            f"to the network, round objects look squashed along {longest}.")


def check_voxel_size(volume, model) -> None:
    meta = getattr(model, "metadata", None) or {}
    message = voxel_size_warning(volume.voxel_size, meta.get("voxel_size_nm"), volume.path, learned_radius(meta))
    if message and volume.voxel_size is None:
        note(message)
    elif message:
        warn(message)


def check_normalization(model) -> None:
    """A warning for a model trained on per-patch z-scored patches (``data.normalization: patch``, the paper's
    code): ``segment`` z-scores the whole volume, the only normalization that does not depend on its tiling."""
    meta = getattr(model, "metadata", None) or {}
    scope = (meta.get("normalization") or {}).get("scope")
    if scope == "patch":
        warn("the model was trained on per-patch z-scored patches (data.normalization: patch), and segment "
             "z-scores the whole volume, so its results differ from the model's validation scores; train with "
             "data.normalization: volume for segment")


def check_model_threshold(model, threshold: int) -> None:
    """A warning where the model file records a threshold other than the paper's 127 and the run uses another
    (review MF8): segment's ``--threshold`` is 127 unless given, and a model saved with its own
    (``save_model(..., {"threshold": 100})``) was cut at 127 without a word, while its ONNX export tells other
    runtimes the model's. A threshold chosen for a model of 127 (every model tomoseg trains) is the user's."""
    meta = getattr(model, "metadata", None) or {}
    recorded = meta.get("threshold", 127)
    if recorded != 127 and recorded != threshold:
        warn(f"{getattr(model, 'path', None) or 'the model'}: records threshold {recorded}, and this run's mask and "
             f"objects use {threshold}; pass --threshold {recorded} (threshold={recorded}) to cut where the model's "
             "author did")


MIN_SLICES = 8  # thinner volumes give the 3D network little context along z (its receptive field: ~48 voxels)


def check_depth(volume) -> None:
    """A warning for a volume of a few slices: the 3D network sees them mirrored along z for context it was
    trained to take from real neighbours (a 2D image is refused; one slice saved as a volume was not told)."""
    slices = int(volume.shape[0])
    if slices < MIN_SLICES:
        warn(f"{volume.path}: {slices} slice{'s' if slices > 1 else ''}: the 3D network sees little context along z "
             "(it uses about 48 slices, and was trained on 3D volumes); expect weaker results than on thicker "
             "volumes")


def object_fraction(store, threshold: int, max_chunks: int = 64) -> float:
    """Share of voxels above ``threshold`` in up to ``max_chunks`` whole storage chunks spread evenly over the
    store (whole z slices where it is not chunked)."""
    from ..io.blocks import sample_blocks, storage_chunks

    shape = tuple(int(s) for s in store.shape)
    chunks = storage_chunks(store)
    units = int(np.prod([-(-s // c) for s, c in zip(shape, chunks)])) if chunks else shape[0]
    above = total = 0
    for block in sample_blocks(shape, chunks, min(1.0, max_chunks / units)):
        data = np.asarray(store[block])
        above += int(np.count_nonzero(data > threshold))
        total += data.size
    return above / max(total, 1)


def flooded_slices(fractions, limit: float = FLOOD_SLICE_FRACTION, *, floor: float = FLOOD_SLICE_FLOOR,
                   ratio: float = FLOOD_SLICE_RATIO) -> list[tuple[int, int]]:
    """Runs of z slices that are flooded, as ``(first, stop)`` pairs: slices whose object fraction exceeds
    ``limit``, or exceeds ``floor`` and ``ratio`` times the median slice's (a porous sample with a fifth of
    every slice in pores is not flooded; a dark end slice at 30 % among slices at 1 % is).

    Examples
    --------
    >>> flooded_slices([0.6, 0.5, 0.01, 0.0, 0.02, 0.7])
    [(0, 2), (5, 6)]
    >>> flooded_slices([0.3, 0.2, 0.01, 0.02, 0.01, 0.03])   # the dark ends of a cone-beam scan
    [(0, 2)]
    >>> flooded_slices([0.18, 0.12, 0.2, 0.1, 0.15, 0.19])   # a porous sample: no slice stands out
    []
    """
    f = np.asarray(fractions, np.float64)
    flooded = (f > limit) | ((f > floor) & (f > ratio * np.median(f))) if f.size else f > limit
    above = np.concatenate([[False], flooded, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def check_flooding(store, threshold: int, where, objects_per_slice=None) -> dict:
    """Warn when the probability map is flooded: objects fill far more of the volume, or of some z slices,
    than precipitates or pores do (data unlike the training data, dark end slices of a cone-beam scan).

    ``store`` is the map (a Zarr array or the path of a Zarr group with array ``0``); ``objects_per_slice``,
    the object voxels per z slice counted while the tiles were written, makes the check exact and per slice;
    without it a sample of chunks gives the overall share only. Returns what was found (for the provenance).
    """
    if isinstance(store, (str, os.PathLike)):
        import zarr

        store = zarr.open_array(str(store), path="0", mode="r")
    shape = tuple(int(s) for s in store.shape)
    if objects_per_slice is None:
        fraction, runs, method = object_fraction(store, threshold), [], "a sample of chunks"
        per_slice = None
    else:
        per_slice = np.asarray(objects_per_slice, np.float64) / (shape[1] * shape[2])
        fraction, runs, method = float(per_slice.mean()), flooded_slices(per_slice), "every voxel"
    if fraction > FLOOD_FRACTION:
        warn(f"{where}: {fraction:.0%} of the voxels are segmented as objects, far more than precipitates "
             "or pores fill: the data probably differ from the model's training data (contrast, voxel size, "
             f"surroundings of the sample). Check the result; crop the volume to the sample, or {FINE_TUNE}")
    elif runs:
        inside = np.ones(shape[0], bool)
        for a, b in runs:
            inside[a:b] = False
        parts = [f"{a}" if b == a + 1 else f"{a}-{b - 1}" for a, b in runs]
        named = "z " + (" and ".join(parts) if len(parts) <= 2 else ", ".join(parts))
        worst = max(float(per_slice[a:b].max()) for a, b in runs)
        rest = float(per_slice[inside].mean()) if inside.any() else 0.0
        one = len(runs) == 1 and runs[0][1] - runs[0][0] == 1
        those, them = ("that slice", "it") if one else ("those slices", "them")
        hint = ""
        depth, margin = shape[0], max(2, shape[0] // 50)  # an end slice itself may be less flooded than the next
        head = [b for a, b in runs if a <= margin]
        tail = [a for a, b in runs if b >= depth - margin]
        lo, hi = max(head, default=0), min(tail, default=depth)
        if len(head) + len(tail) == len(runs) and lo < hi:  # only at the ends: the ROI that leaves them out
            hint = (f" If {those} hold{'s' if one else ''} no sample (the dark ends of a cone-beam scan), leave "
                    f"{them} out with --roi {lo}:{hi},:,:.")
        subject = f"slice {named} is" if one else f"slices {named} are"
        warn(f"{where}: {subject} up to {worst:.0%} objects (the other slices {rest:.1%} on average): the model "
             f"floods {them}, where the data probably differ from its training data.{hint} Check the result there; "
             f"objects counted in {those} are not to be trusted")
    if per_slice is not None and fraction == 0:  # review S2: an empty map ended with the normal line, unsaid
        note(f"{where}: no voxel is above the threshold {threshold}: the map holds no object. If the scan has "
             "objects, check the warnings above (a fill value, constant slices, gray values unlike the "
             "training data) and the normalization in the provenance record")
    return {"object_fraction": round(fraction, 6), "counted_from": method,
            "flooded_slices": [[a, b] for a, b in runs]}


# ---------------------------------------------------------------- gray values
HIST_EDGES = np.linspace(-4.0, 4.0, 33)   # z-scores; values beyond ±4 s.d. fall in the end bins
HIST_DISTANCE = 0.5                       # total variation distance beyond which the data look unlike training


def intensity_histogram(data, mean: float, std: float) -> dict:
    """The z-scored gray-value histogram a model file can carry as ``input_histogram`` (its training data's)."""
    z = (np.asarray(data, dtype=np.float64).ravel() - mean) / std
    counts = np.histogram(np.clip(z, HIST_EDGES[0], HIST_EDGES[-1]), bins=HIST_EDGES)[0]
    return {"edges": HIST_EDGES.tolist(), "density": (counts / max(int(counts.sum()), 1)).round(6).tolist()}


def histogram_distance(a, b) -> float:
    """Total variation distance between two histograms on the same bins (0 same, 1 disjoint)."""
    return 0.5 * float(np.abs(np.asarray(a, float) - np.asarray(b, float)).sum())


class GraySample:
    """A strided subsample of the voxels the statistics pass reads (about ``keep`` of them, from every block it
    reads: the whole volume, or its stratified layers), for :func:`check_histogram`: 16 patches of a few slices
    missed what a scan is made of (an inverted phantom's histogram fitted far better mirrored over the whole
    volume, 0.19 against 0.34, and not in the patches, 0.36 against 0.40). Called as the pass's ``visit``, on
    its reader threads; the blocks' order does not matter to a histogram."""

    def __init__(self, voxels: int, row: int, keep: int = 2**21):
        step = max(1, int(voxels) // keep) | 1
        while row % step == 0 and step > 1:  # a step dividing the rows would take one column
            step += 2
        self.step = step
        self.parts: list = []
        self._lock = threading.Lock()

    def __call__(self, region, data) -> None:
        part = np.asarray(data).reshape(-1)[::self.step].copy()
        with self._lock:
            self.parts.append(part)

    def values(self) -> np.ndarray | None:
        return np.concatenate(self.parts) if self.parts else None


def check_histogram(volume, stats, model, sample: np.ndarray | None = None) -> float | None:
    """Warn when the input's normalized histogram is far from the one the model file records for its training
    data, saying what the difference looks like (G10); returns the distance (kept in the provenance), or None
    for models that record no ``input_histogram``.

    The input is normalized as the tiles are (:func:`~tomoseg.inference.normalization.normalize`: the robust
    statistics, the sign of ``--objects``, the clipping), voxels without data (NaN, ±inf, ``--fill-value``) left
    out, on ``sample`` (the voxels a :class:`GraySample` kept), else on 16 spread patches. The advice follows the
    shape of the difference: a histogram that matches far better mirrored (objects brighter than the matrix, or
    the reverse of ``--objects``); many voxels beyond ±4 s.d. (a background or fill of other gray); else other
    contrast or noise, which only a look at the result and fine-tuning settle."""
    from .fingerprint import sample_regions
    from .normalization import nodata_mask, normalize

    ref = (getattr(model, "metadata", None) or {}).get("input_histogram")
    if not isinstance(ref, dict) or not isinstance(ref.get("density"), list) \
            or len(ref["density"]) != len(HIST_EDGES) - 1:
        return None
    try:
        density = np.array([float(v) for v in ref["density"]])
    except (TypeError, ValueError):
        return None
    parts = []
    blocks = [sample] if sample is not None else (np.asarray(volume[r]) for r in sample_regions(volume.shape))
    for block in blocks:
        z = normalize(block, stats)
        holes = nodata_mask(block, stats)
        parts.append((z[~holes] if holes is not None else z).ravel())
    sample = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if not sample.size:
        return None
    mine = np.asarray(intensity_histogram(sample, 0.0, 1.0)["density"])
    distance = histogram_distance(mine, density)
    mirrored = histogram_distance(mine[::-1], density)  # the bins are symmetric about 0: reversed is -z
    if distance > HIST_DISTANCE or _mirrored_fits(distance, mirrored):
        warn(f"{volume.path}: its gray-value histogram differs from the model's training data (distance "
             f"{distance:.2f} of 1, after normalization): "
             f"{_histogram_advice(mine, density, distance, mirrored, stats)}")
    return distance


MIRRORED_FIT, MIRRORED_RATIO = 0.3, 0.7  # mirrored within this distance, and under this share of it: polarity


def _mirrored_fits(distance: float, mirrored: float) -> bool:
    """Whether the histogram mirrored (-z) matches the model's data well and far better than as it is: objects
    of the other polarity (an inverted phantom: 0.34 as it is, 0.19 mirrored, over the whole volume; tomoseg's
    own phantoms, the cement and concrete scans: the two within 5 % of each other)."""
    return mirrored < MIRRORED_FIT and mirrored < MIRRORED_RATIO * distance


def _histogram_advice(mine: np.ndarray, ref: np.ndarray, distance: float, mirrored: float, stats) -> str:
    """What a histogram far from the model's looks like, and what to do about it."""
    if _mirrored_fits(distance, mirrored):
        other = "dark" if getattr(stats, "sign", 1.0) < 0 else "bright"
        return (f"mirrored it matches far better (distance {mirrored:.2f}): are the objects {other}er than the "
                f"matrix? Then run again with --objects {other}")
    ends, ref_ends = float(mine[0] + mine[-1]), float(ref[0] + ref[-1])
    if ends > max(0.05, 3 * ref_ends):
        return (f"{ends:.0%} of the voxels lie beyond 4 s.d. (the model's training data: {ref_ends:.1%}): a "
                "background, fill or edge region of another gray? Crop to the sample (--roi, --sample-mask), or "
                "name a constant fill with --fill-value; then check the result")
    return ("other contrast or noise than the model has learned; results may be poor. Check the result (napari, "
            f"or analyze's orthoslices); if objects are missed or false ones found, {FINE_TUNE}")
