"""The outputs of a ``segment`` run: checked before the work, finished (converted, pyramid, renamed) after it,
and described by a provenance record.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._version import __version__
from ..io import create_volume, format_of, split_dataset
from ..errors import TomosegError, said
from ..shipped import shipped_name


def check_output_paths(input_path, outputs, overwrite: bool, volume=None, *, sample_mask=None) -> None:
    """Every output checked before any work: path, format and type, writable, replaceable, free space.

    ``sample_mask``: the ``--sample-mask`` file, an input like ``input_path`` (no output may be it). The CLI's
    ``--labels`` (written after segment) is checked by the CLI against the same inputs.
    """
    from ..io import check_output_format
    from ..io.output_guard import check_output, check_outputs_apart
    from ..io.disk_space import UNCOMPRESSED, check_free_space, check_writable_folder, output_bytes, warn_if_short

    named = [(None if k == 0 else "--mask", out) for k, out in enumerate(outputs)]
    for opt, out in named:
        check_output_dataset_name(opt, out)
    # not an input (resolved: symlinks, hard links, '..'), not inside one, not each other (two datasets of one
    # HDF5 file are fine)
    check_outputs_apart(named, inputs=[(None, input_path), ("--sample-mask", sample_mask)])
    need: dict = {}
    for out in outputs:
        f, _ = split_dataset(out)
        fmt = format_of(out, for_writing=True)
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


def check_output_dataset_name(option, out) -> None:
    """An output ``file.h5:/dataset`` must name a dataset (not the file's root group); an output
    ``store.zarr:NAME`` is refused (segment writes an OME-Zarr image whose array is ``0``)."""
    text = str(out)
    where = f"{option} {text}" if option else text
    if text.endswith(":") and format_of(text[:-1], for_writing=True) == "hdf5":
        raise TomosegError(f"{where}: give a dataset name after the colon, e.g. {text}/prob")
    fmt = format_of(out, for_writing=True)
    f, dataset = split_dataset(out)
    if fmt == "hdf5" and dataset is not None and not dataset.strip("/"):
        raise TomosegError(f"{where}: give a dataset name after the colon, e.g. {f}:/prob (the file's root "
                           "group cannot hold the volume)")
    if fmt == "zarr" and dataset is not None:
        raise TomosegError(f"{where}: segment writes a whole Zarr store (an OME-Zarr image), not an array named "
                           f"inside one; give the store's path alone, e.g. {f}")


FINISH_BLOCK_VOXELS = 2**26  # the work store copied to another format in blocks of at most this (or a chunk row)


def finish_output(work_store: Path, final: str, shape, voxel_size, overwrite: bool,
                  pyramid: str = "mean", orientation: dict | None = None, progress=None) -> int:
    """Move a finished work store to its final name, converting to the output's format if needed; returns
    the number of resolution levels written.

    An output named ``.ome.zarr`` gets the downsampled levels of an OME-Zarr pyramid (``pyramid``: ``mean``
    for probabilities, ``mode`` for masks), built in the work store before it is renamed, so viewers open a
    large result at once. ``progress`` (a :class:`~tomoseg.progress.Progress`, or None) is given the voxels
    converted, or those read for the pyramid (a plain ``.zarr`` output is only renamed).
    """
    import zarr

    from ..io.output_guard import check_output

    f, _ = split_dataset(final)
    if format_of(final, for_writing=True) == "zarr":
        levels = _add_pyramid(work_store, pyramid, progress) if f.name.lower().endswith(".ome.zarr") else 1
        check_output(final, overwrite=overwrite)  # again: something may have appeared there during the run
        if f.exists():
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        os.replace(work_store, f)
        return levels
    from ..io.blocks import block_grid, read_ahead
    from ..io.zarr_chunks import parallel_reader

    src = parallel_reader(zarr.open_array(str(work_store), path="0", mode="r"))
    blocks = block_grid(shape, tuple(src.chunks), max_voxels=FINISH_BLOCK_VOXELS)  # whole chunk rows, bounded
    with create_volume(final, shape, np.uint8, voxel_size=voxel_size, overwrite=overwrite,
                       orientation=orientation) as w:
        for region, data in read_ahead(blocks, lambda region: np.asarray(src[region]), threads=2):
            w[region] = data  # the next block decompressed meanwhile
            if progress is not None:
                progress.update(int(data.size))
    return 1


def _add_pyramid(store: Path, method: str, progress=None) -> int:
    from ..errors import install_hint, warn
    from ..io.ome_zarr import add_pyramid, have_models

    if not have_models():
        warn(f"{store.name}: written with one resolution level: the OME-Zarr pyramid needs ome-zarr-models "
             f"({install_hint('ome-zarr-models')}; Python 3.11 to 3.13)")
        return 1
    return add_pyramid(store, method=method, progress=progress)


RUN_PACKAGES = ("numpy", "torch", "openvino", "zarr", "tifffile", "h5py", "dask", "distributed")


def package_versions(packages=RUN_PACKAGES) -> dict:
    """``{name: version}`` of the ``packages`` installed here (those missing left out): a run's provenance, and
    a Dask worker's report of itself (:mod:`.cluster_probe`)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return versions


def provenance(volume, model, options, fingerprint, stats, outputs, n_tiles, t0) -> dict:
    import platform

    versions = package_versions()
    meta = getattr(model, "metadata", {}) or {}
    of_file = fingerprint["model_sha256"] == getattr(model, "sha256", None)
    return {
        "tool": "tomoseg segment", "tomoseg_version": __version__, "input": str(volume.path),
        "input_content": fingerprint["input_content"],  # what `track --resume` compares before reusing the map
        "input_shape": list(volume.shape), "voxel_size_nm": list(volume.voxel_size) if volume.voxel_size else None,
        "outputs": {"probability": outputs[0], "mask": outputs[1] if len(outputs) > 1 else None},
        "probability_scale": "uint8 0-255 = round(probability x 255); object where value > threshold",
        "threshold": options.threshold,
        # sha256: the model file's while the weights are the file's, else the digest of the weights run
        # (model_file.model_identity): a model changed in memory is not its file, nor a shipped model
        # path: the file the weights are (review MF2), as given; resolved_paths.model: absolute
        "model": {"sha256": fingerprint["model_sha256"], "shipped": shipped_name(fingerprint["model_sha256"]),
                  "sha256_of": "file" if of_file else "weights in memory (tomoseg.model.weights_digest)",
                  "path": str(model.path) if of_file and getattr(model, "path", None) is not None else None,
                  "recipe": (meta.get("training") or {}).get("recipe"), "architecture": model.config.to_dict(),
                  "trained_voxel_size_nm": meta.get("voxel_size_nm")},
        # full: every voxel; sample: stratified chunk layers. objects: bright = the z-score's sign flipped; fill,
        # NaN and ±inf: no data (left out, probability 0); limits: the fences, voxels beyond them (outliers) left
        # out of the moments; clip: normalized values clipped to ± this (none: a run resumed from an earlier
        # version, plain z-score)
        "normalization": {"method": "zscore", "mean": stats.mean, "std": stats.std, "voxels": stats.voxels,
                          "statistics": stats.method, "objects": stats.objects, "clip": stats.clip,
                          "fill_value": stats.fill, "limits": stats.limits, "outliers": stats.outliers,
                          "nodata_voxels": stats.nodata},
        "tiling": {**asdict(options.tiling), "tiles": n_tiles}, "backend": fingerprint["backend"],
        "precision": options.backend.precision,
        "distributed": {"workers": options.workers, "scheduler": options.scheduler, "gpus": options.gpus},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
        "duration_s": round(time.time() - t0, 3), "host": platform.node(), "python": platform.python_version(),
        "packages": versions,
        "notes": said(),  # what the run assumed or warned of (a z spacing taken for granted, gray values)
    }
