"""The statistics pass of ``segment`` on 8-bit, 16-bit and float inputs: NumPy's bincount against PyTorch's.

On an H200's host (16 cores) the statistics pass took 2.1-2.4 s of a 3.6-3.8 s ``segment`` run on the paper's
256x1024x1024 volume as float32 (0.7-0.9 s as uint16, 0.18 s as uint8; benchmarks/results/segment_throughput.md).
Where the process has loaded PyTorch (the CUDA and PyTorch backends) the pass counts 8- and 16-bit values with
``torch.bincount`` (``tomoseg.inference.normalization._loaded_torch``); float values are binned by NumPy either
way (their moments with PyTorch's weighted bincount measured no faster on 2 cores: 0.99x, not kept), so the
float32 row times the same code twice. This times
:func:`tomoseg.inference.normalization.volume_stats` over a Zarr volume as ``segment`` reads it (the pass's
reader threads, :func:`~tomoseg.inference.normalization.stats_threads`), both ways, alternating:

    python benchmarks/stats_pass.py [--shape 128x512x512] [--repeats 3]

Writes benchmarks/results/stats_pass.md (one section per machine and volume). ``--device cuda`` compares the
binning on the GPU (:mod:`tomoseg.inference.device_stats`, what ``segment``'s CUDA backend does for 16-bit and
float blocks; 8-bit blocks stay with PyTorch's host bincount) with NumPy's.

``--threads 1 2 4 8`` times instead how the pass scales with its reader threads, in three parts, so that a
many-core host says where the float time goes: reading alone (each block decompressed, nothing else), the
binning alone (``summarize`` over blocks already in memory, on the same threads) and the pass itself. Reading
that scales while binning does not points at the GIL (NumPy's bincount scans its keys holding it); neither
scaling points at memory bandwidth or page faults. One section per machine, volume and dtype.
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
from _report import emit_section  # noqa: E402

DTYPES = {"uint8": lambda a: a, "uint16": lambda a: a.astype(np.uint16) * np.uint16(257),
          "float32": lambda a: a.astype(np.float32) * np.float32(1e-4) - np.float32(2e-3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="128x512x512", help="volume shape, ZxYxX (default 128x512x512)")
    ap.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--repeats", type=int, default=3, help="runs per row, alternating; the median is reported")
    ap.add_argument("--threads", nargs="*", type=int, default=None,
                    help="a thread sweep instead (e.g. 1 2 4 8): reading, binning and the pass per thread count")
    ap.add_argument("--device", default=None,
                    help="e.g. cuda: the binning on that device (as segment's CUDA backend bins 16-bit and float "
                         "blocks) instead of PyTorch's bincount on the host")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stats_pass.md"))
    args = ap.parse_args(argv)
    if args.threads:
        return sweep(args)

    import torch

    import tomoseg
    from tomoseg.inference import normalization
    from tomoseg.inference.normalization import stats_threads, volume_stats

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    image = _image(shape)
    rows = []
    other = "device" if args.device else "torch"
    summarize = None
    if args.device:
        from tomoseg.inference.device_stats import summarize_on

        summarize = summarize_on(args.device)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TOMOSEG_BENCH_TMP")) as tmp:
        for name in args.dtypes:
            src = Path(tmp) / f"{name}.zarr"
            tomoseg.write_volume(str(src), DTYPES[name](image), voxel_size=(29.33,) * 3)
            times = {"numpy": [], other: []}
            stats = {}
            with tomoseg.open_volume(src) as vol:
                volume_stats(vol)  # warm: the page cache, PyTorch's first call
                for _ in range(args.repeats):
                    for path in ("numpy", other):
                        normalization._loaded_torch = (lambda: torch) if path != "numpy" else (lambda: None)
                        t = time.perf_counter()
                        stats[path] = volume_stats(vol, summarize=summarize if path == "device" else None)
                        times[path].append(time.perf_counter() - t)
            normalization._loaded_torch = lambda: sys.modules.get("torch")
            a, b = stats["numpy"], stats[other]
            rel = max(abs(a.mean - b.mean) / abs(a.std), abs(a.std - b.std) / a.std)
            med = {k: statistics.median(v) for k, v in times.items()}
            voxels = int(np.prod(shape))
            rows.append((name, med["numpy"], med[other], voxels, rel))
            print(f"{name}: numpy {med['numpy']:.3f} s, {other} {med[other]:.3f} s", file=sys.stderr)
    head = (f"{platform.machine()}, {os.cpu_count()} cores, {stats_threads()} reader threads; volume "
            f"{' x '.join(map(str, shape))} ({int(np.prod(shape)) / 1e6:.1f} Mvox) from Zarr; median of "
            f"{args.repeats} alternating runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"at the start {os.getloadavg()[0]:.1f}.")
    them = f"on {args.device} (device_stats)" if args.device else "PyTorch bincount"
    lines = [head, "", f"| input | NumPy bincount s | {them} s | NumPy Mvox/s | {them} Mvox/s | "
             f"{them} / NumPy speed | mean, std apart (in std) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, tn, tt, voxels, rel in rows:
        lines.append(f"| {name} | {tn:.3f} | {tt:.3f} | {voxels / tn / 1e6:.0f} | {voxels / tt / 1e6:.0f} | "
                     f"{tn / tt:.2f}x | {rel:.1e} |")
    key = f"{platform.machine()} {os.cpu_count()} cores, {args.shape}" + (f", {args.device}" if args.device else "")
    emit_section(args.out, key, "\n".join(lines) + "\n", title="The statistics pass: NumPy's binning and PyTorch's",
                 intro="Written by benchmarks/stats_pass.py; one section per machine and volume.")
    return 0


def _image(shape) -> np.ndarray:
    """A phantom of ``shape``: one of at most 128x512x512 repeated (as segment_throughput.py builds the paper's
    volume), so that a large shape does not spend the time limit on making the phantom."""
    import tomoseg

    base = tomoseg.make_phantom(tuple(min(s, m) for s, m in zip(shape, (128, 512, 512))), rng=7).image
    reps = [-(-s // b) for s, b in zip(shape, base.shape)]
    return np.tile(base, reps)[tuple(slice(0, s) for s in shape)]


def sweep(args) -> int:
    """Reading, binning and the whole pass at each thread count of ``args.threads``, per dtype, with NumPy's
    binning (as the OpenVINO path runs it; the default mode compares PyTorch's)."""
    import tomoseg
    from tomoseg.inference import normalization
    from tomoseg.inference.normalization import _Binning, volume_stats
    from tomoseg.io.blocks import block_grid, read_ahead, storage_chunks

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    image = _image(shape)
    voxels = int(np.prod(shape))
    original = normalization.stats_threads
    with tempfile.TemporaryDirectory(dir=os.environ.get("TOMOSEG_BENCH_TMP")) as tmp:
        for name in args.dtypes:
            src = Path(tmp) / f"{name}.zarr"
            tomoseg.write_volume(str(src), DTYPES[name](image), voxel_size=(29.33,) * 3)
            rows = []
            with tomoseg.open_volume(src) as vol:
                regions = block_grid(vol.shape, storage_chunks(vol), max_voxels=2**24)
                binning = _Binning.for_dtype(vol.dtype)
                blocks = [np.asarray(vol[r]) for r in regions]  # for the binning alone
                volume_stats(vol)  # warm: the page cache
                for n in args.threads:
                    parts = {"read": lambda: sum(d.size for _, d in read_ahead(
                                 regions, lambda r: np.asarray(vol[r]), threads=n)),
                             "binning": lambda: len(list(read_ahead(
                                 range(len(blocks)), lambda i: binning.summarize(blocks[i]), threads=n))),
                             "pass": lambda: volume_stats(vol)}
                    times = {k: [] for k in parts}
                    normalization.stats_threads = lambda n=n: n
                    try:
                        for _ in range(args.repeats):
                            for key, fn in parts.items():
                                t = time.perf_counter()
                                fn()
                                times[key].append(time.perf_counter() - t)
                    finally:
                        normalization.stats_threads = original
                    med = {k: statistics.median(v) for k, v in times.items()}
                    rows.append((n, med))
                    print(f"{name} {n} threads: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items()),
                          file=sys.stderr)
            one = rows[0][1]
            lines = [f"{platform.machine()}, {os.cpu_count()} cores; {name} volume {' x '.join(map(str, shape))} "
                     f"({voxels / 1e6:.1f} Mvox) from Zarr, NumPy's binning; median of {args.repeats} runs, "
                     f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the start "
                     f"{os.getloadavg()[0]:.1f}. Speed-ups against {rows[0][0]} thread(s).", "",
                     "| threads | read s | binning s | pass s | read Mvox/s | binning Mvox/s | pass Mvox/s | "
                     "read speed-up | binning speed-up | pass speed-up |", "|---|" + "---:|" * 9]
            for n, med in rows:
                lines.append(f"| {n} | {med['read']:.3f} | {med['binning']:.3f} | {med['pass']:.3f} | "
                             + " | ".join(f"{voxels / med[k] / 1e6:.0f}" for k in ("read", "binning", "pass"))
                             + " | " + " | ".join(f"{one[k] / med[k]:.2f}x" for k in ("read", "binning", "pass"))
                             + " |")
            key = f"threads: {platform.machine()} {os.cpu_count()} cores, {args.shape} {name}"
            emit_section(args.out, key, "\n".join(lines) + "\n",
                         title="The statistics pass: NumPy's binning and PyTorch's",
                         intro="Written by benchmarks/stats_pass.py; one section per machine and volume.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
