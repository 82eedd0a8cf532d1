"""Segmentation of volumes of any size in bounded memory.

Three parts kept apart (as MONAI does): where the tiles are (:mod:`.tiling`),
how tile results are stitched (each tile writes only its core, one output chunk,
so tiles never overlap in the output), and the model (a backend callable).

``predict`` works on a NumPy array in memory; ``segment`` streams a volume file
to output files, records finished tiles so a killed run resumes where it
stopped, and renames the results into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import TomosegError
from ..io import create_volume, format_of, open_volume, split_dataset
from ..io.zarr_store import create_zarr
from .backends import BackendConfig, make_backend, resolve
from .normalization import Stats, normalize, volume_stats
from .tiling import Tile, TilingConfig, pad_to_divisor, read_padded, round_up, tile_grid

WORK_SUFFIX = ".tomoseg-run"


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

    def __post_init__(self):
        if not isinstance(self.threshold, int) or not 0 <= self.threshold <= 254:
            raise TomosegError(f"threshold {self.threshold!r} must be an integer from 0 to 254 (0-255 scale)")
        if self.stats not in ("auto", "full", "sample"):
            raise TomosegError(f"stats {self.stats!r} must be auto, full or sample")


def to_uint8(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] to the paper's 0–255 scale."""
    return np.rint(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)


def _model_or_default(model):
    from ..checkpoint import load_model

    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model.eval()


def predict_tile(volume, tile: Tile, stats: Stats, backend, shape, pad_mode: str) -> np.ndarray:
    """Probabilities (float32) of one tile's core."""
    data = normalize(read_padded(volume, tile.read, shape, pad_mode), stats)
    prob = backend(data[None, None])[0, 0]
    return prob[tile.core_in_read]


def predict(image: np.ndarray, model=None, *, tiling: TilingConfig | None = None,
            backend: BackendConfig | None = None, stats: Stats | None = None) -> np.ndarray:
    """Object probabilities (float32, [0, 1]) of a volume in memory, tile by tile.

    Parameters
    ----------
    image : ndarray (z, y, x)
    model : UNet3D, path, or None for the shipped default
    tiling : TilingConfig, optional
    backend : BackendConfig, optional
    stats : Stats, optional
        Normalization statistics; by default those of ``image``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise TomosegError(f"image must be 3D (z, y, x), got shape {image.shape}")
    model = _model_or_default(model)
    tiling = tiling or TilingConfig()
    stats = stats or volume_stats(image)
    run = make_backend(model, backend or BackendConfig())
    out = np.empty(image.shape, np.float32)
    for tile in tile_grid(image.shape, tiling, model.config.divisor):
        out[tile.core] = predict_tile(image, tile, stats, run, image.shape, tiling.pad_mode)
    return out


def predict_whole(image: np.ndarray, model=None, *, backend: BackendConfig | None = None,
                  stats: Stats | None = None, pad_mode: str = "reflect") -> np.ndarray:
    """The reference: one pass of the model over the whole (padded) volume, as the paper's code does."""
    image = np.asarray(image)
    model = _model_or_default(model)
    stats = stats or volume_stats(image)
    data = normalize(pad_to_divisor(image, model.config.divisor, pad_mode), stats)
    prob = make_backend(model, backend or BackendConfig())(data[None, None])[0, 0]
    return prob[tuple(slice(0, s) for s in image.shape)]


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


_BACKENDS: dict = {}


def _backend_for(job: TileJob):
    key = (job.model_sha256, job.backend)
    if key not in _BACKENDS:
        from ..checkpoint import load_model

        _BACKENDS.clear()
        _BACKENDS[key] = make_backend(load_model(job.model_path), job.backend)
    return _BACKENDS[key]


