"""The Segment widget's work: a layer held in memory segmented tile by tile, with the checks ``tomoseg segment``
makes of the data (the same functions: :mod:`tomoseg.inference.gray_checks`, :mod:`tomoseg.inference.domain`),
their notes and warnings collected for the widget's status instead of printed on stderr.

The checks name the command line's flags (``--fill-value -32768``, ``--objects bright``); the widget's status
names its own settings instead (:func:`in_widget_terms`). No Qt here.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the command line's flags that the Segment widget has as settings, and how its status names them
WIDGET_SETTINGS = (
    (re.compile(r"(?:pass|use|run again with) --fill-value (\S+?)(?=[ ,;:)]|$)"), r"set fill value to \1"),
    (re.compile(r"(?:pass|use|run again with) --objects (dark|bright)"), r"choose objects: \1"),
    (re.compile(r"(?:use|with) --device (\w+)"), r"choose device \1"),
    (re.compile(r"pass --model PATH"), "give the path of a model file as model"),
    (re.compile(r"--fill-value\b"), "fill value"),
    (re.compile(r"--objects\b"), "objects"),
    (re.compile(r"--device\b"), "device"),
    (re.compile(r"--threshold\b"), "threshold"),
)


def in_widget_terms(text: str) -> str:
    """A message of the command line's with the flags the widget has as settings named as those settings
    (``--fill-value -32768`` → ``fill value -32768``); flags the widget lacks (``--roi``) stay as they are."""
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


def segment_steps(image, model=None, *, name: str = "image", voxel_size=None, objects: str | None = None,
                  fill_value: float | None = None, threshold: int = 127, tile_size: int | None = None,
                  halo: int = 48, device: str = "auto"):
    """Generator: yields (voxels done, total) after reading the image, after the statistics and after each tile;
    returns ``(probability map as uint8 0-255, messages)``: the map as ``segment`` writes it (no float32 copy of the
    volume is held) and the notes and warnings ``tomoseg segment`` gives for these data, in the widget's terms.
    Each yield is where a napari worker's ``quit()`` (the widget's Cancel) takes effect.

    ``image`` may be a lazy (dask, zarr) array: it is read here, on the worker's thread, not on napari's.
    ``objects`` None: what the model was trained for (dark for the shipped model), as the CLI's default.
    ``fill_value``: a gray value meaning no data (the CLI's ``--fill-value``: left out of the statistics,
    probability 0). ``tile_size`` None (or 0): the backend's choice, as ``tomoseg segment`` makes it.
    Its errors (:class:`~tomoseg.errors.TomosegError`) are the CLI's, flags and all: the widget says them
    :func:`in_widget_terms`."""
    from ..checkpoint import load_model
    from ..errors import TomosegError
    from ..inference import BackendConfig, TilingConfig
    from ..inference.backends import make_backend, resolve
    from ..inference.domain import (GraySample, check_depth, check_flooding, check_histogram, check_normalization,
                                    check_voxel_size)
    from ..inference.engine import SegmentOptions, _check_stats, predict_tile
    from ..inference.gray_checks import SliceRanges, check_gray_values
    from ..inference.normalization import model_objects, volume_stats
    from ..inference.tiling import resolve_tiling, tile_grid
    from ..shipped import SHIPPED_MODELS, names_shipped_model

    options = SegmentOptions(threshold=threshold, objects=objects, fill_value=fill_value)  # the CLI's checks
    image = np.asarray(image)
    total = int(image.size)
    yield 0, total  # read (a lazy layer may take long): Cancel stops here, before the model is loaded
    if model and not names_shipped_model(model) and not Path(model).exists():
        raise TomosegError(f"model {model!r}: no such file; give one of the shipped models "
                           f"({', '.join(SHIPPED_MODELS)}; empty: default) or the path of a .safetensors file")
    net = load_model(model or None)
    objects = options.objects or model_objects(net)
    config = BackendConfig(device=device)
    backend, device = resolve(config)
    tiling = resolve_tiling(TilingConfig(tile_size=tile_size or None, halo=halo), image.shape, net.config.divisor,
                            device=device, base_features=net.config.base_features, backend=backend)
    volume = LayerVolume(f"layer {name!r}", tuple(image.shape), voxel_size)
    messages: list = []
    with collected(messages):
        check_voxel_size(volume, net)
        check_normalization(net)
        check_depth(volume)
    slices = SliceRanges(image.shape[0], int(image.shape[1]) * int(image.shape[2]))
    grays = GraySample(image.size, int(image.shape[2]))
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below, with the CLI's message
            stats = volume_stats(image, fill=options.fill_value, objects=objects,
                                 visit=lambda block, data: (slices(block, data), grays(block, data)))
    except OverflowError:
        stats = None
    _check_stats(stats, volume)
    with collected(messages):
        check_histogram(volume, stats, net, grays.values())
        check_gray_values(stats, volume.path, options.fill_value, slices)
    run = make_backend(net, config)
    out = np.empty(image.shape, np.uint8)
    done = 0
    yield done, total
    for tile in tile_grid(image.shape, tiling, net.config.divisor):
        p = predict_tile(image, tile, stats, run, image.shape, tiling.pad_mode)
        out[tile.core] = np.rint(np.clip(p, 0, 1) * 255)
        done += int(np.prod([s.stop - s.start for s in tile.core]))
        yield done, total
    per_slice = np.count_nonzero(out > threshold, axis=(1, 2))
    with collected(messages):
        check_flooding(out, threshold, volume.path, per_slice)
    return out, messages
