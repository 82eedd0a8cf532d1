"""The ``tomoseg`` command: a thin adapter over the Python API, one sub-command per verb.

User errors (:class:`~tomoseg.errors.TomosegError`) print one line and exit 1;
bad usage exits 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import TomosegError

_COMMANDS = {}


def command(name: str, help: str):
    """Register ``fn(subparsers) -> parser`` building a sub-command whose ``run`` is set as default."""

    def deco(build):
        _COMMANDS[name] = (help, build)
        return build

    return deco


def _voxel_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in nm; overrides the file's")


# ---------------------------------------------------------------- info
def _disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    size = path.stat().st_size
    companion = path.with_name(path.name + ".info")
    return size + (companion.stat().st_size if path.suffix == ".vol" and companion.exists() else 0)


def sample_statistics(vol, max_voxels: int = 8_000_000) -> dict:
    """min, max and mean of evenly spaced z slices (all of them for small volumes)."""
    per_slice = vol.shape[1] * vol.shape[2]
    n = max(1, min(vol.shape[0], max_voxels // max(per_slice, 1)))
    zs = np.unique(np.linspace(0, vol.shape[0] - 1, n).round().astype(int))
    lo, hi, total, count = np.inf, -np.inf, 0.0, 0
    for z in zs:
        plane = np.asarray(vol[int(z)], dtype=np.float64)
        lo, hi = min(lo, plane.min()), max(hi, plane.max())
        total += plane.sum()
        count += plane.size
    return {"min": float(lo), "max": float(hi), "mean": total / count, "sampled_slices": int(len(zs))}


@command("info", "describe a volume: shape, type, chunks, voxel size, value range")
def _info(sub):
    p = sub.add_parser("info", help="describe a volume: shape, type, chunks, voxel size, value range",
                       description="Describe a volume without reading all of it.")
    p.add_argument("volume", help="file, folder of slices, or file.h5:/dataset")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _voxel_size_arg(p)
    p.set_defaults(run=_run_info)


def _run_info(args) -> int:
    from .io import open_volume, split_dataset

    with open_volume(args.volume, voxel_size=args.voxel_size) as vol:
        stats = sample_statistics(vol)
        file, _ = split_dataset(args.volume)
        info = {
            "path": str(args.volume), "format": vol.format, "shape": list(vol.shape), "dtype": str(vol.dtype),
            "chunks": list(vol.chunks) if vol.chunks else None,
            "voxel_size_nm": list(vol.voxel_size) if vol.voxel_size else None,
            "size_on_disk_bytes": _disk_size(file), "size_in_memory_bytes": vol.nbytes, "sample": stats,
        }
    if args.json:
        print(json.dumps(info))
        return 0
    vs = info["voxel_size_nm"]
    lines = [
        f"path          {info['path']}",
        f"format        {info['format']}",
        f"shape (z,y,x) {' × '.join(map(str, vol.shape))}  ({vol.size / 1e6:.1f} Mvoxels)",
        f"dtype         {info['dtype']}",
        f"chunks        {' × '.join(map(str, vol.chunks)) if vol.chunks else 'contiguous'}",
        "voxel size    " + (" × ".join(f"{v:g}" for v in vs) + " nm (z, y, x)" if vs
                            else "unknown (the file does not say; pass --voxel-size Z Y X)"),
        f"on disk       {info['size_on_disk_bytes'] / 2**20:.1f} MiB (in memory {vol.nbytes / 2**20:.1f} MiB)",
        f"values        min {stats['min']:g}, max {stats['max']:g}, mean {stats['mean']:.4g} "
        f"(from {stats['sampled_slices']} slices)",
    ]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="tomoseg", description="Find and measure precipitates and pores in 3D X-ray tomograms.")
    parser.add_argument("--version", action="version", version=f"tomoseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, build in _COMMANDS.values():
        build(sub)
    return parser


def _load_commands() -> None:
    """Sub-commands defined in other modules register themselves on import."""
    from . import cli_commands  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # global flags may come after the sub-command too
    debug = "--debug" in argv
    quiet = "-q" in argv or "--quiet" in argv
    argv = [a for a in argv if a not in ("--debug", "-q", "--quiet")]
    args = parser.parse_args(argv)
    args.debug, args.quiet = debug, quiet
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except TomosegError as exc:
        if debug:
            raise
        print(f"tomoseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tomoseg: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        print(f"tomoseg: error: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def progress_enabled(args) -> bool:
    return not getattr(args, "quiet", False) and os.environ.get("TOMOSEG_NO_PROGRESS") != "1"
