"""Peak memory and time of ``tomoseg track`` as the scans grow 4x in depth: in memory, and chunk by chunk.

Writes two scans of DEPTH x SIZE x SIZE (Zarr, chunks 64x128x128): balls of radius 2-6 voxels on a jittered
grid, repeated every 64 slices, gray values with noise; the AFTER scan is the BEFORE scan shifted by (0, 3, -2)
voxels. ``tomoseg track`` runs in a fresh process with the masks as labels and the shift as ``--transform``
(registration reads slabs and crops either way, and is left out), once with every scan held in memory and
once chunk by chunk (``TrackOptions.in_memory_voxels`` set to 2^40 or 0), at two depths. The match-ID image
goes to Zarr. Both modes must write the same matches.csv.

    python benchmarks/track_memory.py --size 512 --depths 64 256 1024
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


def run(folder: Path, in_memory_voxels: int, out: Path) -> dict:
    args = [str(folder / "before_image.zarr"), str(folder / "after_image.zarr"),
            "--before-labels", str(folder / "before_mask.zarr"), "--after-labels", str(folder / "after_mask.zarr"),
            "--transform", str(folder / "transform.json"), "--labels-out", "ids.zarr", "--out", str(out)]
    return run_cli("tomoseg.cli.track", in_memory_voxels, ["track", *args])


def main(argv=None) -> int:
    args = memory_arguments(__doc__, "benchmarks/results/track_memory.md", argv)
    rows = []
    for depth, folder, runs in runs_by_depth(args.depths, args.size, write_pair, run):
        matches = [(folder / m / "matches.csv").read_text() for m in ("in_memory", "chunk_by_chunk")]
        same, links = matches[0] == matches[1], len(matches[0].splitlines()) - 1
        for mode, r in runs.items():
            rows.append(f"| {depth}x{args.size}x{args.size} | {depth * args.size ** 2 / 1e6:.0f} | {mode} | "
                        f"{r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {links} | {'yes' if same else 'NO'} |")
    body = "\n".join([
        "Two scans (Zarr, chunks 64x128x128, uint8), masks as labels, the shift given as --transform; one fresh "
        "process per run (peak RSS of the whole process: Python, NumPy, SciPy, Zarr included).", "",
        "| scans | Mvox each | mode | time (s) | peak RSS (MiB) | links | same matches.csv |",
        "|---|---:|---|---:|---:|---:|---|", *rows]) + "\n"
    emit_section(args.out, f"{args.size}-{'-'.join(map(str, args.depths))}", body,
                 title="tomoseg track: peak memory as the scans grow",
                 intro="`python benchmarks/track_memory.py`; every figure from one run on the machine named "
                       "in the section's notes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
