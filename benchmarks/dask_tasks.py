"""How much of the input a Dask run decompresses, by how its tiles are cut into tasks.

Windows overlap by their halo, and a chunked input (a folder of TIFF slices, chunked HDF5, Zarr) decompresses a
whole chunk for any voxel of it. In one process ``segment`` reads windows through a chunk cache that holds one
row of windows, so each chunk is read about once. A Dask task that holds one tile has no neighbours to share a
cache with: it reads every chunk its window touches. Tasks of consecutive tiles (``task_batches``: whole rows
along x, about four tasks per worker on a local cluster, at least one task per row on an existing one, whose
workers may still be arriving) share the cache within the task.

This runs the real tile grid, task cutting, chunk cache and padded reads of ``segment`` on a stand-in volume that
only counts what is read (its voxels are a broadcast zero, so nothing is decompressed and no file is needed),
for the CPU's and the GPU's tile sizes. The figure is the input decompressed, in multiples of the volume; a
folder of slices on a network file system costs that many times its size to read.

    python benchmarks/dask_tasks.py

Writes benchmarks/results/dask_tasks.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit  # noqa: E402

from tomoseg.inference.distributed import task_batches  # noqa: E402
from tomoseg.inference.engine import _cached  # noqa: E402
from tomoseg.inference.tiling import TilingConfig, read_padded, resolve_tiling, tile_grid  # noqa: E402


class CountingVolume:
    """A uint8 volume of ``shape`` stored in ``chunks`` that counts the chunks its reads touch."""

    def __init__(self, shape, chunks):
        self.shape, self.chunks, self.dtype = tuple(shape), tuple(chunks), np.dtype(np.uint8)
        self.chunk_reads = 0

    def __getitem__(self, key):
        key = tuple(slice(*k.indices(s)[:2]) for k, s in zip(key, self.shape))
        self.chunk_reads += int(np.prod([len(range(k.start // c, -(-k.stop // c))) for k, c in zip(key, self.chunks)]))
        return np.broadcast_to(np.uint8(0), tuple(k.stop - k.start for k in key))


def input_read(volume: CountingVolume, tasks) -> float:
    """Voxels decompressed over ``tasks`` (lists of tiles, each task with its own cache as ``run_tiles`` makes it),
    in multiples of the volume."""
    volume.chunk_reads = 0
    for batch in tasks:
        source = _cached(volume, batch, volume.shape)
        for tile in batch:
            read_padded(source, tile.read, volume.shape)
    chunk = np.prod(volume.chunks)
    return volume.chunk_reads * chunk / np.prod(volume.shape)


LAYOUTS = {  # name: (shape, chunks)
    "TIFF slices 2048x2048": ((512, 2048, 2048), (1, 2048, 2048)),
    "HDF5 chunks 64x256x256": ((512, 2048, 2048), (64, 256, 256)),
    "Zarr chunks 128^3": ((512, 2048, 2048), (128, 128, 128)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4, help="Dask workers (default 4)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dask_tasks.md"))
    args = ap.parse_args(argv)
    lines = ["# Input decompressed by a Dask run, by how tiles are cut into tasks", "",
             f"Counted with `benchmarks/dask_tasks.py` (the real tile grid, tasks, chunk cache and reads of `segment`, "
             f"on a stand-in volume that counts chunk reads); {args.workers} workers, halo 48. Figures are the input "
             "decompressed, in multiples of the volume.", "",
             "| input | tiles | windows | tasks: one tile each / now (local cluster, existing cluster) | one process "
             "| Dask, one tile per task (before) | Dask, local cluster (now) | Dask, existing cluster (now: a task "
             "per row at least) |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for (name, (shape, chunks)), (label, tile) in itertools.product(LAYOUTS.items(), [("CPU, 160", 160),
                                                                                       ("GPU, 256", 256)]):
        volume = CountingVolume(shape, chunks)
        tiles = tile_grid(shape, resolve_tiling(TilingConfig(tile_size=tile, halo=48), shape, 8), 8)
        local = task_batches(tiles, args.workers)
        elastic = task_batches(tiles, args.workers, merge_rows=False)
        single = input_read(volume, [tiles])
        before = input_read(volume, [[t] for t in tiles])
        now, now_elastic = input_read(volume, local), input_read(volume, elastic)
        lines.append(f"| {name}, {'x'.join(map(str, shape))} | {label} | {len(tiles)} | {len(tiles)} / {len(local)}, "
                     f"{len(elastic)} | {single:.1f}x | {before:.1f}x | {now:.1f}x | {now_elastic:.1f}x |")
        print(lines[-1], file=sys.stderr, flush=True)
    emit("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
