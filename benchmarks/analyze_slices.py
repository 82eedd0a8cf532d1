"""Peak memory and time of ``tomoseg analyze`` on a folder of TIFF slices, by how the slices are stored.

Writes a probability map of Z slices of Y x X (uint8: balls of radius 2-7 with ramps at their edges, a tile
repeated across the slice) as a folder of slices, three ways: uncompressed (what ``tomoseg`` and most
acquisition software write), deflate in strips of 128 rows (tifffile's default for compressed slices), and
deflate in one strip a slice (as some writers store them). Runs ``tomoseg -q analyze FOLDER --csv`` on each in
a fresh process, with the tomoseg of ``--src`` (a ``src`` folder: another checkout, to compare before and
after a change), and reports its peak RSS (VmHWM) and time. The three folders hold the same values, so the
object tables must agree.

    python benchmarks/analyze_slices.py --shape 112 2048 2048 --src src --label after
    python benchmarks/analyze_slices.py --shape 112 2048 2048 --src /tmp/old/src --label before
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _cli_child import run_child
from _report import emit_section, table_body

CHILD = r"""
import json, sys, time
from tomoseg.cli import main
from tomoseg.cpu_memory import peak_rss
t0 = time.perf_counter()
code = main(["-q", "analyze", sys.argv[1], "--csv", sys.argv[2], "--voxel-size", "30", "30", "30"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss() / 2**20}))
"""

LAYOUTS = {"uncompressed": {}, "deflate, strips of 128 rows": {"compression": "zlib", "rowsperstrip": 128},
           "deflate, one strip": {"compression": "zlib", "rowsperstrip": None}}


def tile(rng) -> np.ndarray:
    """A 96 x 160 x 160 probability map of balls (radius 2-7) with ramps at their edges."""
    T = (96, 160, 160)
    out = np.zeros(T, np.float32)
    for cz in range(6, T[0], 24):
        for cy in range(6, T[1], 24):
            for cx in range(6, T[2], 24):
                c = np.array([cz, cy, cx]) + rng.integers(-3, 4, 3)
                r = rng.uniform(2, 7)
                ri = int(np.ceil(r)) + 1
                sl = tuple(slice(max(0, ci - ri), min(t, ci + ri + 1)) for ci, t in zip(c, T))
                zz, yy, xx = np.ogrid[sl]
                d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
                out[sl] = np.maximum(out[sl], np.clip((r + 1 - d) / 2, 0, 1))
    return np.rint(out * 255).astype(np.uint8)


def write_folders(root: Path, shape) -> dict:
    import tifffile

    Z, Y, X = shape
    t = tile(np.random.default_rng(0))
    reps = (-(-Y // t.shape[1]), -(-X // t.shape[2]))
    folders = {}
    for name, kwargs in LAYOUTS.items():
        folder = root / name.split(",")[0].replace(" ", "_") / ("strips" if "128" in name else "one")
        folder.mkdir(parents=True)
        for z in range(Z):
            plane = np.tile(t[z % t.shape[0]], reps)[:Y, :X]
            extra = dict(kwargs)
            if "rowsperstrip" in extra and extra["rowsperstrip"] is None:
                extra["rowsperstrip"] = Y
            tifffile.imwrite(folder / f"slice_{z:04d}.tif", plane, **extra)
        folders[name] = folder
    return folders


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=(112, 2048, 2048))
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"),
                    help="the tomoseg src folder the runs use")
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=list(LAYOUTS))
    ap.add_argument("--out", default="benchmarks/results/analyze_slices.md")
    args = ap.parse_args(argv)
    shape = tuple(args.shape)
    env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
    rows, tables = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(Path(tmp), shape)
        for name in args.layouts:
            csv = Path(tmp) / f"{len(tables)}.csv"
            run = run_child(CHILD, [folders[name], csv], env=env)
            tables[name] = csv.read_text()
            rows.append(f"| {name} | {run['seconds']:.1f} s | {run['peak_rss_mib']:.0f} MiB |")
            print(rows[-1], file=sys.stderr)
    same = len(set(tables.values())) == 1
    voxels = int(np.prod(shape))
    plane = shape[1] * shape[2]
    body = table_body(
        f"{shape[0]} slices of {shape[1]} x {shape[2]} uint8 ({voxels / 1e6:.0f} Mvox; one slice "
        f"{plane / 2**20:.1f} MiB), {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}; tomoseg from "
        f"`{args.src}`. Object tables of the layouts identical: {'yes' if same else 'NO'}.",
        ["slices stored as", "time", "peak RSS"], rows)
    emit_section(args.out, f"{args.label}: {shape[0]} x {shape[1]} x {shape[2]}", body,
                 title="tomoseg analyze on a folder of TIFF slices: memory and time",
                 intro="Written by benchmarks/analyze_slices.py; the notes at the end by hand.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
