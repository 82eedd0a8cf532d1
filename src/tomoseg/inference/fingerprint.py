"""What an input volume is, by content: so that ``--resume`` never mixes tiles of two scans.

A fingerprint holds the size and modification time of the input's files and a
SHA-256 of a fixed sample of small regions spread through the volume (cheap
even for terabyte inputs: at most 16 small reads). Replacing the input by
another file of the same size changes the modification time and, almost
surely, the sampled content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..io import split_dataset

SAMPLES = 16
PATCH = 32


def _files_of(path) -> list[Path]:
    file, _ = split_dataset(path)
    if file.is_dir():
        from ..io.tiff_folder import slice_files

        files = slice_files(file)
        if not files:  # a Zarr store: its top-level metadata (chunks are covered by the content sample)
            files = [p for p in (file / n for n in ("zarr.json", ".zarray", ".zgroup", ".zattrs")) if p.exists()]
        return files
    files = [file]
    companion = file.with_name(file.name + ".info")
    if file.suffix.lower() == ".vol" and companion.exists():
        files.append(companion)
    return files


def file_signature(path) -> dict:
    """Number, total size and newest modification time of the input's files."""
    files = _files_of(path)
    stats = [f.stat() for f in files if f.exists()]
    return {"files": len(stats), "bytes": int(sum(s.st_size for s in stats)),
            "mtime_ns": int(max((s.st_mtime_ns for s in stats), default=0))}


def sample_regions(shape) -> list[tuple[slice, slice, slice]]:
    """``SAMPLES`` regions of one z slice and up to ``PATCH``² voxels, spread along z and across y, x."""
    z, y, x = (int(s) for s in shape)
    regions = []
    for i in range(SAMPLES):
        zi = round(i * (z - 1) / max(SAMPLES - 1, 1))
        fy, fx = ((i * 7) % SAMPLES) / SAMPLES, ((i * 11) % SAMPLES) / SAMPLES
        y0 = int(fy * max(y - PATCH, 0))
        x0 = int(fx * max(x - PATCH, 0))
        regions.append((slice(zi, zi + 1), slice(y0, min(y0 + PATCH, y)), slice(x0, min(x0 + PATCH, x))))
    return regions


def content_hash(volume) -> str:
    """SHA-256 of the shape, dtype and a fixed sample of regions of ``volume``."""
    h = hashlib.sha256(f"{tuple(volume.shape)} {np.dtype(volume.dtype).str}".encode())
    for region in sample_regions(volume.shape):
        h.update(np.ascontiguousarray(volume[region]).tobytes())
    return h.hexdigest()


def input_fingerprint(volume, path) -> dict:
    """The input's identity: file signature plus sampled content hash."""
    return {**file_signature(path), "sample_sha256": content_hash(volume)}


def changes(before: dict | None, after: dict) -> list[str]:
    """What differs between two fingerprints (``before`` None: everything, e.g. a run from an older tomoseg)."""
    if not isinstance(before, dict):
        return ["fingerprint"]
    names = {"files": "number of files", "bytes": "size", "mtime_ns": "modification time",
             "sample_sha256": "content"}
    return [names.get(k, k) for k in after if before.get(k) != after[k]]