def run_tiles(job: TileJob, tiles: list[Tile], backend=None, progress=None) -> int:
    """Compute ``tiles`` and write their cores; a tile counts as done once its marker file exists.

    Reading the next tile and writing the last overlap with the model's work.
    """
    import zarr

    backend = backend or _backend_for(job)
    work = Path(job.work)
    prob_arr = zarr.open_array(str(work / "prob.zarr"), path="0", mode="r+")
    mask_arr = zarr.open_array(str(work / "mask.zarr"), path="0", mode="r+") if job.write_mask else None
    done_dir = work / "done"

    def read(tile):
        return normalize(read_padded(job.volume, tile.read, job.shape, job.tiling.pad_mode), job.stats)

    def write(tile, prob):
        p8 = to_uint8(prob)
        prob_arr[tile.core] = p8
        if mask_arr is not None:
            mask_arr[tile.core] = (p8 > job.threshold).astype(np.uint8)
        (done_dir / str(tile.index)).touch()
        if progress is not None:
            progress.update(int(np.prod(p8.shape)))

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        pending_write = None
        next_read = reader.submit(read, tiles[0]) if tiles else None
        for i, tile in enumerate(tiles):
            data = next_read.result()
            next_read = reader.submit(read, tiles[i + 1]) if i + 1 < len(tiles) else None
            prob = backend(data[None, None])[0, 0][tile.core_in_read]
            if pending_write is not None:
                pending_write.result()
            pending_write = writer.submit(write, tile, prob)
        if pending_write is not None:
            pending_write.result()
    return len(tiles)


def _fingerprint(volume, model, options: SegmentOptions, backend_name: str, write_mask: bool) -> dict:
    from .fingerprint import input_fingerprint

    file, _ = split_dataset(volume.path)
    stat = file.stat() if file.exists() and file.is_file() else None
    return {
        "input": str(volume.path.resolve() if not str(volume.path).count(":") else volume.path),
        "input_shape": list(volume.shape), "input_dtype": str(volume.dtype),
        "input_bytes": stat.st_size if stat else None,
        "input_content": input_fingerprint(volume, volume.path),
        "model_sha256": getattr(model, "sha256", None), "threshold": options.threshold,
        "tiling": asdict(options.tiling), "backend": backend_name, "precision": options.backend.precision,
        "stats_method": options.stats, "write_mask": write_mask,
    }


def _check_paths(input_path, outputs, overwrite: bool, volume=None) -> None:
    """Every output checked before any work: path, format and type, writable, replaceable, free space."""
    from ..io import check_output_format
    from ..io.output_guard import (UNCOMPRESSED, check_free_space, check_output, check_writable_folder,
                                   output_bytes, warn_if_short)

    in_file, _ = split_dataset(input_path)
    in_file = in_file.resolve()
    seen = set()
    need: dict = {}
    for out in outputs:
        f, _ = split_dataset(out)
        fmt = format_of(out, for_writing=True)
        if f.resolve() == in_file:
            raise TomosegError(f"{out}: output path equals the input (tomoseg never writes into the input file); "
                               "choose another output path")
        if in_file.is_dir() and in_file in f.resolve().parents:
            raise TomosegError(f"{out}: is inside the input folder {in_file}; writing there would change the input "
                               "(a new slice in a folder of slices); choose an output outside it")
        if f.resolve() in seen:
            raise TomosegError(f"{out}: the probability map and the mask need different paths")
        seen.add(f.resolve())
        check_writable_folder(f.parent)
        check_output(out, overwrite=overwrite, input_shape=None if volume is None else volume.shape,
                     input_path=input_path)
        if volume is not None:
            check_output_format(out, np.uint8, volume.shape)
            if fmt in UNCOMPRESSED:
                dev = f.parent.resolve()
                need[dev] = need.get(dev, 0) + output_bytes(volume.shape, np.uint8)
    for folder, nbytes in need.items():
        check_free_space(folder, nbytes, what="the uncompressed output")
    if volume is not None:  # the work stores (compressed Zarr) beside the output
        warn_if_short(split_dataset(outputs[0])[0].parent, len(outputs) * output_bytes(volume.shape, np.uint8),
                      what="the work stores")


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


def work_dir_for(output) -> Path:
    f, _ = split_dataset(output)
    return f.with_name(f.name + WORK_SUFFIX)


def _read_state(state_file: Path) -> dict:
    try:
        state = json.loads(state_file.read_text())
        state["fingerprint"], state["stats"]  # noqa: B018 - the keys a resume needs
    except (OSError, ValueError, KeyError, TypeError):
        raise TomosegError(f"{state_file}: the interrupted run's state is damaged (truncated or not tomoseg's); "
                           "pass --overwrite to start over") from None
    return state


