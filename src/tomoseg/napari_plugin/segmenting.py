"""The Segment widget's work: a layer held in memory segmented tile by tile, with the checks ``tomoseg segment``
makes of the data (the same functions: :mod:`tomoseg.inference.gray_checks`, :mod:`tomoseg.inference.domain`),
their notes and warnings collected for the widget's status instead of printed on stderr.

The checks name the command line's flags (``--fill-value -32768``, ``--objects bright``); the widget's status
names its own settings instead (:func:`in_widget_terms`). No Qt here.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

# the command line's flags that the Segment widget has as settings, and how its status names them
WIDGET_SETTINGS = (
    (re.compile(r"(?:pass|use|run again with) --fill-value (\S+?)(?=[ ,;:)]|$)"), r"set fill value to \1"),
    (re.compile(r"(?:pass|use|run again with) --objects (dark|bright)"), r"choose objects: \1"),
    (re.compile(r"(?:use|with) --device (\w+)"), r"choose device \1"),
    (re.compile(r"pass --model PATH"), "give the path of a model file as model"),
    (re.compile(r"use --backend (\w+)"), r"choose backend \1"),
    (re.compile(r"--roi\b"), "ROI"),
    (re.compile(r"--backend\b"), "backend"),
    (re.compile(r"--precision\b"), "precision"),
    (re.compile(r"--fill-value\b"), "fill value"),
    (re.compile(r"--objects\b"), "objects"),
    (re.compile(r"--device\b"), "device"),
    (re.compile(r"--threshold\b"), "threshold"),
)


def in_widget_terms(text: str) -> str:
    """A message of the command line's with the flags the widget has as settings named as those settings
    (``--fill-value -32768`` → ``fill value -32768``); flags the widget lacks (``--sample-mask``) stay as they are."""
    for pattern, replacement in WIDGET_SETTINGS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


@contextlib.contextmanager
def collected(messages: list):
    """Collect the :class:`~tomoseg.errors.TomosegNote` s and :class:`~tomoseg.errors.TomosegWarning` s given in
    the block, as ``"note: ..."`` and ``"warning: ..."`` lines in ``messages``, in the widget's terms. Python's
    warning filters are process-wide, so the block should be short (the checks themselves, not the tiles)."""
    from ..errors import TomosegNote, TomosegWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TomosegWarning)
        warnings.simplefilter("always", TomosegNote)
        try:
            yield messages
        finally:
            for w in caught:
                if issubclass(w.category, (TomosegWarning, TomosegNote)):
                    kind = "warning" if issubclass(w.category, TomosegWarning) else "note"
                    messages.append(f"{kind}: " + in_widget_terms(str(w.message)))


@dataclass(frozen=True)
class LayerVolume:
    """What the checks ask of a volume: its name in messages (``path``), shape and voxel size (nm, or None)."""

    path: str
    shape: tuple
    voxel_size: tuple | None = None


def segment_steps(image, model=None, *, name: str = "image", voxel_size=None, options=None):
    """Generator: yields (voxels done, voxels to compute) after reading the image, after the statistics and
    after each tile; returns ``(probability map as uint8 0-255, messages, record)``: the map as ``segment`` writes
    it (no float32 copy of the volume is held), the notes and warnings ``tomoseg segment`` gives for these data, in
    the widget's terms, and the run's record (:func:`segment_record`). Each yield is where a napari worker's
    ``quit()`` (the widget's Cancel) takes effect.

    ``options``: a :class:`~tomoseg.inference.SegmentOptions`, the CLI's settings and checks (threshold, tiling,
    backend/device/precision, objects, fill value, ``sample_mask`` auto or off, ``roi``); its ``tile_size`` None:
    the backend's choice, as ``tomoseg segment`` makes it. The statistics, the sample mask or ROI, the tiles and
    each tile's core are ``segment``'s own (:func:`~tomoseg.inference.engine.first_pass`, the backend's
    ``run_windows``, :func:`~tomoseg.inference.engine.core_as_written`): tiles outside the sample mask get
    probability 0 without running the network, and with an ROI the map is the volume's size, 0 outside the box,
    as ``segment --roi`` writes it.

    ``image`` may be a lazy (dask, zarr) array: it is read here, on the worker's thread, not on napari's.
    Its errors (:class:`~tomoseg.errors.TomosegError`) are the CLI's, flags and all: the widget says them
    :func:`in_widget_terms`."""
    from dataclasses import replace

    from ..checkpoint import load_model
    from ..errors import TomosegError
    from ..inference.backends import make_backend, resolve, run_windows_one_by_one
    from ..inference.domain import (GraySample, check_depth, check_flooding, check_histogram, check_normalization,
                                    check_voxel_size)
    from ..inference.engine import SegmentOptions, first_pass, core_as_written
    from ..inference.gray_checks import SliceRanges, check_gray_values
    from ..inference.normalization import model_objects, nodata_mask
    from ..inference.tiling import read_padded, resolve_tiling, tile_grid
    from ..shipped import SHIPPED_MODELS, names_shipped_model

    options = options or SegmentOptions()
    t0 = time.time()
    image = np.asarray(image)
    yield 0, int(image.size)  # read (a lazy layer may take long): Cancel stops here, before the model is loaded
    if model and not names_shipped_model(model) and not Path(model).exists():
        raise TomosegError(f"model {model!r}: no such file; give one of the shipped models "
                           f"({', '.join(SHIPPED_MODELS)}; empty: default) or the path of a .safetensors file")
    net = load_model(model or None)
    divisor = net.config.divisor
    backend, device = resolve(options.backend)
    options = replace(options, objects=options.objects or model_objects(net),
                      tiling=resolve_tiling(options.tiling, image.shape, divisor, device=device,
                                            precision=options.backend.precision,
                                            base_features=net.config.base_features, backend=backend))
    volume = LayerVolume(f"layer {name!r}", tuple(image.shape), voxel_size)
    messages: list = []
    with collected(messages):
        check_voxel_size(volume, net)
        check_normalization(net)
        check_depth(volume)
    slices = SliceRanges(image.shape[0], int(image.shape[1]) * int(image.shape[2]))
    grays = GraySample(image.size, int(image.shape[2]))
    stats, sample = first_pass(image, options, divisor, None, slices=slices, grays=grays, named=volume)
    with collected(messages):
        check_histogram(volume, stats, net, grays.values())
        check_gray_values(stats, volume.path, options.fill_value, slices)
    tiles = tile_grid(image.shape, options.tiling, divisor, region=sample.box) if sample.box else []
    todo = [t for t in tiles if sample.touches(t.core)]
    keep = tuple((b.start, b.stop) for b in sample.box) if options.roi is not None and sample.box else None
    messages += _sample_note(sample, options, sum(t.voxels for t in todo), int(image.size))
    run = make_backend(net, options.backend)
    out = np.zeros(image.shape, np.uint8)  # outside the sample mask's tiles or the ROI: probability 0
    holes: dict = {}

    def windows():
        for tile in todo:
            raw = read_padded(image, tile.read, image.shape, options.tiling.pad_mode)
            holes[tile.index] = nodata_mask(raw[tile.core_in_read], stats)
            yield tile, raw

    done, total = 0, sum(t.voxels for t in todo)
    yield done, total
    results = (run.run_windows if hasattr(run, "run_windows") else partial(run_windows_one_by_one, run))(
        windows(), stats)
    try:
        for tile, p8 in results:
            out[tile.core] = core_as_written(p8, tile.core, holes.pop(tile.index), keep)
            done += tile.voxels
            yield done, total
    finally:  # cancelled: the backend's requests in flight end before it is freed
        results.close()
    per_slice = np.count_nonzero(out > options.threshold, axis=(1, 2))
    with collected(messages):
        check_flooding(out, options.threshold, volume.path, per_slice)
    return out, messages, segment_record(volume, net, options, stats, sample, tiles, todo, f"{backend}-{device}",
                                         messages, t0)


def segment_record(volume, net, options, stats, sample, tiles, todo, backend: str, messages, t0) -> dict:
    """What ``tomoseg segment`` records beside its map (:func:`tomoseg.inference.outputs.provenance`: model,
    threshold, normalization, tiling, backend, sample mask or ROI, notes), for the widget's layers: napari's
    *Save* of the probability or mask layer writes it beside the file (``writer``), so that ``tomoseg analyze``
    and ``report`` find what made the map, as for the CLI's. The input is the layer (no file: no content
    fingerprint); ``via`` says the widget made it."""
    from ..inference.model_file import model_identity
    from ..inference.outputs import provenance

    fingerprint = {"model_sha256": model_identity(net), "input_content": None, "backend": backend}
    record = provenance(volume, net, options, fingerprint, stats, (None, None), len(tiles), t0)
    record["via"] = "napari Segment widget"
    record["notes"] = list(messages)
    record["sample_mask"] = {**sample.record, "tiles_computed": len(todo),
                             "voxels_computed": int(sum(t.voxels for t in todo)),
                             "outside": "probability 0, network not run"}
    return record


def _sample_note(sample, options, computed: int, total: int) -> list[str]:
    """A note where the network ran on part of the volume only (``computed`` of ``total`` voxels): the ROI, or
    the automatic sample mask."""
    share = f"the network ran on {computed / max(total, 1):.0%} of the voxels"
    if options.roi is not None:
        box = ",".join(f"{b.start}:{b.stop}" for b in sample.box)
        return [f"note: ROI {box}: probability 0 outside it ({share}, with their context)"]
    if computed < total:
        return [f"note: the sample mask (found automatically: surroundings darker than the sample): {share}, "
                "probability 0 elsewhere; untick sample mask to run it on every tile"]
    return []
