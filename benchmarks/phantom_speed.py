"""Phantom generation speed: default preset and physics mode (median of --repeats runs).

    python benchmarks/phantom_speed.py --out benchmarks/results/phantom_speed.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/phantom_speed.md")
    args = ap.parse_args(argv)
    import tomoseg

    cases = [("default", (128, 256, 256), args.repeats), ("physics", (128, 256, 256), 1),
             ("default", (256, 512, 512), 1)]
    lines = ["# Phantom generation speed", "", f"{os.cpu_count()} cores; median of the runs given.", "",
             "| preset | shape | runs | seconds | Mvox/s |", "|---|---|---:|---:|---:|"]
    for preset, shape, runs in cases:
        times = []
        for r in range(runs):
            t0 = time.perf_counter()
            tomoseg.make_phantom(shape, rng=r, preset_name=preset)
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        vox = shape[0] * shape[1] * shape[2]
        lines.append(f"| {preset} | {'x'.join(map(str, shape))} | {runs} | {sec:.1f} | {vox / sec / 1e6:.1f} |")
        print(lines[-1], file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
