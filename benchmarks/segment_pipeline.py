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
import functools
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
    """A backend whose network costs nothing: every window's core is zeros, or (``prob_like``) the shipped model's
    real output on the input's base phantom, tiled as the input is, which costs what real output costs to
    compress and write. With
    ``network_mvox``, each window also takes the time a GPU network at that rate (Mvox/s of windows) would take,
    sleeping as a thread waiting on the GPU does (the GIL released), so the reading and writing either overlap it
    or show as the excess of the tiles stage over the network's time."""

    name = "zero"

    def __init__(self, readers: int, *, prob_like: bool = False, network_mvox: float = 0.0, resident: bool = False):
        self.readers, self.network_mvox = readers, network_mvox
        self.resident_input = resident  # as CUDA's backend: windows from the statistics pass's copy in memory
        self.output = None
        if prob_like:
            self.output = _real_output()

    def _core(self, shape):
        if self.output is None or any(s > o for s, o in zip(shape, self.output.shape)):
            return np.zeros(shape, np.uint8)
        return self.output[tuple(slice(0, s) for s in shape)]

    def run_windows(self, windows, stats):
        for tile, raw in windows:
            if self.network_mvox:
                time.sleep(raw.size / self.network_mvox / 1e6)
            yield tile, self._core(tuple(s.stop - s.start for s in tile.core))


SUFFIX = {"zarr": ".zarr", "slices": "", "h5": ".h5", "tif": ".tif"}
OUTPUTS = {False: "zeros", True: "the shipped model's, tiled"}
BASE_SHAPE, BASE_SEED = (64, 256, 256), 5  # the phantom every input is tiled from


@functools.lru_cache(maxsize=1)
def _real_output(size=(256, 512, 512)) -> np.ndarray:
    """The shipped model's 0-255 output on the base phantom, tiled to ``size`` (computed once per process)."""
    import tomoseg
    from tomoseg.inference.backends import to_uint8
    from tomoseg.inference.engine import predict

    p = to_uint8(predict(tomoseg.make_phantom(BASE_SHAPE, rng=BASE_SEED).image))
    return np.tile(p, tuple(-(-s // b) for s, b in zip(size, p.shape)))[tuple(slice(0, s) for s in size)]


def make_input(shape, folder: Path, fmt: str = "zarr") -> Path:
    """The input volume in format ``fmt``: a 64x256x256 phantom tiled to ``shape`` (real gray values, cheap to
    make)."""
    import tomoseg

    src = folder / f"volume_{'x'.join(map(str, shape))}{SUFFIX[fmt]}"
    base = tomoseg.make_phantom(BASE_SHAPE, rng=BASE_SEED).image
    reps = tuple(-(-s // b) for s, b in zip(shape, base.shape))
    image = np.tile(base, reps)[:shape[0], :shape[1], :shape[2]]
    tomoseg.write_volume(str(src), image, voxel_size=(29.33,) * 3)
    return src


def run_once(src: Path, out: Path, *, readers: int, sample_mask: str, tile_size: int, prob_like: bool = False,
             network_mvox: float = 0.0, resident: bool = False) -> dict:
    from tomoseg.inference import SegmentOptions, TilingConfig, engine

    plain = engine.make_backend
    engine.make_backend = lambda model, config: ZeroBackend(readers, prob_like=prob_like, network_mvox=network_mvox,
                                                            resident=resident)
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
    variants = [(f"sample mask auto, {r} readers", "auto", r, False) for r in args.readers] + \
               [(f"no sample mask, {args.readers[-1]} readers", "off", args.readers[-1], False)]
    if args.resident:
        variants.append((f"sample mask auto, {args.readers[-1]} readers, input kept in memory", "auto",
                         args.readers[-1], True))
    runs: dict = {name: [] for name, *_ in variants}
    _, mask, readers, _ = variants[0]  # warm-up: file cache, imports
    extra = {"prob_like": args.prob_like, "network_mvox": args.network_mvox}
    if args.prob_like:
        _real_output()  # before segment's backend is replaced: it runs the real model
    run_once(src, folder / "out.zarr", readers=readers, sample_mask=mask, tile_size=args.tile_size, **extra)
    for _ in range(args.repeats):  # interleaved rounds
        for name, mask, readers, resident in variants:
            runs[name].append(run_once(src, folder / "out.zarr", readers=readers, sample_mask=mask,
                                       tile_size=args.tile_size, resident=resident, **extra))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"Volume {' x '.join(map(str, shape))} ({voxels / 1e6:.1f} Mvox) uint8 {args.format} in, Zarr out; "
            f"tile size "
            f"{args.tile_size} (windows of up to {(args.tile_size + 96) ** 3 / 1e6:.1f} Mvox); median of "
            f"{args.repeats} interleaved runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"at the start {load:.1f}. Output: {OUTPUTS[args.prob_like]}"
            + (f"; a simulated network of {args.network_mvox:g} Mvox/s of windows" if args.network_mvox else "")
            + ".\n\n"
            "| variant | wall s | Mvox/s | start | statistics + sample mask | tiles (read, write) | finish |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for name, items in runs.items():
        med = {k: statistics.median(r[k] for r in items) for k in ("wall",) + STAGES}
        rows.append(f"| {name} | {med['wall']:.2f} | {voxels / med['wall'] / 1e6:.0f} | "
                    + " | ".join(f"{med[k]:.2f}" for k in STAGES) + " |")
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    from _report import emit_section

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=["128x512x512", "256x1024x1024"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--readers", type=int, nargs="*", default=[2, 6],
                    help="reader/writer threads to compare (the CUDA backend uses 6)")
    ap.add_argument("--format", choices=list(SUFFIX), default="zarr",
                    help="input format: zarr, slices (a folder of TIFF slices), h5 (chunked HDF5), tif (one file)")
    ap.add_argument("--tile-size", type=int, default=256, help="tile size (the CUDA choice on a large card: 256+)")
    ap.add_argument("--prob-like", action="store_true", help="cores of the shipped model's real output, not zeros "
                                                               "(they cost what real output costs to write)")
    ap.add_argument("--network-mvox", type=float, default=0.0,
                    help="simulate a GPU network of this rate (Mvox/s of windows; an H200 does ~364 at tile 256)")
    ap.add_argument("--resident", action="store_true",
                    help="also a row with the input kept in memory by the statistics pass (as for CUDA)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "segment_pipeline.md"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tomoseg-pipeline-") as tmp:
        for text in args.shapes:
            shape = tuple(int(s) for s in text.split("x"))
            key = (f"{platform.machine()} {os.cpu_count()} cores, {text}, {args.format} input"
                   + (", real output" if args.prob_like else "")
                   + (f", simulated network {args.network_mvox:g} Mvox/s" if args.network_mvox else ""))
            emit_section(args.out, key, bench(shape, args, Path(tmp)), title="segment without the network",
                         intro=__doc__.split("\n\n")[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
