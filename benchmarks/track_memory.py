"""Peak memory and time of ``tomoseg track`` as the scans grow 4x in depth: in memory, and chunk by chunk.

Writes two scans of DEPTH x SIZE x SIZE (Zarr, chunks 64x128x128): balls of radius 2-6 voxels on a jittered
grid, repeated every 64 slices, gray values with noise; the AFTER scan is the BEFORE scan shifted by (0, 3, -2)
voxels. ``tomoseg track`` runs in a fresh process with the masks as labels and the shift as ``--transform``
(registration reads slabs and crops either way, and is left out), once with every scan held in memory and
once chunk by chunk (``TrackOptions.in_memory_voxels`` set to 2^40 or 0), at two depths. The match-ID image
goes to Zarr. Both modes must write the same matches.csv.

At the depths named by ``--register`` (default: none), one more run, chunk by chunk, leaves the transform out, so
that ``track`` registers the scans itself: its coarse stage reads both scans whole (block means of factor^3
voxels, the factor chosen from the scans' size); the row says the registered shift and whether it pairs the
same objects as the run given the shift.

    python benchmarks/track_memory.py --size 512 --depths 64 256 1024 --register 256 1024
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _cli_child import memory_arguments, run_cli, runs_by_depth
from _report import emit_section

import numpy as np

SHIFT = (0, 3, -2)

def write_pair(folder: Path, depth: int, size: int, rng=0) -> None:
    """BEFORE and AFTER images and masks (Zarr); AFTER = BEFORE shifted by SHIFT within each slice."""
    import tomoseg

    rng = np.random.default_rng(rng)
    mask = np.zeros((64, size, size), np.uint8)
    spacing = 16
    for cz in range(10, 54, spacing):
        for cy in range(10, size - 10, spacing):
            for cx in range(10, size - 10, spacing):
                r = rng.uniform(2, 6)
                c = np.array([cz, cy, cx]) + rng.integers(-2, 3, 3)
                ri = int(np.ceil(r))
                zz, yy, xx = np.ogrid[-ri:ri + 1, -ri:ri + 1, -ri:ri + 1]
                ball = zz ** 2 + yy ** 2 + xx ** 2 <= r * r
                mask[c[0] - ri:c[0] + ri + 1, c[1] - ri:c[1] + ri + 1, c[2] - ri:c[2] + ri + 1] |= ball
    image = (170 - 70 * mask.astype(np.float32) + rng.normal(0, 12, mask.shape)).clip(0, 255).astype(np.uint8)
    for scan, shift in (("before", (0, 0)), ("after", SHIFT[1:])):
        for name, data in (("image", image), ("mask", mask)):
            w = tomoseg.create_volume(str(folder / f"{scan}_{name}.zarr"), (depth, size, size), np.uint8,
                                      chunks=(64, 128, 128), voxel_size=(29.33,) * 3)
            block = np.roll(data, shift, axis=(1, 2))
            for z0 in range(0, depth, 64):
                w[z0:min(z0 + 64, depth)] = block[:min(64, depth - z0)]
            w.close()
    matrix = np.eye(4)
    matrix[:3, 3] = SHIFT
    (folder / "transform.json").write_text(json.dumps({"matrix": matrix.tolist()}))


def run(folder: Path, in_memory_voxels: int, out: Path, *, register: bool = False) -> dict:
    args = [str(folder / "before_image.zarr"), str(folder / "after_image.zarr"),
            "--before-labels", str(folder / "before_mask.zarr"), "--after-labels", str(folder / "after_mask.zarr"),
            *([] if register else ["--transform", str(folder / "transform.json")]),
            "--labels-out", "ids.zarr", "--out", str(out)]
    return run_cli("tomoseg.cli.track", in_memory_voxels, ["track", *args])


def pairs(matches_csv: str) -> list:
    """The pairing columns of a matches.csv (match_id to group_after): what a registration off by a fraction of a
    voxel leaves the same, while the displacements change by its residual."""
    return [line.split(",")[:8] for line in matches_csv.splitlines()]


def registered_shift(out: Path) -> str:
    """The translation ``track`` found (z, y, x voxels, one decimal), from the transform.json it wrote."""
    matrix = np.asarray(json.loads((out / "transform.json").read_text())["matrix"])
    return "(" + ", ".join(f"{v:.1f}" for v in matrix[:3, 3]) + ")"


def main(argv=None) -> int:
    def extra(ap):
        ap.add_argument("--register", type=int, nargs="*", default=[], metavar="DEPTH",
                        help="depths at which to run once more, chunk by chunk, with track's own registration")

    args = memory_arguments(__doc__, "benchmarks/results/track_memory.md", argv, extra)
    rows = []
    for depth, folder, runs in runs_by_depth(args.depths, args.size, write_pair, run):
        matches = [(folder / m / "matches.csv").read_text() for m in ("in_memory", "chunk_by_chunk")]
        same, links = matches[0] == matches[1], len(matches[0].splitlines()) - 1
        if depth in args.register:
            out = folder / "registered"
            r = run(folder, 0, out, register=True)
            print(f"  chunk by chunk, registered: {r}", file=sys.stderr)
            registered = (out / "matches.csv").read_text()
            runs[f"chunk by chunk, registered {registered_shift(out)}"] = {
                **r, "links": len(registered.splitlines()) - 1, "same": pairs(registered) == pairs(matches[1])}
        for mode, r in runs.items():
            n, ok = r.get("links", links), r.get("same", same)
            rows.append(f"| {depth}x{args.size}x{args.size} | {depth * args.size ** 2 / 1e6:.0f} | {mode} | "
                        f"{r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {n} | {'yes' if ok else 'NO'} |")
    body = "\n".join([
        "Two scans (Zarr, chunks 64x128x128, uint8), masks as labels, the shift given as --transform (the "
        "registered rows: found by track); one fresh process per run (peak RSS of the whole process: Python, "
        "NumPy, SciPy, Zarr included). Registered rows: \"same\" compares the pairs (matches.csv's columns "
        "match_id to group_after) with the run given the shift.", "",
        "| scans | Mvox each | mode | time (s) | peak RSS (MiB) | links | same matches.csv |",
        "|---|---:|---|---:|---:|---:|---|", *rows]) + "\n"
    key = f"{args.size}-{'-'.join(map(str, args.depths))}" + (
        f"-register-{'-'.join(map(str, args.register))}" if args.register else "")
    emit_section(args.out, key, body,
                 title="tomoseg track: peak memory as the scans grow",
                 intro="`python benchmarks/track_memory.py`; every figure from one run on the machine named "
                       "in the section's notes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
