"""The halo trade-off: difference from whole-volume inference, and time, for several halos.

One phantom, one model (default: the shipped one), the same backend for every row; the reference is
one pass over the whole volume (``predict_whole``). Times are medians of --repeats runs.

    python benchmarks/halo_tradeoff.py --out benchmarks/results/halo_tradeoff.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _report import emit

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", nargs=3, type=int, default=[96, 256, 256])
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--halos", nargs="*", type=int, default=[0, 8, 16, 24, 32, 48])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--model")
    ap.add_argument("--out", default="benchmarks/results/halo_tradeoff.md")
    args = ap.parse_args(argv)

    import tomoseg
    from tomoseg.inference import BackendConfig, TilingConfig, predict, predict_whole
    from tomoseg.inference.engine import to_uint8

    model = tomoseg.load_model(args.model)
    ph = tomoseg.make_phantom(tuple(args.shape), rng=31)
    backend = BackendConfig(backend=args.backend)
    whole = predict_whole(ph.image, model, backend=backend)
    whole8 = to_uint8(whole)
    voxels = ph.image.size
    rows = []
    for halo in args.halos:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tiled = predict(ph.image, model, tiling=TilingConfig(tile_size=args.tile, halo=halo), backend=backend)
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        t8 = to_uint8(tiled)
        rows.append((halo, float(np.abs(tiled - whole).max()), int(np.abs(t8.astype(int) - whole8).max()),
                     int(np.count_nonzero((t8 > 127) != (whole8 > 127))), voxels / sec / 1e6))
        print(f"halo {halo}: {rows[-1]}", file=sys.stderr)
    base = rows[0][4]
    lines = [f"Phantom {' x '.join(map(str, args.shape))}, tile core {args.tile}, backend {args.backend}, model "
             f"{Path(args.model).name if args.model else 'default'}; median of {args.repeats} runs.", "",
             "| halo (voxels) | max abs diff (probability) | max diff (0-255) | mask voxels that differ | Mvox/s | "
             "speed vs halo 0 |", "|---:|---:|---:|---:|---:|---:|"]
    for halo, d, d8, nmask, mv in rows:
        lines.append(f"| {halo} | {d:.1e} | {d8} | {nmask} | {mv:.2f} | {mv / base:.2f} |")
    table = "\n".join(lines) + "\n"
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
