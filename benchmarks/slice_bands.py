"""Windows read from a volume stored slice by slice (HDF5 chunks of one whole slice, gzip: how acquisition and
reconstruction software write), as ``segment`` reads them: straight from the file, through a cache of whole
slices (needs a slab of the volume: where memory allows), and through the cache of bands that ``segment`` uses
where that slab does not fit in a quarter of the free memory. Medians of interleaved runs in one process.

    python benchmarks/slice_bands.py [--shape 128x2048x2048] [--dtype uint8] [--tile 224] [--halo 48] [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit_section  # noqa: E402

from tomoseg.inference.engine import _cached  # noqa: E402
from tomoseg.inference.tiling import TilingConfig, tile_grid  # noqa: E402
from tomoseg.io import open_volume  # noqa: E402


class Counted:
    """The volume, counting the slices its reads decode (each read of an HDF5 chunk of one slice decodes it)."""

    def __init__(self, volume):
        self.volume, self.shape, self.dtype, self.slices = volume, volume.shape, volume.dtype, 0
        self.chunks, self.path = volume.chunks, volume.path

    def __getitem__(self, key):
        data = self.volume[key]
        self.slices += data.shape[0]
        return data


def read_all(source, tiles) -> float:
    t = time.perf_counter()
    for tile in tiles:
        np.asarray(source[tile.read])
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="128x2048x2048")
    ap.add_argument("--tile", type=int, default=224)
    ap.add_argument("--halo", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="uint8")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "slice_bands.md"))
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split("x"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slices.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.clip(rng.normal(100, 6, shape), 0, 255).astype(args.dtype),  # noisy, compressible
                             chunks=(1,) + shape[1:], compression="gzip", compression_opts=1)
        tiles = tile_grid(shape, TilingConfig(tile_size=args.tile, halo=args.halo), 16)
        window = [min(r.stop, s) - r.start for r, s in zip(tiles[0].read, shape)]
        slab = (window[0] + 1) * shape[1] * shape[2] * 2
        rows = {"straight from the file": [], "segment's cache, memory for a slab of whole slices": [],
                "segment's cache, memory for half the slab (bands)": []}
        counts = {}
        item = np.dtype(args.dtype).itemsize
        slab = int(1.25 * min(window[0] + 1, shape[0]) * shape[1] * shape[2] * item)
        memory = {name: m for name, m in zip(rows, (None, 4 * slab + 4096, 2 * slab))}  # _cached uses a quarter
        with open_volume(f"{path}:/data") as vol:
            for _ in range(args.repeats):
                for name in rows:
                    counted = Counted(vol)
                    src = counted if memory[name] is None else _cached(counted, tiles, shape, memory[name])
                    rows[name].append(read_all(src, tiles))
                    kind = ("bands" if getattr(src, "storage", None) != getattr(src, "chunks", None) else
                            "whole slices") if src is not counted else "none"
                    counts[name] = (counted.slices, getattr(src, "max_bytes", 0), kind)
    base = statistics.median(rows["straight from the file"])
    body = (f"{shape[0]} x {shape[1]} x {shape[2]} {args.dtype}, HDF5 chunks of one slice, gzip level 1; {len(tiles)} "
            f"windows of {' x '.join(map(str, window))} (tile {args.tile}, halo {args.halo}); median of "
            f"{args.repeats} interleaved runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            "| read | cache kept | seconds | vs straight | slices decoded (volume: " + f"{shape[0]}) | cache MiB |\n"
            "|---|---|---:|---:|---:|---:|\n")
    for name, times in rows.items():
        t = statistics.median(times)
        n, cap, kind = counts[name]
        body += f"| {name} | {kind} | {t:.2f} | {base / t:.1f}x | {n} | {cap / 2**20:.0f} |\n"
    emit_section(args.out, f"{shape[0]}x{shape[1]}x{shape[2]}", body, title="Windows read from slice-chunked volumes",
                 intro=__doc__.split("\n\n")[0].replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
