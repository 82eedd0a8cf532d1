"""Segmentation throughput, side by side on one volume with the same weights.

Rows: tomoseg segment end to end (read, normalize, infer, write) with each backend; the paper-style
single PyTorch pass over the whole volume (its code predicts one region in one pass); MONAI's
sliding_window_inference (roi 128^3, overlap 0.25, gaussian). Each method runs in its own process so
that its peak RSS is its own; the table gives the median time of --repeats runs.

    python benchmarks/segment_throughput.py --shape 128 512 512 --out benchmarks/results/segment_throughput.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import emit

CHILD = r"""
import json, resource, sys, time
import numpy as np
method, src, out, model_path = sys.argv[1:5]
import torch, tomoseg
from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig, segment
from tomoseg.inference.normalization import normalize, volume_stats
model = tomoseg.load_model(model_path)
t0 = time.perf_counter()
if method.startswith("tomoseg"):
    _, backend, precision = method.split(":")
    segment(src, out, model=model, progress=False,
            options=SegmentOptions(backend=BackendConfig(backend=backend, precision=precision)))
elif method == "paper-single-pass":
    image = tomoseg.read_volume(src)
    x = torch.from_numpy(normalize(image, volume_stats(image)))[None, None]
    with torch.inference_mode():
        prob = torch.sigmoid(model(x))[0, 0].numpy()
    tomoseg.write_volume(out, np.rint(prob * 255).astype(np.uint8))
elif method == "monai-sliding-window":
    from monai.inferers import sliding_window_inference
    image = tomoseg.read_volume(src)
    x = torch.from_numpy(normalize(image, volume_stats(image)))[None, None]
    with torch.inference_mode():
        logits = sliding_window_inference(x, roi_size=(128, 128, 128), sw_batch_size=1, predictor=model,
                                          overlap=0.25, mode="gaussian")
        prob = torch.sigmoid(logits)[0, 0].numpy()
    tomoseg.write_volume(out, np.rint(prob * 255).astype(np.uint8))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

METHODS = ["tomoseg:openvino:f32", "tomoseg:openvino:bf16", "tomoseg:torch:f32", "paper-single-pass",
           "monai-sliding-window"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", nargs=3, type=int, default=[128, 512, 512])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--model", help="model file (default: the shipped default model)")
    ap.add_argument("--out", default="benchmarks/results/segment_throughput.md")
    args = ap.parse_args(argv)

    import numpy as np

    import tomoseg
    from tomoseg.checkpoint import default_model_path

    model_path = args.model or str(default_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "volume.zarr"
        ph = tomoseg.make_phantom(tuple(args.shape), rng=123)
        tomoseg.write_volume(str(src), ph.image, voxel_size=(29.33,) * 3)
        voxels = int(np.prod(args.shape))
        del ph
        rows = []
        outputs = {}
        for method in args.methods:
            runs = []
            for r in range(args.repeats):
                out = Path(tmp) / f"out_{len(rows)}_{r}.zarr"
                res = subprocess.run([sys.executable, "-c", CHILD, method, str(src), str(out), model_path],
                                     capture_output=True, text=True)
                if res.returncode:
                    print(res.stderr[-2000:], file=sys.stderr)
                    runs = []
                    break
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                outputs[method] = out
            if not runs:
                rows.append({"method": method, "failed": True})
                continue
            sec = statistics.median(r["seconds"] for r in runs)
            rows.append({"method": method, "seconds": sec, "mvox_s": voxels / sec / 1e6,
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)})
            print(f"{method}: {sec:.1f} s", file=sys.stderr)
        ref = outputs.get("paper-single-pass")
        if ref is not None:
            whole = tomoseg.read_volume(ref).astype(int)
            for row in rows:
                if row.get("failed") or row["method"] not in outputs:
                    continue
                row["max_abs_diff_vs_single_pass"] = int(np.abs(tomoseg.read_volume(outputs[row["method"]])
                                                               .astype(int) - whole).max())
    base = {r["method"]: r for r in rows if not r.get("failed")}
    lines = [f"# Segmentation throughput ({time.strftime('%Y-%m-%d')})", "",
             f"Volume {' x '.join(map(str, args.shape))} ({voxels / 1e6:.1f} Mvox) phantom, model "
             f"`{Path(model_path).name}`; machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores; median of {args.repeats} run(s), each in its own process.", "",
             "| method | seconds | Mvox/s | vs paper-style pass | vs MONAI | peak RSS (MiB) | max diff vs single pass (0-255) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("failed"):
            lines.append(f"| {r['method']} | failed | | | | | |")
            continue
        ratio = lambda key: (f"{base[key]['seconds'] / r['seconds']:.2f}x" if key in base else "n/a")
        lines.append(f"| {r['method']} | {r['seconds']:.1f} | {r['mvox_s']:.2f} | {ratio('paper-single-pass')} | "
                     f"{ratio('monai-sliding-window')} | {r['peak_rss_mib']:.0f} | "
                     f"{r.get('max_abs_diff_vs_single_pass', '')} |")
    table = "\n".join(lines) + "\n"
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
