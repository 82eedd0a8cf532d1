"""What ``tomoseg analyze`` spends after measuring: the objects table as CSV, and the results folder.

Part 1, in this process: an objects table of ``--rows`` rows (the columns and types of analyze's table, random
values) written by :func:`tomoseg.table.write_csv`, and by the csv module's writer from the same cells (how
write_csv wrote every table before), interleaved, median of ``--repeats``; the two files compared byte for byte.

Part 2, with ``--before SRC`` (the ``src`` folder of an older checkout, e.g. ``git worktree add /tmp/old REV``):
``tomoseg analyze MAP --csv FILE`` and ``... --csv FILE --out DIR`` (the results folder: objects.csv, figures,
summary) end to end in fresh processes on a chunked Zarr map (``--size``^3, 19-voxel balls every 6 voxels), this
checkout and SRC alternating, median of ``--cli-repeats``; the CSV files compared byte for byte.

    python benchmarks/analyze_outputs.py --before /tmp/old/src
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import emit, machine_and_time

HERE = Path(__file__).resolve().parent


def objects_table(rows: int, seed: int = 0) -> dict:
    """A table of analyze's columns and types (integers, float64 with full digits, booleans)."""
    rng = np.random.default_rng(seed)
    table = {"label": np.arange(1, rows + 1), "volume_vox": rng.integers(8, 3000, rows)}
    for name in ("volume_nm3", "equivalent_radius_vox", "equivalent_radius_nm", "centroid_z", "centroid_y",
                 "centroid_x", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm"):
        table[name] = rng.random(rows) * 10.0 ** rng.integers(0, 6)
    for name in ("bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"):
        table[name] = rng.integers(0, 4096, rows)
    for name in ("surface_voxel_nm2", "surface_mesh_nm2", "sphericity_voxel", "sphericity_mesh", "mean_gray",
                 "mean_probability", "max_probability"):
        table[name] = rng.random(rows) * 10.0 ** rng.integers(0, 6)
    table["touches_border"] = rng.random(rows) < 0.05
    table["too_small"] = np.zeros(rows, bool)
    return table


def csv_module(table: dict, path: Path) -> None:
    """The same cells through the csv module's writer (write_csv before)."""
    from tomoseg.table import CSV_BLOCK_ROWS, _cells, n_rows

    columns = list(table)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        n = n_rows(table)
        for start in range(0, n, CSV_BLOCK_ROWS):
            block = slice(start, min(start + CSV_BLOCK_ROWS, n))
            writer.writerows(zip(*(_cells(np.asarray(table[c][block])) for c in columns)))


def part_one(rows: int, repeats: int) -> list:
    from tomoseg.table import write_csv

    table = objects_table(rows)
    times = {"csv module": [], "write_csv": []}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "module.csv", Path(tmp) / "write_csv.csv"
        for _ in range(repeats):
            t = time.perf_counter()
            csv_module(table, a)
            times["csv module"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_csv(table, b, overwrite=True)
            times["write_csv"].append(time.perf_counter() - t)
        same = a.read_bytes() == b.read_bytes()
        size = b.stat().st_size
    old, new = statistics.median(times["csv module"]), statistics.median(times["write_csv"])
    row = (f"| {rows:,} rows x {len(table)} columns ({size / 2**20:.0f} MiB) | {old:.2f} | {new:.2f} | "
           f"{old / new:.2f}x | {'byte-identical' if same else 'DIFFERENT'} |")
    print(row, flush=True)
    return [row]


CHILD = r"""
import sys, time
from tomoseg.cli import main
t0 = time.perf_counter()
code = main(["-q", "analyze", *sys.argv[1:]])
print(time.perf_counter() - t0)
sys.exit(code)
"""


def part_two(size: int, repeats: int, before: str) -> list:
    sys.path.insert(0, str(HERE))
    from analyze_memory import write_grid

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mask = tmp / "map.zarr"
        write_grid(mask, size, 6)
        for what, extra in (("`--csv`", []), ("`--csv --out` (results folder, figures)", ["--out"])):
            times = {"before": [], "this checkout": []}
            csvs = {}
            for repeat in range(repeats):
                for which, src in (("before", before), ("this checkout", str(HERE.parent / "src"))):
                    name = f"{which.replace(' ', '_')}-{repeat}-{len(extra)}"
                    args = [str(mask), "--csv", str(tmp / f"{name}.csv")]
                    args += [extra[0], str(tmp / name)] if extra else []
                    res = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                                         env=dict(os.environ, PYTHONPATH=src, MPLBACKEND="Agg"))
                    if res.returncode:
                        raise SystemExit(res.stderr[-3000:])
                    times[which].append(float(res.stdout.strip().splitlines()[-1]))
                    csvs[which] = (tmp / f"{name}.csv").read_bytes()
            objects = csvs["before"].count(b"\n") - 1
            b, a = statistics.median(times["before"]), statistics.median(times["this checkout"])
            same = "byte-identical" if csvs["before"] == csvs["this checkout"] else "DIFFERENT"
            rows.append(f"| `tomoseg analyze` {what}, {size}^3 Zarr map, {objects:,} objects | {b:.1f} | {a:.1f} | "
                        f"{b / a:.2f}x | CSV {same} |")
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=None, help="an older checkout's src folder: part 2")
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--cli-repeats", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "analyze_outputs.md"))
    args = ap.parse_args(argv)
    text = (f"# What analyze spends after measuring: the CSV and the results folder\n\n"
            f"`python benchmarks/analyze_outputs.py{' --before SRC' if args.before else ''}` on {machine_and_time()}."
            f"\n\nPart 1: writing an objects table, median of {args.repeats} interleaved runs (s).\n\n"
            "| table | csv module's writer | write_csv | speed-up | files |\n|---|---:|---:|---:|---|\n")
    text += "\n".join(part_one(args.rows, args.repeats)) + "\n"
    if args.before:
        text += (f"\nPart 2: end to end in fresh processes, median of {args.cli_repeats}, alternating (s).\n\n"
                 "| run | before | this checkout | speed-up | output |\n|---|---:|---:|---:|---|\n")
        text += "\n".join(part_two(args.size, args.cli_repeats, args.before)) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