def _check_done(work: Path, n_tiles: int | None) -> None:
    stray = [n for n in os.listdir(work / "done")
             if not n.isdigit() or (n_tiles is not None and int(n) >= n_tiles)]
    if stray:
        raise TomosegError(f"{work / 'done'}: holds {stray[0]!r}, which is not a finished-tile marker of this run; "
                           "remove it, or pass --overwrite to start over")


def _prepare_work(work: Path, fingerprint: dict, options: SegmentOptions, n_tiles: int | None = None) -> dict | None:
    """Return the saved state of an interrupted run to resume, or None to start afresh."""
    from .fingerprint import changes

    state_file = work / "state.json"
    if work.exists():
        if options.resume and state_file.exists():
            state = _read_state(state_file)
            saved = state["fingerprint"]
            if isinstance(saved, dict) and saved.get("input_content") != fingerprint["input_content"]:
                what = ", ".join(changes(saved.get("input_content"), fingerprint["input_content"]))
                raise TomosegError(f"{work}: the input {fingerprint['input']} changed since the interrupted run "
                                   f"({what}); resuming would mix tiles of two scans. Pass --overwrite to start over")
            if saved != fingerprint:
                diff = sorted(k for k in fingerprint if not isinstance(saved, dict) or saved.get(k) != fingerprint[k])
                raise TomosegError(f"{work}: the interrupted run used other settings ({', '.join(diff)}); "
                                   "pass --overwrite to start over")
            if (work / "done").is_dir():
                _check_done(work, n_tiles)
            return state
        if not options.overwrite and not options.resume:
            raise TomosegError(f"{work}: an interrupted run left its work here; pass --resume to continue it "
                               "or --overwrite to start over")
        shutil.rmtree(work)
    return None


def _check_input_unchanged(volume, fingerprint: dict) -> None:
    """Refuse to finish when the input was modified during the run (tiles from two versions of it)."""
    from .fingerprint import changes, input_fingerprint

    now = input_fingerprint(volume, volume.path)
    if now != fingerprint["input_content"]:
        raise TomosegError(f"{volume.path}: the input changed while it was segmented "
                           f"({', '.join(changes(fingerprint['input_content'], now))}); the result would mix two "
                           "versions of it and is not written. Run again with --overwrite once the input is final")


