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

Writes benchmarks/results/stats_pass.md (one section per machine and volume).
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
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stats_pass.md"))
    args = ap.parse_args(argv)

    import torch

    import tomoseg
    from tomoseg.inference import normalization
    from tomoseg.inference.normalization import stats_threads, volume_stats

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    image = tomoseg.make_phantom(shape, rng=7).image
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TOMOSEG_BENCH_TMP")) as tmp:
        for name in args.dtypes:
            src = Path(tmp) / f"{name}.zarr"
            tomoseg.write_volume(str(src), DTYPES[name](image), voxel_size=(29.33,) * 3)
            times = {"numpy": [], "torch": []}
            stats = {}
            with tomoseg.open_volume(src) as vol:
                volume_stats(vol)  # warm: the page cache, PyTorch's first call
                for _ in range(args.repeats):
                    for path in ("numpy", "torch"):
                        normalization._loaded_torch = (lambda: torch) if path == "torch" else (lambda: None)
                        t = time.perf_counter()
                        stats[path] = volume_stats(vol)
                        times[path].append(time.perf_counter() - t)
            normalization._loaded_torch = lambda: sys.modules.get("torch")
            a, b = stats["numpy"], stats["torch"]
            rel = max(abs(a.mean - b.mean) / abs(a.std), abs(a.std - b.std) / a.std)
            med = {k: statistics.median(v) for k, v in times.items()}
            voxels = int(np.prod(shape))
            rows.append((name, med["numpy"], med["torch"], voxels, rel))
            print(f"{name}: numpy {med['numpy']:.3f} s, torch {med['torch']:.3f} s", file=sys.stderr)
    head = (f"{platform.machine()}, {os.cpu_count()} cores, {stats_threads()} reader threads; volume "
            f"{' x '.join(map(str, shape))} ({int(np.prod(shape)) / 1e6:.1f} Mvox) from Zarr; median of "
            f"{args.repeats} alternating runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"at the start {os.getloadavg()[0]:.1f}.")
    lines = [head, "", "| input | NumPy bincount s | PyTorch bincount s | NumPy Mvox/s | PyTorch Mvox/s | "
             "PyTorch / NumPy speed | mean, std apart (in std) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, tn, tt, voxels, rel in rows:
        lines.append(f"| {name} | {tn:.3f} | {tt:.3f} | {voxels / tn / 1e6:.0f} | {voxels / tt / 1e6:.0f} | "
                     f"{tn / tt:.2f}x | {rel:.1e} |")
    key = f"{platform.machine()} {os.cpu_count()} cores, {args.shape}"
    emit_section(args.out, key, "\n".join(lines) + "\n", title="The statistics pass: NumPy's binning and PyTorch's",
                 intro="Written by benchmarks/stats_pass.py; one section per machine and volume.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
