"""Whether reading a Zarr volume scales with threads: what bounds ``segment``'s statistics pass on a many-core host.

On a GPU host (16 cores) the statistics pass of ``segment`` took 0.33 s for the paper's 256x1024x1024 volume,
about what it takes on 2 cores, so something in the read does not scale. This times, for 1 to ``--threads``
threads, the same blocks three ways:

- ``tomoseg``: :class:`tomoseg.io.volume.Volume` blocks as the statistics pass reads them (``read_ahead``);
- ``zarr``: ``zarr.Array`` blocks, each a call from its own thread;
- ``raw decode``: the chunk files read and decompressed by numcodecs in the threads (no zarr), the floor of a
  reader that bypasses zarr's machinery.

    python benchmarks/read_scaling.py --threads 1 2 4 8 16

The input is a Zarr volume as ``tomoseg.write_volume`` writes it (zstd, 64x128x128 chunks), a 2x4x4 tiling of a
128x256x256 phantom. Writes benchmarks/results/read_scaling.md (one section per machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit_section  # noqa: E402


def make_input(folder: Path, shape) -> Path:
    import tomoseg

    half = (128, 256, 256)
    ph = tomoseg.make_phantom(half, rng=5)
    reps = tuple(-(-s // h) for s, h in zip(shape, half))
    image = np.tile(ph.image, reps)[:shape[0], :shape[1], :shape[2]]
    path = folder / "volume.zarr"
    tomoseg.write_volume(str(path), image, voxel_size=(29.33,) * 3)
    return path


def time_tomoseg(path, threads: int) -> float:
    from tomoseg.io import open_volume
    from tomoseg.io.blocks import block_grid, read_ahead, storage_chunks

    with open_volume(str(path)) as v:
        regions = block_grid(v.shape, storage_chunks(v), max_voxels=2**24)
        t = time.perf_counter()
        for _ in read_ahead(regions, lambda r: v[r][0, 0, 0], threads=threads):
            pass
        return time.perf_counter() - t


def time_zarr(path, threads: int) -> float:
    import zarr

    a = zarr.open_array(str(path), path="0", mode="r")
    z, y, x = a.shape
    regions = [(slice(z0, z0 + 64), slice(y0, y0 + 256), slice(0, x)) for z0 in range(0, z, 64) for y0 in range(0, y, 256)]
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda r: a[r][0, 0, 0], regions))
    return time.perf_counter() - t


def time_raw(path, threads: int) -> float:
    import numcodecs

    files = sorted(p for p in (Path(path) / "0" / "c").rglob("*") if p.is_file())
    codec = numcodecs.Zstd()

    def one(p):
        return codec.decode(p.read_bytes())[0]

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, files))
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    ap.add_argument("--shape", default="256x1024x1024")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "read_scaling.md"))
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split("x"))
    ways = {"tomoseg": time_tomoseg, "zarr": time_zarr, "raw decode": time_raw}
    times = {(w, n): [] for w in ways for n in args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(Path(tmp), shape)
        stored = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        for way in ways.values():  # warm the page cache and the imports
            way(path, 1)
        for _ in range(args.repeats):  # interleaved rounds
            for (w, n), ts in times.items():
                ts.append(ways[w](path, n))
    vox = np.prod(shape) / 1e6
    rows = ["| threads | " + " | ".join(f"{w} s (Mvox/s)" for w in ways) + " |",
            "|---:|" + "---:|" * len(ways)]
    for n in args.threads:
        cells = [f"{statistics.median(times[(w, n)]):.3f} ({vox / statistics.median(times[(w, n)]):.0f})" for w in ways]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    import zarr

    host = f"{platform.machine()} {os.cpu_count()} cores"
    body = (f"{args.shape} uint8 Zarr (zstd, 64x128x128 chunks, {stored / 2**20:.0f} MiB stored), zarr {zarr.__version__}, "
            f"warm page cache; median of {args.repeats} interleaved rounds, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end {os.getloadavg()[0]:.1f}.\n\n"
            + "\n".join(rows) + "\n\n")
    emit_section(args.out, f"{host}, {args.shape}", body, title="Reading a Zarr volume with threads",
                 intro="Written by benchmarks/read_scaling.py: whether the reads of segment's statistics pass scale "
                       "with threads (see the script's docstring).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