def _finish_output(work_store: Path, final: str, shape, voxel_size, overwrite: bool,
                   threshold: int | None = None) -> None:
    """Move a finished work store to its final name, converting to the output's format if needed.

    With ``threshold``, warn when the probability map is flooded (see :mod:`.domain`).
    """
    import zarr

    from ..io.output_guard import check_output

    f, _ = split_dataset(final)
    src = zarr.open_array(str(work_store), path="0", mode="r")
    if threshold is not None:
        from .domain import check_flooding

        check_flooding(src, threshold, final)
    if format_of(final, for_writing=True) == "zarr":
        check_output(final, overwrite=overwrite)  # again: something may have appeared there during the run
        if f.exists():
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        os.replace(work_store, f)
        return
    step = max(1, int(src.chunks[0]))
    with create_volume(final, shape, np.uint8, voxel_size=voxel_size, overwrite=overwrite) as w:
        for z in range(0, shape[0], step):
            w[z:z + step] = src[z:z + step]


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
        The provenance record, also written to ``OUTPUT.provenance.json``.
    """
    from ..checkpoint import save_model

    from .domain import check_histogram, check_voxel_size

    options = options or SegmentOptions()
    t0 = time.time()
    outputs = [str(output)] + ([str(mask_output)] if mask_output else [])
    _check_paths(input, outputs, options.overwrite)
    volume = open_volume(input, voxel_size=options.voxel_size)
    try:
        _check_paths(input, outputs, options.overwrite, volume)
    except TomosegError:
        volume.close()
        raise
    model = _model_or_default(model)
    backend_name, device = resolve(options.backend)
    check_voxel_size(volume, model)
    fingerprint = _fingerprint(volume, model, options, f"{backend_name}-{device}", bool(mask_output))
    work = work_dir_for(output)
    tiles = tile_grid(volume.shape, options.tiling, model.config.divisor)
    state = _prepare_work(work, fingerprint, options, len(tiles))
    bar = _progress_bar(progress, volume.size)
    if state is None:
        if bar is not None:
            bar.set_description("statistics")
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below, with a message
                stats = volume_stats(volume, method=options.stats, progress=bar)
        except OverflowError:
            stats = None
        try:
            _check_stats(stats, volume)
        except TomosegError:
            if bar is not None:
                bar.close()
            raise
        check_histogram(volume, stats, model)
        work.mkdir()
        (work / "done").mkdir()
        chunks = (round_up(options.tiling.tile_size, model.config.divisor),) * 3  # one chunk per tile core
        for name in ["prob"] + (["mask"] if mask_output else []):
            create_zarr(work / f"{name}.zarr", volume.shape, np.uint8, voxel_size=volume.voxel_size, chunks=chunks,
                        name=name)
        model_path = work / "model.safetensors"
        save_model(model, model_path, getattr(model, "metadata", None))
        state = {"fingerprint": fingerprint, "stats": stats.to_dict(), "started": t0}
        (work / "state.json").write_text(json.dumps(state, indent=1))
    stats = Stats(**state["stats"])
    done = {int(n) for n in os.listdir(work / "done")}
    todo = [t for t in tiles if t.index not in done]
    job = TileJob(volume=volume, shape=volume.shape, model_path=str(work / "model.safetensors"),
                  model_sha256=fingerprint["model_sha256"] or "in-memory", stats=stats, tiling=options.tiling,
                  backend=options.backend, threshold=options.threshold, work=str(work),
                  write_mask=bool(mask_output))
    if bar is not None:
        bar.reset(total=volume.size)
        bar.set_description("segment")
        bar.update(sum(int(np.prod([s.stop - s.start for s in t.core])) for t in tiles if t.index in done))
    try:
        if options.workers or options.scheduler:
            from .distributed import run_distributed

            run_distributed(job, todo, workers=options.workers, scheduler=options.scheduler, progress=bar)
        else:
            run_tiles(job, todo, backend=make_backend(model, options.backend), progress=bar)
    finally:
        if bar is not None:
            bar.close()
    missing = len(tiles) - len(os.listdir(work / "done"))
    if missing:
        raise TomosegError(f"{work}: {missing} tiles were not computed; run again with --resume")
    _check_input_unchanged(volume, fingerprint)
    _finish_output(work / "prob.zarr", str(output), volume.shape, volume.voxel_size, options.overwrite,
                   threshold=options.threshold)
    if mask_output:
        _finish_output(work / "mask.zarr", str(mask_output), volume.shape, volume.voxel_size, options.overwrite)
    record = _provenance(volume, model, options, fingerprint, stats, outputs, len(tiles), t0)
    f, _ = split_dataset(output)
    prov = f.with_name(f.name + ".provenance.json")
    prov.write_text(json.dumps(record, indent=1))
    volume.close()
    shutil.rmtree(work)
    return record


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="vox", unit_scale=True, dynamic_ncols=True, smoothing=0.1)


def _provenance(volume, model, options, fingerprint, stats, outputs, n_tiles, t0) -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("numpy", "torch", "openvino", "zarr", "tifffile", "h5py", "dask", "distributed"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    meta = getattr(model, "metadata", {}) or {}
    return {
        "tool": "tomoseg segment", "tomoseg_version": __version__, "input": str(volume.path),
        "input_shape": list(volume.shape), "voxel_size_nm": list(volume.voxel_size) if volume.voxel_size else None,
        "outputs": {"probability": outputs[0], "mask": outputs[1] if len(outputs) > 1 else None},
        "probability_scale": "uint8 0-255 = probability x 255; object where value > threshold",
        "threshold": options.threshold,
        "model": {"sha256": fingerprint["model_sha256"], "architecture": model.config.to_dict(),
                  "trained_voxel_size_nm": meta.get("voxel_size_nm")},
        "normalization": {"method": "zscore", **stats.to_dict()},
        "tiling": {**asdict(options.tiling), "tiles": n_tiles}, "backend": fingerprint["backend"],
        "precision": options.backend.precision,
        "distributed": {"workers": options.workers, "scheduler": options.scheduler},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
        "duration_s": round(time.time() - t0, 3), "host": platform.node(), "python": platform.python_version(),
        "packages": versions,
    }
