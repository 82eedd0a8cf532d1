"""Segmentation of volumes of any size in bounded memory.

Three parts kept apart (as MONAI does): where the tiles are (:mod:`.tiling`),
how tile results are stitched (each tile writes only its core, one output chunk,
so tiles never overlap in the output), and the model (a backend callable).

``predict`` works on a NumPy array in memory; ``segment`` streams a volume file
to output files, records finished tiles so a killed run resumes where it
stopped (:mod:`.work_folder`), and renames the results into place only when
complete (:mod:`.outputs`).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import TomosegError, note, recording
from ..io import open_volume, split_dataset
from ..io.volume import check_array, origin_of
from ..interrupt import raise_if_interrupted
from ..io.zarr_chunks import parallel_writer
from ..io.output_guard import write_provenance
from ..objects.reading import check_threshold
from ..io.zarr_store import create_zarr, store_chunks
from ..thread_pool import ThreadPool
from .backends import (BackendConfig, make_backend, prepare_meanwhile, resolve,  # noqa: F401
                       run_windows_one_by_one, to_uint8)
from ..io.blocks import read_ahead, sample_slabs, storage_chunks
from .normalization import (SAMPLE_FRACTION, Stats, check_fill_value, check_objects, model_objects, nodata_mask,
                            normalize, stats_method, volume_stats)
from .domain import check_flooding
from .outputs import check_output_paths, finish_output, provenance
from .memory_check import check_local_workers_memory, check_memory, is_out_of_memory, out_of_memory_error
from .tiling import Tile, TilingConfig, pad_to_divisor, read_padded, resolve_tiling, tile_grid
from .work_folder import (WORK_SUFFIX, Heartbeat, add_invocation, check_done, check_not_running,  # noqa: F401
                          check_run, check_input_unchanged, finished_outputs, invocations, lost_tiles,
                          objects_per_slice, prepare_work, read_saved_state, resolved_path, run_fingerprint,
                          work_dir_for, write_done_marker, write_state)



@dataclass(frozen=True)
class SegmentOptions:
    """Settings of :func:`segment` (everything but the input, the outputs and the model)."""

    threshold: int = 127
    tiling: TilingConfig = field(default_factory=TilingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    stats: str = "auto"
    voxel_size: tuple | None = None
    resume: bool = False
    overwrite: bool = False
    workers: int | None = None
    scheduler: str | None = None
    gpus: int | None = None     # a local cluster of this many workers, one per GPU of this machine
    sample_mask: str = "auto"   # auto | off | path of a mask volume (nonzero = sample)
    roi: str | None = None      # "z0:z1,y0:y1,x0:x1": compute only this box (replaces the sample mask)
    objects: str | None = None  # dark | bright; None: what the model was trained for (normalization.model_objects)
    fill_value: float | None = None  # a gray value meaning "no data" (besides NaN and ±inf)

    def __post_init__(self):
        from ..io.volume import checked_voxel_size

        check_threshold(self.threshold)
        check_objects(self.objects)
        check_fill_value(self.fill_value)
        # checked here, not only when the volume opens: a wrong one refused before anything is read
        object.__setattr__(self, "voxel_size", checked_voxel_size(self.voxel_size, "voxel_size"))
        if self.stats not in ("auto", "full", "sample"):
            raise TomosegError(f"stats {self.stats!r} must be auto, full or sample")
        if not isinstance(self.sample_mask, (str, os.PathLike)) or not str(self.sample_mask):
            raise TomosegError(f"sample mask {self.sample_mask!r} must be 'auto', 'off' or the path of a mask volume")
        if self.roi is not None and str(self.sample_mask) not in ("auto", "off"):
            raise TomosegError("give either a sample mask file or an ROI, not both")
        if self.gpus is not None:
            if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 1:
                raise TomosegError(f"--gpus {self.gpus!r}: give a number of GPUs, at least 1")
            if self.workers or self.scheduler:
                raise TomosegError("--gpus starts its own local cluster (one worker per GPU); give it without "
                                   "--workers and --dask-scheduler")
            if self.backend.device == "cpu" or self.backend.backend == "openvino":
                raise TomosegError("--gpus runs on CUDA GPUs; it cannot be combined with --device cpu or "
                                   "--backend openvino")


def _model_or_default(model):
    """The model to run: a module as given (left as it is: its mode and device are the caller's; the backends
    run copies); for a path (or None: the default model) the loaded module, or a
    :class:`.model_file.ModelFile` where OpenVINO has converted that file before (no PyTorch import). Refused
    where predict and segment would run it wrongly (:func:`.model_file.check_runnable`)."""
    from .backends import cache_dir, openvino_available
    from .model_file import check_runnable, open_model

    if not (model is None or isinstance(model, (str, os.PathLike)) or hasattr(model, "config")):
        raise TomosegError(f"model: give a model file's path, a model (tomoseg.load_model) or None for the shipped "
                           f"one, not a {type(model).__name__}")
    if model is None or isinstance(model, (str, os.PathLike)):
        cache = cache_dir()
        model = open_model(model, cache / "openvino" if cache is not None and openvino_available() else None)
    check_runnable(model)
    return model


def predict_tile(volume, tile: Tile, stats: Stats, backend, shape, pad_mode: str) -> np.ndarray:
    """Probabilities (float32) of one tile's core."""
    raw = read_padded(volume, tile.read, shape, pad_mode)
    prob = backend(normalize(raw, stats)[None, None])[0, 0][tile.core_in_read]
    return without_nodata(prob, raw[tile.core_in_read], stats)


def without_nodata(prob: np.ndarray, raw: np.ndarray, stats: Stats) -> np.ndarray:
    """``prob`` with 0 where ``raw`` (the same voxels of the input) holds no data: NaN, ±inf or the fill value
    (:func:`.normalization.nodata_mask`); ``prob`` itself where every voxel holds data."""
    holes = nodata_mask(raw, stats)
    if holes is None:
        return prob
    out = prob.copy()
    out[holes] = 0
    return out


