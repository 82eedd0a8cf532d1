"""Peak memory and time of ``tomoseg evaluate --intensity --out`` as the volumes grow: in memory, and chunk by chunk.

The volumes are those of ``track_memory.py`` (balls of radius 2-6 voxels repeated every 64 slices, Zarr, chunks
64x128x128): the BEFORE mask is the ground truth (as 0/255), the AFTER mask (the same balls shifted by
(0, 3, -2) voxels) the prediction, the BEFORE image the gray values. ``tomoseg evaluate`` runs in a fresh process,
once with the objects labelled in memory and once chunk by chunk (``AnalysisOptions.in_memory_voxels`` 2^40 or 0),
at each depth. Both modes must write the same evaluation.json.

    python benchmarks/evaluate_memory.py --size 512 --depths 64 256 1024
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _cli_child import memory_arguments, run_cli, runs_by_depth
from _report import emit_section
from track_memory import write_pair

def truth_as_255(folder: Path) -> None:
    import numpy as np

    import tomoseg

    src = tomoseg.open_volume(str(folder / "before_mask.zarr"))
    w = tomoseg.create_volume(str(folder / "truth.zarr"), src.shape, np.uint8, chunks=(64, 128, 128),
                              voxel_size=(29.33,) * 3)
    for z0 in range(0, src.shape[0], 64):
        w[z0:z0 + 64] = src[z0:z0 + 64] * np.uint8(255)
    w.close()


def run(folder: Path, in_memory_voxels: int, out: Path) -> dict:
    args = [str(folder / "after_mask.zarr"), str(folder / "truth.zarr"), "--intensity",
            str(folder / "before_image.zarr"), "--out", str(out)]
    return run_cli("tomoseg.cli.analysis", in_memory_voxels, ["evaluate", *args])


def main(argv=None) -> int:
    args = memory_arguments(__doc__, "benchmarks/results/evaluate_memory.md", argv)
    rows = []

    def prepare(folder, depth, size):
        write_pair(folder, depth, size)
        truth_as_255(folder)

    for depth, folder, runs in runs_by_depth(args.depths, args.size, prepare, run):
        results = [json.loads((folder / m / "evaluation.json").read_text()) for m in ("in_memory", "chunk_by_chunk")]
        same = results[0] == results[1]
        o = results[0]["objects"]
        for mode, r in runs.items():
            rows.append(f"| {depth}x{args.size}x{args.size} | {depth * args.size ** 2 / 1e6:.0f} | {mode} | "
                        f"{r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {o['true_objects']} | "
                        f"{o['recall']:.3f} | {'yes' if same else 'NO'} |")
    body = "\n".join([
        "Prediction (a mask), ground truth (0/255) and gray values, Zarr, chunks 64x128x128, uint8; "
        "`tomoseg evaluate --intensity --out` in a fresh process per run (peak RSS of the whole process).", "",
        "| volumes | Mvox each | objects | time (s) | peak RSS (MiB) | true objects | object recall | same "
        "evaluation.json |", "|---|---:|---|---:|---:|---:|---:|---|", *rows]) + "\n"
    emit_section(args.out, f"{args.size}-{'-'.join(map(str, args.depths))}", body,
                 title="tomoseg evaluate: peak memory as the volumes grow",
                 intro="`python benchmarks/evaluate_memory.py`; every figure from one run on the machine named "
                       "in the section's notes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
