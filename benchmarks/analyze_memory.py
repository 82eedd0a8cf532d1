"""Peak memory of ``tomoseg analyze`` on a large mask, against the whole volume held in memory.

Writes a Zarr mask of N^3 voxels holding non-touching balls of known radius (placed on a jittered
grid, some cut by the volume border), runs ``tomoseg analyze`` on it in a fresh process, and reports
its peak RSS next to the size of the mask as uint8 and of its labels as int64 (what
``scipy.ndimage.label`` on the whole volume would hold). It also checks the object count.

    python benchmarks/analyze_memory.py --size 512 --out benchmarks/results/analyze_memory.md

``--grid S`` writes instead a ball of 19 voxels (radius 1.7) every S voxels along each axis, the whole volume
tiled: (N / S)^3 objects, for the memory an object costs (``--grid 6`` on 512^3: 614,125 objects).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import emit

import numpy as np

CHILD = r"""
import json, sys, time
from tomoseg.cli import main
from tomoseg.cpu_memory import peak_rss
t0 = time.perf_counter()
code = main(["-q", "analyze", sys.argv[1], "--csv", sys.argv[2], "--json"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": peak_rss() / 2**20}))
"""


def write_balls(path: Path, n: int, *, spacing: int = 24, rng=0) -> int:
    """Balls of radius 2..8 on a jittered grid (never touching); returns how many lie fully inside."""
    import tomoseg

    rng = np.random.default_rng(rng)
    w = tomoseg.create_volume(str(path), (n, n, n), np.uint8, chunks=(64, 128, 128), voxel_size=(29.33,) * 3)
    inside = 0
    slab = spacing * 4
    centres = [(z, y, x) for z in range(spacing // 2 - 4, n + 4, spacing) for y in range(spacing // 2 - 4, n + 4, spacing)
               for x in range(spacing // 2 - 4, n + 4, spacing)]
    jitter = rng.integers(-2, 3, (len(centres), 3))
    radii = rng.uniform(2, 8, len(centres))
    for z0 in range(0, n, slab):
        z1 = min(z0 + slab, n)
        block = np.zeros((z1 - z0, n, n), np.uint8)
        for (c, j, r) in zip(centres, jitter, radii):
            cz, cy, cx = (int(v) + int(d) for v, d in zip(c, j))
            if not (z0 - 9 <= cz < z1 + 9):
                continue
            ri = int(np.ceil(r))
            zz, yy, xx = np.ogrid[cz - ri:cz + ri + 1, cy - ri:cy + ri + 1, cx - ri:cx + ri + 1]
            ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            lo = [cz - ri - z0, cy - ri, cx - ri]
            src = tuple(slice(max(0, -l), ball.shape[k] - max(0, l + ball.shape[k] - s))
                        for k, (l, s) in enumerate(zip(lo, block.shape)))
            dst = tuple(slice(max(0, l), min(l + ball.shape[k], s)) for k, (l, s) in enumerate(zip(lo, block.shape)))
            if all(d.stop > d.start for d in dst):
                block[dst] |= ball[src]
            reach = int(np.floor(r))  # the ball's voxels reach centre +- floor(r) along each axis
            if z0 <= cz < z1 and all(reach < v < n - 1 - reach for v in (cz, cy, cx)) and ball.sum() >= 8:
                inside += 1
        w[z0:z1] = block
    w.close()
    return inside


def write_grid(path: Path, n: int, spacing: int) -> int:
    """A 19-voxel ball every ``spacing`` voxels, the volume tiled with them; returns how many lie fully inside."""
    import tomoseg

    w = tomoseg.create_volume(str(path), (n, n, n), np.uint8, chunks=(64, 128, 128), voxel_size=(29.33,) * 3)
    ball = np.zeros((spacing,) * 3, np.uint8)
    zz, yy, xx = np.ogrid[:spacing, :spacing, :spacing]
    c = spacing // 2
    ball[(zz - c) ** 2 + (yy - c) ** 2 + (xx - c) ** 2 <= 1.7 ** 2] = 1
    reps = -(-n // spacing)
    for z0 in range(0, n, 64):
        z1 = min(z0 + 64, n)
        off = z0 % spacing
        w[z0:z1] = np.tile(ball, (-(-(z1 - z0 + off) // spacing), reps, reps))[off:off + z1 - z0, :n, :n]
    w.close()
    return sum(1 for k in range(reps) if 1 <= k * spacing + c < n - 2) ** 3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--grid", type=int, default=None, metavar="S", help="19-voxel balls every S voxels instead")
    ap.add_argument("--out", default="benchmarks/results/analyze_memory.md")
    args = ap.parse_args(argv)
    n = args.size
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "mask.zarr"
        t0 = time.perf_counter()
        expected = write_balls(mask, n) if args.grid is None else write_grid(mask, n, args.grid)
        print(f"wrote {n}^3 mask with {expected} balls inside in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        res = subprocess.run([sys.executable, "-c", CHILD, str(mask), str(Path(tmp) / "objects.csv")],
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        lines = res.stdout.strip().splitlines()
        run = json.loads(lines[-1])
        summary = json.loads("\n".join(lines[:-1]))
    voxels = n ** 3
    found = summary.get("objects", summary.get("count"))
    table = "\n".join([
        f"# tomoseg analyze: peak memory ({time.strftime('%Y-%m-%d')})", "",
        f"Mask {n}^3 ({voxels / 1e6:.0f} Mvox, Zarr, chunks 64x128x128) of non-touching balls, "
        + ("radius 2-8 voxels." if args.grid is None else f"19 voxels each, one every {args.grid} voxels."), "",
        "| quantity | value |", "|---|---:|",
        f"| peak RSS of `tomoseg analyze` (whole process, incl. Python, NumPy, SciPy) | {run['peak_rss_mib']:.0f} MiB |",
        f"| the mask held as uint8 | {voxels / 2**20:.0f} MiB |",
        f"| its labels held as int64 (whole-volume `scipy.ndimage.label`) | {voxels * 8 / 2**20:.0f} MiB |",
        f"| peak RSS / int64 labels | {run['peak_rss_mib'] / (voxels * 8 / 2**20):.2f} |",
        f"| time | {run['seconds']:.0f} s |",
        f"| objects kept (not touching the border, >= 8 voxels) | {found} (balls placed inside: {expected}) |",
        f"| peak RSS per kept object | {run['peak_rss_mib'] * 2**20 / max(found or 1, 1):.0f} bytes |",
    ]) + "\n"
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