def predict(image: np.ndarray, model=None, *, tiling: TilingConfig | None = None,
            backend: BackendConfig | None = None, stats: Stats | None = None, objects: str | None = None,
            fill_value: float | None = None) -> np.ndarray:
    """Object probabilities (float32, [0, 1]) of a volume in memory, tile by tile.

    Parameters
    ----------
    image : ndarray (z, y, x)
    model : UNet3D, path, or None for the shipped default
    tiling : TilingConfig, optional
    backend : BackendConfig, optional
    stats : Stats, optional
        Normalization statistics; by default those of ``image`` (:func:`.normalization.volume_stats`, with
        ``objects`` and ``fill_value``).
    objects : {"dark", "bright"}, optional
        The objects sought; by default those the model was trained for (its metadata), as :func:`segment` does.
    fill_value : float, optional
        A gray value that means "no data" (besides NaN and ±inf): left out of the statistics, probability 0.

    Returns
    -------
    ndarray of float32, the shape of ``image``
        The probability of each voxel being an object (``p > 0.5`` is segment's mask).
    """
    image = check_array(image, "image", in_memory=True)
    model = _model_or_default(model)
    stats = _stats_for(image, model, stats, objects, fill_value)
    backend = backend or BackendConfig()
    backend_name, device = resolve(backend)
    tiling = resolve_tiling(tiling or TilingConfig(), image.shape, model.config.divisor, device=device,
                            precision=backend.precision, base_features=model.config.base_features,
                            backend=backend_name)
    run = make_backend(model, backend)
    out = np.empty(image.shape, np.float32)
    for tile in tile_grid(image.shape, tiling, model.config.divisor):
        out[tile.core] = predict_tile(image, tile, stats, run, image.shape, tiling.pad_mode)
    return out


def _stats_for(image: np.ndarray, model, stats: Stats | None, objects, fill_value) -> Stats:
    """The normalization of ``image`` for :func:`predict`: ``stats`` as given, else the image's own, for the
    objects ``objects`` (by default the model's: :func:`.normalization.model_objects`) and the fill value."""
    check_objects(objects)
    check_fill_value(fill_value)
    if stats is not None and not isinstance(stats, Stats):
        raise TomosegError(f"stats: give a Stats (tomoseg.inference.normalization.volume_stats(volume)), not a "
                           f"{type(stats).__name__}")
    if stats is None:
        return volume_stats(image, objects=objects or model_objects(model), fill=fill_value)
    if (objects is not None and objects != stats.objects) or (fill_value is not None and fill_value != stats.fill):
        raise TomosegError(f"stats are those of {stats.objects} objects and fill value {stats.fill}; objects "
                           f"{objects} and fill_value {fill_value} contradict them: give the one or the others")
    return stats


def predict_whole(image: np.ndarray, model=None, *, backend: BackendConfig | None = None,
                  stats: Stats | None = None, pad_mode: str = "reflect", objects: str | None = None,
                  fill_value: float | None = None) -> np.ndarray:
    """The reference: one pass of the model over the whole (padded) volume, as the paper's code does; the
    arguments and the result are :func:`predict`'s."""
    image = check_array(image, "image", in_memory=True)
    model = _model_or_default(model)
    stats = _stats_for(image, model, stats, objects, fill_value)
    data = normalize(pad_to_divisor(image, model.config.divisor, pad_mode), stats)
    prob = make_backend(model, backend or BackendConfig())(data[None, None])[0, 0]
    return without_nodata(prob[tuple(slice(0, s) for s in image.shape)], image, stats)


# ------------------------------------------------------------------ files
@dataclass
class TileJob:
    """Everything a process needs to compute and write tiles (picklable for Dask workers)."""

    volume: object
    shape: tuple
    model_path: str
    model_sha256: str
    stats: Stats
    tiling: TilingConfig
    backend: BackendConfig
    threshold: int
    work: str
    write_mask: bool
    keep: tuple | None = None   # --roi: ((z0, z1), (y0, y1), (x0, x1)); probability 0 outside it
    run: float | None = None    # a Dask task's run (its state's start): checked before each write (check_run)


def core_as_written(p8: np.ndarray, core: tuple, holes=None, keep=None) -> np.ndarray:
    """A tile's uint8 core as ``segment`` writes it: 0 where its input holds no data (``holes``, the core's
    :func:`.normalization.nodata_mask`) and outside the ``--roi`` box ``keep``. The Segment widget of the napari
    plugin writes its cores with this too."""
    if holes is not None:
        p8 = np.where(holes, np.uint8(0), p8)
    return p8 if keep is None else _outside_zeroed(p8, core, keep)


def _outside_zeroed(p8: np.ndarray, core: tuple, keep) -> np.ndarray:
    """The core's map with voxels outside the box ``keep`` set to 0 (``p8`` itself where all are inside)."""
    inside = tuple(slice(max(lo - c.start, 0), max(min(hi, c.stop) - c.start, 0)) for c, (lo, hi) in zip(core, keep))
    if all(s.start == 0 and s.stop == c.stop - c.start for s, c in zip(inside, core)):
        return p8
    out = np.zeros_like(p8)
    out[inside] = p8[inside]
    return out


_BACKENDS: dict = {}  # a worker's backend, kept between tasks and runs: keyed by the model's identity (the weights)


def _backend_for(job: TileJob):
    key = (job.model_sha256, job.backend)
    if key not in _BACKENDS:
        _BACKENDS.clear()
        _BACKENDS[key] = make_backend(_model_or_default(job.model_path), job.backend)
    return _BACKENDS[key]


