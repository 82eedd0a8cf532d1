"""Peak memory and time of writing a large output, per format, and of segment's finish step into HDF5 and TIFF.

Writes Z x 1024 x 1024 uint8 (2 GiB at the default Z = 2048; random values, the worst case for compression, as
in the scale review) with ``tomoseg.create_volume`` in slabs of 64 slices, each format in a fresh process
running the tomoseg of ``--src`` (another checkout's ``src``, to compare before and after a change), and
reports the process's peak RSS (VmHWM), its file-backed resident memory (RssFile) at the end, and the time.
Then ``finish``: segment's conversion of its Zarr work store (64^3 chunks) into the output
(``tomoseg.inference.outputs.finish_output``), for ``.h5`` and ``.tif``.

    python benchmarks/output_memory.py --src src --label after
    python benchmarks/output_memory.py --src /tmp/old/src --label before
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _cli_child import run_child
from _report import emit_section, table_body

CHILD = r"""
import json, sys, time
import numpy as np
import tomoseg
from tomoseg.cpu_memory import peak_rss

def rss_file():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
mode, path, Z = sys.argv[1], sys.argv[2], int(sys.argv[3])
shape = (Z, 1024, 1024)
slab = np.random.default_rng(0).integers(0, 256, (64,) + shape[1:], dtype=np.uint8)
if mode == "finish":
    from tomoseg.inference.outputs import finish_output
    from tomoseg.io.zarr_store import create_zarr
    work = path + ".work.zarr"
    sink = create_zarr(__import__("pathlib").Path(work), shape, np.uint8, chunks=(64, 64, 64))
    for z in range(0, Z, 64):
        sink.array[z:z + 64] = slab
    sink.finish()
    t0 = time.perf_counter()
    finish_output(__import__("pathlib").Path(work), path, shape, None, False)
else:
    t0 = time.perf_counter()
    with tomoseg.create_volume(path, shape, np.uint8) as w:
        for z in range(0, Z, 64):
            w[z:z + 64] = slab
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss() / 2**20, "rss_file_mib": rss_file()}))
"""

WRITES = [("write", ".tif"), ("write", ".nrrd"), ("write", ".npy"), ("write", ".h5"), ("write", ".zarr"),
          ("write", " (folder of slices)"), ("finish", ".h5"), ("finish", ".tif")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=2048, help="Z: the output is Z x 1024 x 1024 uint8")
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--out", default="benchmarks/results/output_memory.md")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
    rows = []
    for mode, ext in WRITES:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            target = str(Path(tmp) / ("out" if ext.startswith(" ") else f"out{ext}"))
            run = run_child(CHILD, [mode, target, args.slices], env=env)
        what = f"`{mode}` {ext.strip()}"
        rows.append(f"| {what} | {run['seconds']:.1f} s | {run['peak_rss_mib']:.0f} MiB | "
                    f"{run['rss_file_mib']:.0f} MiB |")
        print(rows[-1], file=sys.stderr)
    gib = args.slices * 2**20 / 2**30
    body = table_body(
        f"{args.slices} x 1024 x 1024 uint8 ({gib:.1f} GiB, random values), slabs of 64 slices, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}; tomoseg from `{args.src}`.",
        ["output", "time", "peak RSS (VmHWM)", "RssFile at the end"], rows)
    emit_section(args.out, f"{args.label}: {args.slices} x 1024 x 1024", body,
                 title="Writing large outputs: memory and time per format",
                 intro="Written by benchmarks/output_memory.py; the notes at the end by hand.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
