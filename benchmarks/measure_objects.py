"""Measuring objects: all of a block's objects at once (``tomoseg.objects.region_measure``) against one object at a
time (a crop, its voxel faces, scikit-image's marching cubes on the padded crop: how tomoseg measured before).

Part 1, in this process: volumes labelled once, then each way timed on the same labels, interleaved, median of
``--repeats``; the largest difference between the two tables is printed beside (relative, over every column).

Part 2, with ``--before SRC`` (the ``src`` folder of an older checkout, e.g. ``git worktree add /tmp/old <rev>``):
``tomoseg analyze`` run end to end in fresh processes on a chunked Zarr map (``--cli-size``, 19-voxel balls every 6
voxels), this checkout and ``SRC`` alternating, median of ``--cli-repeats``; the two objects CSVs compared.

Part 3, with ``--pool``: ``analyze`` (the Python API) on that map with the objects measured on the labelling's
threads against worker processes (one a core), fresh processes alternating.

    python benchmarks/measure_objects.py --before /tmp/old/src --pool
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from _report import emit, machine_and_time

HERE = Path(__file__).resolve().parent


def one_at_a_time(labels, gray, voxel_size) -> dict:
    """The measurements tomoseg took object by object before (volume, centroid, faces, mesh, mean gray)."""
    from tomoseg.objects.measure import mesh_area_volume, voxel_face_area, wadell_sphericity

    rows = {c: [] for c in ("label", "volume_vox", "centroid_z", "centroid_y", "centroid_x", "surface_voxel_nm2",
                            "surface_mesh_nm2", "sphericity_mesh", "mean_gray")}
    for i, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        region = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape))
        obj = labels[region] == i + 1
        padded = np.zeros(tuple(k + 2 for k in obj.shape), bool)
        padded[1:-1, 1:-1, 1:-1] = obj
        where = np.nonzero(obj)
        area, volume = mesh_area_volume(padded, voxel_size)
        rows["label"].append(i + 1)
        rows["volume_vox"].append(len(where[0]))
        for c, r, name in zip(where, region, "zyx"):
            rows[f"centroid_{name}"].append(float(c.mean()) + r.start)
        rows["surface_voxel_nm2"].append(voxel_face_area(padded, voxel_size))
        rows["surface_mesh_nm2"].append(area)
        rows["sphericity_mesh"].append(float(wadell_sphericity(volume, area)))
        rows["mean_gray"].append(float(gray[region][obj].mean()))
    return {c: np.asarray(v) for c, v in rows.items()}


def volumes(size: int):
    """(name, labels, gray) of three kinds: tiny balls on a grid, balls of radius 2-8, irregular pores."""
    rng = np.random.default_rng(0)
    n = size
    z, y, x = np.ogrid[:6, :6, :6]
    ball = ((z - 3) ** 2 + (y - 3) ** 2 + (x - 3) ** 2 <= 1.7 ** 2)
    grid = np.tile(ball, (n // 6,) * 3)
    out = [("19-voxel balls every 6 voxels", grid)]
    balls = np.zeros((n, n, n), bool)
    for c in rng.integers(8, n - 8, (max(n ** 3 // 4000, 8), 3)):
        r = rng.uniform(2, 8)
        zz, yy, xx = np.ogrid[:n, :n, :n]
        balls |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
    out.append(("balls of radius 2-8 voxels", balls))
    pores = ndimage.gaussian_filter(rng.random((n, n, n)), 1.5) > 0.53
    out.append(("irregular pores (smoothed noise)", pores))
    for name, mask in out:
        labels = ndimage.label(mask, np.ones((3, 3, 3)))[0].astype(np.uint32)
        gray = rng.integers(0, 256, labels.shape).astype(np.uint8)
        yield name, labels, gray


def largest_difference(a: dict, b: dict) -> float:
    worst = 0.0
    for c in a:
        x, y = np.asarray(a[c], float), np.asarray(b[c], float)
        worst = max(worst, float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), 1e-300))) if len(x) else 0.0)
    return worst


def part_one(size: int, repeats: int) -> list:
    from tomoseg.objects.measure import measure_table

    vs = (29.33, 29.33, 29.33)
    rows = []
    for name, labels, gray in volumes(size):
        times = {"one": [], "all": []}
        for _ in range(repeats):
            t = time.perf_counter()
            ref = one_at_a_time(labels, gray, vs)
            times["one"].append(time.perf_counter() - t)
            t = time.perf_counter()
            new = measure_table(labels, intensity=gray, voxel_size=vs)
            times["all"].append(time.perf_counter() - t)
        k = len(ref["label"])
        one, together = statistics.median(times["one"]), statistics.median(times["all"])
        diff = largest_difference(ref, {c: new[c] for c in ref})
        voxels = float(np.mean(ref["volume_vox"]))
        rows.append(f"| {name} | {k:,} | {voxels:.0f} | {one / k * 1e6:.1f} | {together / k * 1e6:.1f} | "
                    f"{one / together:.1f}x | {diff:.1e} |")
        print(rows[-1], flush=True)
    return rows


CHILD = r"""
import sys, time
from tomoseg.cli import main
t0 = time.perf_counter()
code = main(["-q", "analyze", sys.argv[1], "--csv", sys.argv[2]])
print(time.perf_counter() - t0)
sys.exit(code)
"""


def csv_difference(a: bytes, b: bytes) -> float:
    """The largest relative difference between two CSV tables of one header, over their numeric cells."""
    import csv
    import io

    rows_a = list(csv.reader(io.StringIO(a.decode())))
    rows_b = list(csv.reader(io.StringIO(b.decode())))
    if rows_a[0] != rows_b[0] or len(rows_a) != len(rows_b):
        return float("inf")
    worst = 0.0
    for ra, rb in zip(rows_a[1:], rows_b[1:]):
        for x, y in zip(ra, rb):
            if x != y:
                try:
                    fx, fy = float(x), float(y)
                except ValueError:
                    return float("inf")
                worst = max(worst, abs(fx - fy) / max(abs(fx), 1e-300))
    return worst


def part_two(size: int, repeats: int, before: str) -> list:
    sys.path.insert(0, str(HERE))
    from analyze_memory import write_grid

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "map.zarr"
        write_grid(mask, size, 6)
        times = {"this checkout": [], "before": []}
        csvs = {}
        for repeat in range(repeats):
            for which, src in (("before", before), ("this checkout", str(HERE.parent / "src"))):
                csv = Path(tmp) / f"{which.replace(' ', '_')}-{repeat}.csv"
                env = dict(os.environ, PYTHONPATH=src)
                res = subprocess.run([sys.executable, "-c", CHILD, str(mask), str(csv)], env=env,
                                     capture_output=True, text=True)
                if res.returncode:
                    raise SystemExit(res.stderr[-3000:])
                times[which].append(float(res.stdout.strip().splitlines()[-1]))
                csvs[which] = csv.read_bytes()
        objects = csvs["before"].count(b"\n") - 1
        b, a = statistics.median(times["before"]), statistics.median(times["this checkout"])
        same = "byte-identical" if csvs["before"] == csvs["this checkout"] else \
            f"largest relative difference {csv_difference(csvs['before'], csvs['this checkout']):.1e}"
        rows.append(f"| `tomoseg analyze`, {size}^3 Zarr map, {objects:,} objects | {b:.1f} | {a:.1f} | "
                    f"{b / a:.2f}x | CSV {same} |")
        print(rows[-1], flush=True)
    return rows


POOL_CHILD = r"""
import sys, time
import tomoseg
from tomoseg.objects import AnalysisOptions, analyze
if __name__ == "__main__":
    t0 = time.perf_counter()
    analyze(tomoseg.open_volume(sys.argv[1]), options=AnalysisOptions(processes=int(sys.argv[2])))
    print(time.perf_counter() - t0)