def run_tiles(job: TileJob, tiles: list[Tile], backend=None, progress=None, memory: int | None = None,
              source: np.ndarray | None = None) -> int:
    """Compute ``tiles`` and write their cores; a tile counts as done once its marker file exists.

    Reader threads read windows ahead (``backend.readers`` of them), the backend turns the stream of raw
    windows into uint8 cores (``backend.run_windows``, see :mod:`.backends`), writer threads write the cores
    and the done markers: reading, computing and writing overlap. ``memory``: the bytes this process may use
    (a Dask worker's limit; default: the machine's available memory), which bounds the chunk cache. ``source``:
    the volume already in memory (:func:`resident_copy`: an array, or a volume on the backend's GPU with a
    ``window`` method), read instead of ``job.volume``.
    """
    import zarr

    if not tiles:  # nothing left (a resume whose tiles were all done): the work stores may be in place already
        return 0
    backend = backend or _backend_for(job)
    work = Path(job.work)
    readers = max(1, int(getattr(backend, "readers", 1)))

    def store(name):  # every chunk stored without Zarr's test against the fill value (store_chunks: 0.40 -> 0.13 s
        # to write a 256x1024x1024 map; nearly every chunk of a computed core holds non-zeros anyway), encoded and
        # written on tomoseg's threads rather than Zarr's one (io/zarr_chunks.py), the chunks of a core on `readers`
        return parallel_writer(store_chunks(zarr.open_array(str(work / name), path="0", mode="r+")), threads=readers)

    prob_arr = store("prob.zarr")
    mask_arr = store("mask.zarr") if job.write_mask else None
    source = _cached(job.volume, tiles, job.shape, memory, threads=readers) if source is None else source

    holes = {}  # tile index -> where its core holds no data (NaN, ±inf, the fill value): probability 0 there

    def read(tile):
        if hasattr(source, "window"):  # the volume on the backend's GPU: a view there; its holes found there too
            return source.window(tile.read, job.tiling.pad_mode)
        raw = read_padded(source, tile.read, job.shape, job.tiling.pad_mode)
        core_holes = nodata_mask(raw[tile.core_in_read], job.stats)
        if core_holes is not None:
            holes[tile.index] = core_holes
        return raw

    def write(tile, p8):
        if job.run is not None:  # a cancelled Dask task, or its work folder replaced (--overwrite): stop here
            check_run(work, job.run)
        p8 = core_as_written(p8, tile.core, holes.pop(tile.index, None), job.keep)
        prob_arr[tile.core] = p8
        above = p8 > job.threshold
        if mask_arr is not None:
            mask_arr[tile.core] = above.astype(np.uint8)
        write_done_marker(work, tile, np.count_nonzero(above, axis=(1, 2)))
        if progress is not None:
            progress.update(int(p8.size))

    try:
        with ThreadPool(readers) as writer:
            run = getattr(backend, "run_windows", None)
            # through a cache with its own threads, windows are read one after another, each by all of them:
            # the first window is ready as soon as possible (the GPU waits for it), the next right after
            ahead = 2 if getattr(source, "threads", 1) > 1 else readers
            stream = _Stream(read_ahead(tiles, read, threads=min(ahead, readers)), len(tiles))
            results = run(stream, job.stats) if run is not None else run_windows_one_by_one(backend, stream,
                                                                                             job.stats)
            writes = deque()
            for tile, p8 in results:
                raise_if_interrupted()  # Ctrl-C that something swallowed (interrupt.py)
                writes.append(writer.submit(write, tile, p8))
                while len(writes) > readers + 1:
                    writes.popleft().result()
            for w in writes:
                w.result()
    finally:
        if hasattr(source, "close") and source is not job.volume:  # the chunk cache's threads; the volume stays
            source.close()                                           # open for its owner
    return len(tiles)

class _Stream:
    """The windows of a run: an iterator that also knows how many it will yield (``len``), so that a backend
    may plan its batches."""

    def __init__(self, iterator, length: int):
        self._iterator, self._length = iterator, length

    def __iter__(self):
        return self._iterator

    def __len__(self) -> int:
        return self._length


