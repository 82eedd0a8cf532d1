"""The speed of ``segment`` without the network: what bounds it once the model is fast (a GPU).

``segment`` runs end to end on a Zarr volume (Zarr out) with a backend that answers every window with zeros at
once, so what is timed is the rest: opening and checks, the statistics and sample-mask pass, reading windows
with their halo, writing cores and done markers, finishing the output. The stage times come from the
provenance record (``timings_s``). On a GPU machine this is the ceiling of ``segment``'s throughput; the
network's own rate is in benchmarks/segment_throughput.py.

    python benchmarks/segment_pipeline.py                      # 128x512x512 and 256x1024x1024
    python benchmarks/segment_pipeline.py --shapes 256x1024x1024 --repeats 5

Writes benchmarks/results/segment_pipeline.md (one section per machine and volume).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

STAGES = ("start", "statistics_and_sample_mask", "tiles", "finish")


class ZeroBackend:
    """A backend whose network costs nothing: every window's core is zeros."""

    name = "zero"

    def __init__(self, readers: int):
        self.readers = readers

    def run_windows(self, windows, stats):
        for tile, _raw in windows:
            yield tile, np.zeros(tuple(s.stop - s.start for s in tile.core), np.uint8)


SUFFIX = {"zarr": ".zarr", "slices": "", "h5": ".h5", "tif": ".tif"}


def make_input(shape, folder: Path, fmt: str = "zarr") -> Path:
    """The input volume in format ``fmt``: a 64x256x256 phantom tiled to ``shape`` (real gray values, cheap to
    make)."""
    import tomoseg

    src = folder / f"volume_{'x'.join(map(str, shape))}{SUFFIX[fmt]}"
    base = tomoseg.make_phantom((64, 256, 256), rng=5).image
    reps = tuple(-(-s // b) for s, b in zip(shape, base.shape))
    image = np.tile(base, reps)[:shape[0], :shape[1], :shape[2]]
    tomoseg.write_volume(str(src), image, voxel_size=(29.33,) * 3)
    return src


def run_once(src: Path, out: Path, *, readers: int, sample_mask: str, tile_size: int) -> dict:
    from tomoseg.inference import SegmentOptions, TilingConfig, engine

    plain = engine.make_backend
    engine.make_backend = lambda model, config: ZeroBackend(readers)
    try:
        t = time.perf_counter()
        record = engine.segment(src, out, options=SegmentOptions(overwrite=True, sample_mask=sample_mask,
                                                                 tiling=TilingConfig(tile_size=tile_size)),
                                progress=False)
        wall = time.perf_counter() - t
    finally:
        engine.make_backend = plain
    return {"wall": wall, **{k: record.get("timings_s", {}).get(k, float("nan")) for k in STAGES}}


def bench(shape, args, folder: Path) -> str:
    src = make_input(shape, folder, args.format)
    voxels = int(np.prod(shape))
    variants = [(f"sample mask auto, {r} readers", "auto", r) for r in args.readers] + \
               [(f"no sample mask, {args.readers[-1]} readers", "off", args.readers[-1])]
    runs: dict = {name: [] for name, _, _ in variants}
    _, mask, readers = variants[0]  # warm-up: file cache, imports
    run_once(src, folder / "out.zarr", readers=readers, sample_mask=mask, tile_size=args.tile_size)
    for _ in range(args.repeats):  # interleaved rounds
        for name, mask, readers in variants:
            runs[name].append(run_once(src, folder / "out.zarr", readers=readers, sample_mask=mask,
                                       tile_size=args.tile_size))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"## {platform.machine()} {os.cpu_count()} cores, {'x'.join(map(str, shape))}, {args.format} input\n\n"
            f"Volume {' x '.join(map(str, shape))} ({voxels / 1e6:.1f} Mvox) uint8 {args.format} in, Zarr out; "
            f"tile size "
            f"{args.tile_size} (windows of up to {(args.tile_size + 96) ** 3 / 1e6:.1f} Mvox); median of "
            f"{args.repeats} interleaved runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"at the start {load:.1f}.\n\n"
            "| variant | wall s | Mvox/s | start | statistics + sample mask | tiles (read, write) | finish |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for name, items in runs.items():
        med = {k: statistics.median(r[k] for r in items) for k in ("wall",) + STAGES}
        rows.append(f"| {name} | {med['wall']:.2f} | {voxels / med['wall'] / 1e6:.0f} | "
                    + " | ".join(f"{med[k]:.2f}" for k in STAGES) + " |")
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    from _report import emit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=["128x512x512", "256x1024x1024"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--readers", type=int, nargs="*", default=[2, 6],
                    help="reader/writer threads to compare (the CUDA backend uses 6)")
    ap.add_argument("--format", choices=list(SUFFIX), default="zarr",
                    help="input format: zarr, slices (a folder of TIFF slices), h5 (chunked HDF5), tif (one file)")
    ap.add_argument("--tile-size", type=int, default=256, help="tile size (the CUDA choice on a large card: 256+)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "segment_pipeline.md"))
    args = ap.parse_args(argv)
    sections = []
    with tempfile.TemporaryDirectory(prefix="tomoseg-pipeline-") as tmp:
        for text in args.shapes:
            shape = tuple(int(s) for s in text.split("x"))
            sections.append(bench(shape, args, Path(tmp)))
            print(sections[-1], flush=True)
    emit("# segment without the network\n\n" + __doc__.split("\n\n")[1] + "\n\n" + "\n".join(sections), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