"""


def part_three(size: int, repeats: int) -> list:
    """``analyze`` (Python API) on a chunked map with the objects measured on the labelling's threads, and in
    worker processes (one a core), alternating, in fresh processes."""
    from tomoseg.objects.measure_processes import measure_processes

    sys.path.insert(0, str(HERE))
    from analyze_memory import write_grid

    pool = measure_processes()
    times = {0: [], pool: []}
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "map.zarr"
        write_grid(mask, size, 6)
        script = Path(tmp) / "child.py"
        script.write_text(POOL_CHILD)
        for _ in range(repeats):
            for processes in times:
                res = subprocess.run([sys.executable, str(script), str(mask), str(processes)], capture_output=True,
                                     text=True, env=dict(os.environ, PYTHONPATH=str(HERE.parent / "src")))
                if res.returncode:
                    raise SystemExit(res.stderr[-3000:])
                times[processes].append(float(res.stdout.strip().splitlines()[-1]))
    threads, procs = statistics.median(times[0]), statistics.median(times[pool])
    row = f"| {size}^3 map, 19-voxel balls every 6 voxels | {threads:.1f} | {procs:.1f} ({pool}) | {threads / procs:.2f}x |"
    print(row, flush=True)
    return [row]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96, help="part 1's volumes are size^3 (default 96)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=None, help="an older checkout's src folder: part 2")
    ap.add_argument("--cli-size", type=int, default=448)
    ap.add_argument("--cli-repeats", type=int, default=2)
    ap.add_argument("--pool", action="store_true", help="part 3: threads against worker processes")
    ap.add_argument("--out", default=str(HERE / "results" / "measure_objects.md"))
    args = ap.parse_args(argv)
    head = (f"# Measuring objects: all at once against one at a time\n\n`python benchmarks/measure_objects.py"
            f"{' --before SRC' if args.before else ''}` on {machine_and_time()}.\n\n"
            f"Part 1: {args.size}^3 volumes, labelled once, each way timed on the same labels, median of "
            f"{args.repeats} interleaved runs; the largest relative difference between the tables over every "
            "column.\n\n")
    table = ["| volume | objects | mean voxels | one at a time, µs/object | all at once, µs/object | speed-up | "
             "largest difference |", "|---|---:|---:|---:|---:|---:|---:|"]
    table += part_one(args.size, args.repeats)
    text = head + "\n".join(table) + "\n"
    if args.before:
        text += (f"\nPart 2: end to end in fresh processes, median of {args.cli_repeats}, alternating (s).\n\n"
                 "| run | before | this checkout | speed-up | output |\n|---|---:|---:|---:|---|\n")
        text += "\n".join(part_two(args.cli_size, args.cli_repeats, args.before)) + "\n"
    if args.pool:
        text += (f"\nPart 3: `analyze` (Python API) on a chunked map, the objects measured on the labelling's threads "
                 f"or in worker processes, fresh processes alternating, median of {args.cli_repeats} (s).\n\n"
                 "| volume | threads | processes (how many) | processes' speed-up |\n|---|---:|---:|---:|\n")
        text += "\n".join(part_three(args.cli_size, args.cli_repeats)) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