def _cached(volume, tiles: list[Tile], shape, memory: int | None = None, threads: int = 1):
    """The volume to read windows from: through a :class:`~tomoseg.io.blocks.ChunkCache` where it is stored in
    chunks that neighbouring windows share (Zarr, chunked HDF5, a folder of slices) and a quarter of the free
    memory holds the chunks of one row of windows (then each chunk is decompressed or read once).

    Storage chunks taller than a window (whole slices: HDF5, Zarr and TIFF stacks written slice by slice) make
    that row a whole slab of the volume: 3.4 GB for 2048 x 2048 uint16 slices and windows of 320. Where it does
    not fit, the cache keeps bands of the slices (:data:`BAND` rows each): those of the row of windows, and the
    next ones down the slices, as many as fit, decoded by the same read; a slice is decoded once per such group
    rather than once per window (benchmarks/results/slice_bands.md). Where not even one group fits, the volume
    itself, with a warning (a smaller cache would only thrash: windows come back to a chunk after a whole
    row)."""
    from ..io.blocks import ChunkCache, storage_chunks

    chunks = storage_chunks(volume)
    if chunks is None or len(tiles) < 2:
        return volume
    window = [min(r.stop, s) - r.start for r, s in zip(tiles[0].read, shape)]
    item = np.dtype(volume.dtype).itemsize

    def row(height: int) -> int:  # bytes of a row of windows whose chunks along y reach ``height`` past it
        return int(1.25 * min(window[0] + chunks[0], shape[0]) * min(window[1] + height, shape[1]) * shape[2] * item)

    free = _available_memory() or 8 << 30  # no figure: assume a modest machine
    if memory:
        free = min(free, int(memory))
    if row(chunks[1]) <= free // 4:
        return ChunkCache(volume, chunks, max_bytes=row(chunks[1]), threads=threads)
    # bands of BAND rows: the row of windows' own and, read with them, as many of the next as fit: a slice is
    # decoded about once per `group` bands down the volume, instead of once per window
    per_row = max(1, row(1) - row(0))
    group = int((free // 4 // per_row - window[1]) // BAND) - 1
    if chunks[1] > window[1] and group >= 1:
        return ChunkCache(volume, (chunks[0], BAND, chunks[2]), storage=chunks, band_group=group,
                          max_bytes=row((group + 1) * BAND), threads=threads)
    from ..errors import warn
    from ..io.disk_space import human_size

    warn(f"{getattr(volume, 'path', 'the input')}: its storage chunks ({' x '.join(map(str, chunks))}) are read "
         f"again for each window that touches them: a quarter of the free memory ({human_size(free // 4)}) holds "
         f"no row of windows of them ({human_size(row(min(chunks[1], 2 * BAND)))}); the run reads the file "
         "several times over. Free memory, or store the volume in smaller chunks (e.g. Zarr of 64^3)")
    return volume


BAND = 64  # rows of the bands a cache keeps of storage chunks taller than a window (whole slices)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_stats(stats: Stats | None, volume) -> None:
    """Gray values beyond float32 (the model's input type) would become infinities: refuse them."""
    import math

    if stats is None:
        raise TomosegError(f"{volume.path}: gray values are too large to process (their squares overflow); rescale "
                           "the volume, e.g. to float32 or uint16")
    if not (math.isfinite(stats.mean) and math.isfinite(stats.std)) or abs(stats.mean) + 10 * stats.std > FLOAT32_MAX:
        raise TomosegError(f"{volume.path}: gray values are too large to process (mean {stats.mean:.3g}, s.d. "
                           f"{stats.std:.3g}; float32 holds up to {FLOAT32_MAX:.3g}); rescale the volume, e.g. "
                           "to float32 or uint16")


@recording
def segment(input, output, *, model=None, mask_output=None, options: SegmentOptions | None = None,
            progress: bool = True) -> dict:
    """Segment a volume file: the probability map (uint8 0–255) and optionally the mask (> threshold).

    Parameters
    ----------
    input : path
        Any supported volume.
    output : path
        Probability map, any supported format (Zarr is the natural choice for large volumes).
    model : UNet3D or path, optional
        The shipped default model if None.
    mask_output : path, optional
        Binary mask (uint8 0/1): probability > ``options.threshold``.
    options : SegmentOptions, optional
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        The provenance record, also written beside the output (``OUTPUT.provenance.json``; for a dataset of an
        HDF5 file ``FILE#DATASET.provenance.json``: :func:`~tomoseg.io.output_guard.provenance_path`).
    """
    from .domain import (GraySample, check_depth, check_histogram, check_model_threshold, check_normalization,
                         check_voxel_size)
    from .gray_checks import SliceRanges, check_gray_values

    from ..errors import checked_options

    for name, path in (("input", input), ("output", output), ("mask_output", mask_output)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TomosegError(f"{name}: segment reads and writes files: give a path, not a {type(path).__name__} "
                               "(tomoseg.inference.predict segments an array in memory)")
    options = checked_options(options, SegmentOptions)
    t0 = time.time()
    laps = Laps(t0)  # the stages' parts (timings_detail_s): where a run's seconds go, beyond the four stages
    distributed = bool(options.workers or options.scheduler or options.gpus)
    if distributed:  # workers run in folders of their own: every path they are sent is absolute
        input, output = _absolute(input), _absolute(output)
        mask_output = _absolute(mask_output) if mask_output else mask_output  # (the sample mask is read here)
    outputs = [str(output)] + ([str(mask_output)] if mask_output else [])
    mask_file = None if str(options.sample_mask) in ("auto", "off") else options.sample_mask
    work = work_dir_for(output)
    check_not_running(work)  # another invocation running this run now: refused before any work (review DK3)
    saved = read_saved_state(work, options)  # the interrupted run's state (--resume), read once
    # outputs the interrupted run already finished (its finish step cut short): kept, not refused, on --resume
    finished = finished_outputs(saved)
    pending = [out for out in outputs if out not in finished]
    check_output_paths(input, pending, options.overwrite, sample_mask=mask_file)
    volume = open_volume(input, voxel_size=options.voxel_size)
    try:
        check_output_paths(input, pending, options.overwrite, volume, sample_mask=mask_file)
    except TomosegError:
        volume.close()
        raise
    laps("open_and_check_paths")
    model = _model_or_default(model)
    laps("model")
    options = replace(options, objects=options.objects or model_objects(model))
    if options.gpus:
        options = replace(options, backend=replace(options.backend, device=_check_gpus(options.gpus)))
    elif options.workers and not options.scheduler:
        _check_workers(options.workers)
    client = own_client = reports = None
    if options.scheduler:  # before the work folder: a scheduler that cannot be reached leaves nothing behind;
        from .distributed import open_cluster  # its workers checked, the backend and device decided there

        client, own_client, reports = open_cluster(options.scheduler, volume, work.parent, options.backend)
        backend_name, device = reports[0].backend, reports[0].device
        options = replace(options, backend=replace(options.backend, backend=backend_name, device=device))
    else:
        backend_name, device = resolve(options.backend)
    try:
        given = options.tiling.tile_size
        options = replace(options, tiling=resolve_tiling(options.tiling, volume.shape, model.config.divisor,
                                                         device=device, precision=options.backend.precision,
                                                         base_features=model.config.base_features,
                                                         backend=backend_name))
        _note_rounded(given, options.tiling.tile_size, options.tiling.halo, model.config.divisor)
        if device == "cpu" and reports:  # each worker's threads' windows against its memory limit
            from .cluster_probe import check_worker_memory

            check_worker_memory(reports, volume.shape, options.tiling, model.config.divisor, backend_name,
                                model.config.base_features)
        elif not distributed and device == "cpu":  # the windows' network against the memory this process may take
            check_memory(volume.shape, options.tiling, model.config.divisor, backend_name,
                         model.config.base_features)
        elif options.workers and device == "cpu":  # a local cluster: each worker's share of the memory (DK6)
            check_local_workers_memory(options.workers, volume.shape, options.tiling, model.config.divisor,
                                       backend_name, model.config.base_features)
        check_voxel_size(volume, model)
        check_normalization(model)
        check_model_threshold(model, options.threshold)
        check_depth(volume)
        laps("checks")
    except BaseException:
        if own_client:
            client.close()
        raise
    fingerprint = run_fingerprint(volume, model, options, f"{backend_name}-{device}", bool(mask_output))
    heartbeat = None  # this invocation's sign, in the work folder, that it runs the run (review DK3)
    try:
        state = prepare_work(work, fingerprint, options, state=saved)
        if state is not None:
            heartbeat = Heartbeat(work).start()
        bar = _progress_bar(progress, volume.size)
        laps("work_folder")
        backend = None if distributed else make_backend(model, options.backend)
        # prepared (OpenVINO's compiled shape, cuDNN's libraries) while the first pass reads the volume
        ready = None if distributed else prepare_meanwhile(
            backend, _first_window(volume.shape, options.tiling, model.config.divisor))
        copy = resident_copy(volume, backend, options) if state is None else None
        binning = getattr(backend, "summarize_for", None)  # the backend's binning (the CUDA one's, on its GPU)
        laps("backend")
        if state is None:
            try:
                slices = SliceRanges(volume.shape[0], int(volume.shape[1]) * int(volume.shape[2]))
                grays = GraySample(volume.size, int(volume.shape[2]))
                stats, sample = first_pass(volume, options, model.config.divisor, bar, copy, slices, grays,
                                           summarize=binning(copy) if binning else None, laps=laps)
            except TomosegError:
                if bar is not None:
                    bar.close()
                raise
            distance = check_histogram(volume, stats, model, grays.values())
            check_gray_values(stats, volume.path, options.fill_value, slices)
            laps("gray_value_checks")
        else:
            sample = _saved_sample_mask(options, work, state, volume.shape)
            add_invocation(work, state, t0)
        resident = None  # the volume in memory (host or the GPU's), where kept: the windows' source
        if copy is not None and copy.complete:
            resident = copy if hasattr(copy, "window") else copy.array
        tiles = tile_grid(volume.shape, options.tiling, model.config.divisor, region=sample.box) if sample.box else []
        fresh = state is None
        if not fresh:
            check_done(work, len(tiles))
        else:
            state = _make_work_folder(work, volume, model, options, bool(mask_output), sample, {
                "fingerprint": fingerprint, "stats": stats.to_dict(), "started": t0,
                "histogram_distance": None if distance is None else round(float(distance), 4),
                "sample": {"settings": _sample_settings(options, volume.shape), "record": sample.record}})
            heartbeat = Heartbeat(work).start()
        stats = Stats(**state["stats"])
        done = {int(n) for n in os.listdir(work / "done")}
        skipped = {t.index for t in tiles if not sample.touches(t.core)}
        if not fresh:  # finished tiles whose output chunks went missing are computed again, never left as holes
            stores = [name for name, out in (("prob", output), ("mask", mask_output))  # those not yet put in place
                      if out and str(out) not in state.get("finished", {})]
            lost = lost_tiles(work, [t for t in tiles if t.index in done - skipped], stores)
            for i in lost:
                (work / "done" / str(i)).unlink()
            done -= set(lost)
            if lost:
                from ..errors import warn

                warn(f"{work}: {len(lost)} finished tile{'s' if len(lost) > 1 else ''} had lost output chunks "
                     "(a crash or the file system); computed again")
        for i in skipped - done:  # wholly outside the sample: probability 0, the work store's fill value
            (work / "done" / str(i)).touch()
            done.add(i)
        todo = [t for t in tiles if t.index not in done]
        job = TileJob(volume=volume, shape=volume.shape, model_path=str(work / "model.safetensors"),
                      model_sha256=fingerprint["model_sha256"], stats=stats, tiling=options.tiling,
                      backend=options.backend, threshold=options.threshold, work=str(work),
                      write_mask=bool(mask_output),
                      keep=tuple((b.start, b.stop) for b in sample.box) if options.roi is not None and sample.box
                      else None)
        if bar is not None:
            bar.reset(total=volume.size, desc="segment")  # its first line says what a resumed run had done
            outside = volume.size - sum(t.voxels for t in tiles)  # beyond the sample's box: no tiles at all
            before = outside + sum(t.voxels for t in tiles if t.index in done)
            if hasattr(bar, "skip"):  # Progress.skip: not in the rate nor the time left (review K5)
                bar.skip(before, resumed=not fresh)
            else:
                bar.update(before)
        laps("tile_plan")  # the tiles, the work folder's state, the done markers
        try:
            if distributed:
                from .distributed import run_distributed

                from .cluster_probe import software_of

                run_distributed(job, todo, workers=options.workers or options.gpus, scheduler=options.scheduler,
                                gpus=options.gpus, progress=bar, client=client,
                                software=software_of(reports[0]) if reports else None)
            else:
                try:
                    ready.result()
                    laps("backend_ready")
                    run_tiles(job, todo, backend=backend, progress=bar, source=resident)
                except (MemoryError, RuntimeError) as exc:  # an allocation of the network's, in one line
                    if not is_out_of_memory(exc):
                        raise
                    raise out_of_memory_error(exc, volume.shape, options.tiling, model.config.divisor, backend_name,
                                              model.config.base_features) from None
        finally:
            if bar is not None:
                bar.close()
        laps("tiles")
        t_finish = time.time()
        missing = len(tiles) - len(os.listdir(work / "done"))
        if missing:
            raise TomosegError(f"{work}: {missing} tiles were not computed; run again with --resume")
        check_input_unchanged(volume, fingerprint)
        prob_store = work / "prob.zarr" if (work / "prob.zarr").exists() else str(output)  # moved there: finished
        flooding = check_flooding(prob_store, options.threshold, str(output),
                                  objects_per_slice(work, tiles, skipped, volume.shape))
        laps("flooding_check")
        levels = {}
        for name, store, out, pyramid in [("probability", "prob.zarr", output, "mean")] + (
                [("mask", "mask.zarr", mask_output, "mode")] if mask_output else []):
            done_levels = state.get("finished", {}).get(str(out))
            if done_levels is None or not split_dataset(out)[0].exists():
                if not (work / store).exists():
                    raise TomosegError(f"{out}: was finished by the interrupted run and has since been removed "
                                       "(its work store with it); run again with --overwrite")
                finishing = _finish_bar(progress, out, volume.size)
                try:
                    done_levels = finish_output(work / store, str(out), volume.shape, volume.voxel_size,
                                                options.overwrite, pyramid=pyramid, orientation=volume.orientation,
                                                progress=finishing)
                except TomosegError as exc:  # a failed write (disk full ...): the computed tiles are kept
                    raise TomosegError(f"{exc}; the same command with --resume writes it from the computed "
                                       "tiles, kept in the work folder") from None
                finally:
                    if finishing is not None:
                        finishing.close()
                state.setdefault("finished", {})[str(out)] = done_levels  # a cut finish resumes from here
                write_state(work, state)
            levels[name] = done_levels
        laps("outputs")
        record = provenance(volume, model, options, fingerprint, stats, outputs, len(tiles), t0)
        record["timings_s"] = laps.stages()  # this invocation's
        record["timings_detail_s"] = laps.rounded()  # ... its parts, in order (docs/segment.md)
        # every invocation of the run (one, or the interrupted ones and their resumes)
        record["invocations"] = invocations(work, state, [t.index for t in tiles if t.index not in skipped],
                                            t_finish)
        record["input_in_memory"] = resident is not None  # windows read from resident_copy
        record["input_on_device"] = hasattr(resident, "window")  # ... kept on the GPU (device_volume)
        if reports:  # the workers of --dask-scheduler, as checked before the work (host and packages: theirs)
            record["distributed"]["workers_checked"] = [r.record() for r in reports]
        record["resolution_levels"] = levels
        record["objects"] = flooding
        # the input's normalized histogram against the model's training data's (total variation, 0-1; None:
        # the model records none); above 0.5 segment warned (domain.check_histogram)
        record["normalization"]["histogram_distance"] = state.get("histogram_distance")
        record["sample_mask"] = {**sample.record, "tiles_computed": len(tiles) - len(skipped),
                                 "voxels_computed": int(sum(t.voxels for t in tiles if t.index not in skipped)),
                                 "outside": "probability 0, network not run"}
        record = write_provenance(output, record)  # beside the output; a dataset of an HDF5 file has its own
        if mask_output:  # the mask has its own record (the same run; ``written`` names which output it is)
            write_provenance(mask_output, {**record, "written": "mask"})
        volume.close()
        shutil.rmtree(work)
        return record
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        if own_client:
            client.close()


def _absolute(path) -> str:
    """``path`` made absolute against this process's folder, a ``file.h5:/dataset`` or ``store.zarr:NAME``
    suffix kept as it is (``..`` and symlinks are left: the workers resolve them as this process would)."""
    text = os.fspath(path)
    if os.path.isabs(text):
        return text
    return os.path.join(os.getcwd(), text)


def _both(*visitors):
    """One ``visit`` callable for the statistics pass that calls each visitor given (None where none is)."""
    visitors = [v for v in visitors if v is not None]
    if not visitors:
        return None
    if len(visitors) == 1:
        return visitors[0]

    def visit(block, data):
        for v in visitors:
            v(block, data)
    return visit


RESIDENT_SHARE = 8          # a copy in memory of at most 1/8 of the available memory...
RESIDENT_MAX = 16 << 30     # ...and 16 GiB


def resident_copy(volume, backend, options: SegmentOptions, available: int | None = None):
    """A copy of the volume for the statistics pass to fill, where ``backend`` asks for one (``resident_input``:
    the CUDA backend) and the pass reads every voxel (``--stats`` full or auto below its limit): on the backend's
    device where it offers one that fits (``resident_on_device``: the CUDA backend's
    :class:`~.device_volume.DeviceVolume`), else a :class:`~tomoseg.io.blocks.BlockCopy` in host memory where the
    volume takes at most 1/8 of the available memory (``available``, default psutil's) and 16 GiB; else None.
    The CPU backends never ask: their network is slower than reading, and their peak memory stays that of one
    window, whatever the volume."""
    from ..io.blocks import BlockCopy

    if backend is None or not getattr(backend, "resident_input", False) \
            or stats_method(options.stats, int(volume.size)) != "full":
        return None
    on_device = getattr(backend, "resident_on_device", None)
    device_copy = on_device(volume.shape, volume.dtype) if on_device else None
    if device_copy is not None:
        return device_copy
    nbytes = int(volume.size) * np.dtype(volume.dtype).itemsize
    available = _available_memory() if available is None else available
    if available is None or nbytes > min(available // RESIDENT_SHARE, RESIDENT_MAX):  # no figure: no copy
        return None
    return BlockCopy(volume.shape, volume.dtype)


def _available_memory(which: str = "available") -> int | None:
    """The memory available to this process (:func:`tomoseg.host_memory.available_memory`: the least of psutil's
    figure, a cgroup's limit and ``ulimit -v``; ``which="total"``: the machine's, psutil's), or None where it
    cannot be had."""
    if which == "available":
        from ..host_memory import available_memory

        return available_memory()
    try:
        import psutil

        return int(getattr(psutil.virtual_memory(), which))
    except Exception:  # noqa: BLE001 - psutil missing or the platform's figure unreadable
        return None


def _first_window(shape, tiling: TilingConfig, divisor: int) -> tuple:
    """The shape of the first read window of a run without a sample mask (that of most runs with one)."""
    return tuple(r.stop - r.start for r in tile_grid(shape, tiling, divisor)[0].read)


WORKER_MEMORY = 2 << 30  # the least a CPU worker needs: a window of the default tiles takes 3-4 GB at peak


def _check_workers(workers: int, cores: int | None = None, memory: int | None = None) -> None:
    """A local cluster of ``workers`` CPU processes: at most one per core (more only compete for the cores), and
    each with its share of the memory above :data:`WORKER_MEMORY` (Dask kills a worker past its share: 64
    workers on 23 GiB ended in a KilledWorker traceback after minutes)."""
    if cores is None:
        from ..io.blocks import usable_cores

        cores = usable_cores()
    memory = _available_memory("total") if memory is None else memory  # no figure: the cores alone decide
    fit = cores if memory is None else max(1, min(cores, memory // WORKER_MEMORY))
    if workers > fit:
        share = f"; each would get {memory / workers / 2**30:.2f} GiB of the {memory / 2**30:.0f} GiB" \
            if memory else ""
        raise TomosegError(f"--workers {workers}: this machine has {cores} core{'s' if cores > 1 else ''}{share}; "
                           f"use at most {fit} (one worker per core, {WORKER_MEMORY >> 30} GiB each)")


def _check_gpus(gpus: int) -> str:
    """The device of a ``--gpus`` run, once this machine is known to have that many CUDA GPUs."""
    from .backends import cuda_available

    have = 0
    if cuda_available():
        import torch

        have = torch.cuda.device_count()
    if gpus > have:
        raise TomosegError(f"--gpus {gpus}: this machine has {have} CUDA GPU{'s' if have != 1 else ''} visible to "
                           "PyTorch; give at most that many (CUDA_VISIBLE_DEVICES chooses which)")
    return "cuda"


def _note_rounded(given: int | None, used: int, halo: int, divisor: int) -> None:
    """Say once, on stderr, that the tile size the user gave (or the halo) was rounded up to the network's divisor
    (it was recorded in the provenance only): the windows, and the memory they take, are those of the larger
    size."""
    from .tiling import round_up

    if given is not None and used != given:
        note(f"tile size {given} rounded up to {used}, a multiple of the network's divisor {divisor}")
    if halo % divisor:
        note(f"halo {halo} rounded up to {round_up(halo, divisor)}, a multiple of the network's divisor {divisor}")


def _sample_settings(options: SegmentOptions, shape) -> dict:
    """The sample mask or ROI of a run as what they resolve to, for a resume to compare: a mask file's resolved
    path, an ROI's box in this volume (``0:64,:,:`` and ``:64,0:,:`` are one box)."""
    from ..sample_mask import parse_roi

    mask = str(options.sample_mask)
    roi = None if options.roi is None else [[b.start, b.stop] for b in parse_roi(options.roi, shape)]
    return {"sample_mask": mask if mask in ("auto", "off") else resolved_path(mask), "roi": roi}


def _settings_as_resolved(settings, shape):
    """Saved sample settings made comparable where an earlier tomoseg wrote them as typed (the ROI's text, the
    mask file's path: resolved against this folder); those written as resolved are unchanged by this."""
    from ..sample_mask import parse_roi

    if not isinstance(settings, dict):
        return settings
    mask, roi = settings.get("sample_mask"), settings.get("roi")
    if isinstance(mask, str) and mask not in ("auto", "off"):
        mask = resolved_path(mask)
    if isinstance(roi, str):
        try:
            roi = [[b.start, b.stop] for b in parse_roi(roi, shape)]
        except TomosegError:  # not a box of this volume: not this run's either
            pass
    return {**settings, "sample_mask": mask, "roi": roi}


def first_pass(volume, options: SegmentOptions, divisor: int, bar, copy=None, slices=None, grays=None,
                named=None, summarize=None, laps=None):
    """The normalization statistics and the sample mask, from one read of the volume where both need one; that
    read also fills ``copy`` (a :class:`~tomoseg.io.blocks.BlockCopy`), ``slices`` (a
    :class:`.gray_checks.SliceRanges`) and ``grays`` (a :class:`.domain.GraySample`) where given. ``named``:
    what the messages name the volume by (its ``path``), for an array in memory (the napari Segment widget's).
    ``summarize``: the backend's binning of a block, where it has one (the CUDA backend's, on the GPU); ``laps``
    (a :class:`Laps`) times the statistics and the mask apart."""
    from ..sample_mask import LowResolution, end_layers, mask_factor

    low = sample = slabs = None
    ends = []  # layers the mask reads that the statistics do not: the ends of a sampled volume
    if stats_method(options.stats, volume.size) == "sample":  # the mask takes its slices from the same layers
        slabs = sample_slabs(volume.shape, storage_chunks(volume), SAMPLE_FRACTION)
    if options.roi is None and options.sample_mask == "auto" and min(volume.shape[1:]) >= 64:
        if slabs is not None:
            ends = end_layers(volume.shape, storage_chunks(volume), slabs)
        low = LowResolution(volume.shape, mask_factor(volume.shape), slabs=None if slabs is None else slabs + ends)
    else:  # an ROI, a mask file or none: checked before the long read
        sample = _new_sample_mask(volume, options, divisor)
    if bar is not None:
        if slabs is None:
            bar.set_description("statistics")
        else:  # the bar ends where the sample does, not at a few per cent of the volume
            slice_voxels = int(volume.shape[1]) * int(volume.shape[2])
            bar.reset(total=sum(s.stop - s.start for s in slabs) * slice_voxels, desc="statistics (sample)")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below, with a message
            stats = volume_stats(volume, method=options.stats, progress=bar, visit=_both(low, copy, slices, grays),
                                 multiple=low.factor if low is not None else 1, slabs=slabs,
                                 fill=options.fill_value, objects=options.objects or "dark", summarize=summarize)
    except OverflowError:
        stats = None
    _check_stats(stats, named or volume)
    if laps is not None:
        laps("statistics")
    if ends:  # for the mask alone: the statistics leave the ends out (review SM6)
        with np.errstate(over="ignore", invalid="ignore"):  # as in the pass: non-finite blocks handled below
            low.read(volume, ends)
    if low is not None and (stats.nodata or not np.isfinite(low.low).all()):
        _as_background(low.low)
    if sample is None:
        sample = _new_sample_mask(volume, options, divisor, low if low.complete else None)
    if laps is not None:
        laps("sample_mask")
    return stats, sample


class Laps:
    """Seconds between named points of a run, in order: ``laps("model")`` ends the part called "model", begun at
    the last point (or at ``t0``)."""

    def __init__(self, t0: float):
        self.last, self.parts = t0, {}

    def __call__(self, name: str) -> None:
        now = time.time()
        self.parts[name] = self.parts.get(name, 0.0) + now - self.last
        self.last = now

    def rounded(self) -> dict:
        return {k: round(v, 3) for k, v in self.parts.items()}

    def stages(self) -> dict:
        """The seconds of each of :data:`STAGES` that ran (a resumed run has no statistics), from their parts."""
        return {stage: round(sum(self.parts.get(k, 0.0) for k in parts), 3) for stage, parts in STAGES.items()
                if any(k in self.parts for k in parts)}


# segment's four stages (the provenance's timings_s) and the parts each is made of (timings_detail_s)
STAGES = {"start": ("open_and_check_paths", "model", "checks", "work_folder", "backend"),
          "statistics_and_sample_mask": ("statistics", "sample_mask", "gray_value_checks"),
          "tiles": ("backend_ready", "tiles"), "finish": ("flooding_check", "outputs")}


def _as_background(low: np.ndarray) -> None:
    """The sample mask's low-resolution copy with its NaN and infinities (blocks holding a voxel without data:
    outside the reconstructed cylinder) set to its lowest finite value, so the mask takes them for the dark
    surroundings rather than failing on them."""
    finite = np.isfinite(low)
    low[~finite] = low[finite].min() if finite.any() else 0


def _saved_sample_mask(options: SegmentOptions, work: Path, state: dict, shape):
    """The sample mask of the interrupted run (saved in its work folder), so a resumed run skips the same tiles;
    refused where this run asks for another (compared as resolved: :func:`_sample_settings`)."""
    from ..sample_mask import SampleMask, file_sample_mask

    saved = state.get("sample") or {}
    if _settings_as_resolved(saved.get("settings"), shape) != _sample_settings(options, shape) \
            or not (work / "sample_mask.npz").exists():
        raise TomosegError(f"{work}: the interrupted run used another sample mask or ROI "
                           f"({saved.get('settings')}); pass --overwrite to start over")
    mask = SampleMask.load(work / "sample_mask.npz", saved["record"])
    if str(options.sample_mask) not in ("auto", "off") and options.roi is None:  # the file, as it is now (SM3)
        now = file_sample_mask(options.sample_mask, shape, factor=mask.factor,
                               margin=int(saved["record"].get("margin", 0)))
        if not np.array_equal(now.low, mask.low):
            raise TomosegError(f"--sample-mask {options.sample_mask}: changed since the interrupted run chose its "
                               "tiles with it; pass --overwrite to start over with the mask as it is now, or put "
                               "the mask back as it was to resume")
    return mask


def _new_sample_mask(volume, options: SegmentOptions, divisor: int, low=None):
    """The sample mask of a new run: the ROI, none, the user's mask file, or the automatic mask (from ``low``, the
    low-resolution copy collected by the statistics pass, where it saw every slice it needs)."""
    from ..sample_mask import all_sample, auto_sample_mask, file_sample_mask, roi_sample_mask
    from .tiling import round_up

    shape = tuple(volume.shape)
    if options.roi is not None:
        return roi_sample_mask(shape, options.roi)
    if options.sample_mask == "off":
        return all_sample(shape, "off")
    if options.sample_mask != "auto":  # grown by the halo, as the automatic mask (review SM1)
        return file_sample_mask(options.sample_mask, shape, margin=round_up(options.tiling.halo, divisor))
    if min(shape[1:]) < 64:
        return all_sample(shape, "auto: too small to tell sample from surroundings")
    return auto_sample_mask(volume, margin=round_up(options.tiling.halo, divisor), low=low)


def _finish_bar(enabled: bool, output, total: int):
    """The bar of an output's finish step (its conversion from the work store, or its pyramid), or None: where
    the output is a plain Zarr store (a rename) or progress is off."""
    from ..io import format_of

    name = split_dataset(output)[0].name
    if not enabled or (format_of(output, for_writing=True) == "zarr" and not name.lower().endswith(".ome.zarr")):
        return None
    from ..progress import progress_bar

    return progress_bar(True, total, desc=f"write {name}", resume_hint="The tiles are done: run the same command "
                                                                      "with --resume to write the outputs again.")


def _make_work_folder(work: Path, volume, model, options: SegmentOptions, with_mask: bool, sample,
                      state: dict) -> dict:
    """The work folder of a new run: its stores, the model, the sample mask and, last, ``state.json``. Where
    that fails (the disk full, Ctrl-C) the folder, which holds no finished tile yet, is removed: left, it made the
    next run refuse to start ("an interrupted run left its work here") with nothing to resume (review C3)."""
    try:
        work.mkdir()
    except FileExistsError:  # made meanwhile by another invocation (two runs at once): theirs, not removed
        raise TomosegError(f"{work}: another tomoseg started a run into this output meanwhile (two runs at once?); "
                           "wait for it to finish, or stop it first (then --resume continues its work)") from None
    try:
        (work / "done").mkdir()
        chunks = (options.tiling.chunk(model.config.divisor),) * 3  # cores are unions of whole chunks
        # the input's origin (an OME-Zarr translation, an axis-aligned NRRD's space origin) kept by Zarr outputs
        for name in ["prob"] + (["mask"] if with_mask else []):
            create_zarr(work / f"{name}.zarr", volume.shape, np.uint8, voxel_size=volume.voxel_size, chunks=chunks,
                        name=name, origin=origin_of(volume))
        model_path = work / "model.safetensors"
        if hasattr(model, "state_dict"):
            from ..checkpoint import save_model

            save_model(model, model_path, getattr(model, "metadata", None))
        else:  # a ModelFile: the file itself
            _copy_model(model.path, model_path)
        sample.save(work / "sample_mask.npz")
        write_state(work, state)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return state


def _copy_model(source, target: Path) -> None:
    """``shutil.copyfile``, whose write errors name the file written: shutil's name the source (the disk full
    while copying the shipped model into the work folder read "the disk is full writing .../weights/
    default.safetensors", the disk of the package, not of the output)."""
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS) and exc.filename != str(target):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise


def _progress_bar(enabled: bool, total: int):
    from ..progress import progress_bar

    return progress_bar(enabled, total, resume_hint="Finished tiles are kept: run the same command with --resume "
                                                    "to continue where it stopped.")

