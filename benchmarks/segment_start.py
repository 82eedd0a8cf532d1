"""Where a fresh `tomoseg segment` process spends its time before the first window is done, phase by phase.

On one H200 the CLI took 10.0 s for the paper's 256x1024x1024 volume against 2.4 s in a process that had
already started (benchmarks/results/segment_throughput.md). This measures the difference: each round starts
a fresh Python process that times, in order,

- ``python``: from the parent's spawn to the child's first line (the interpreter's start);
- ``import tomoseg.cli``: what the CLI imports before it parses its arguments;
- ``import torch``;
- ``device``: CUDA's context (``torch.cuda.init`` and a first tensor), nothing on the CPU;
- ``model``: the shipped model read, checked, made into the inference copy segment runs (BatchNorms folded,
  the memory order of ``tomoseg.memory_order``) on the device;
- ``first small forward``: one 1x1x64^3 window (on CUDA: cuDNN's libraries and kernels load here);
- ``first window``: the first forward of the window batch ``segment`` runs (``--window``), a new shape;
- ``second window``: the same again, the steady cost of one batch.

Medians over ``--rounds`` fresh processes. cuDNN's autotuning follows ``TOMOSEG_CUDNN_BENCHMARK`` as in
``segment`` (off unless set to 1).

    python benchmarks/segment_start.py --device cuda          # on a GPU: window 3x1x256x304x560
    python benchmarks/segment_start.py --device cpu --window 1x1x64x96x96 --rounds 1   # a dry run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit_section  # noqa: E402

PHASES = ["python", "import tomoseg.cli", "import torch", "device", "model", "first small forward",
          "first window", "second window"]

CHILD = r"""
import json, os, sys, time
marks = [("start", time.time())]
def mark(name, sync=None):
    if sync is not None:
        sync()
    marks.append((name, time.time()))
import tomoseg.cli
mark("import tomoseg.cli")
import torch
mark("import torch")
device = sys.argv[1]
cuda = device.startswith("cuda")
sync = torch.cuda.synchronize if cuda else None
torch.backends.cudnn.benchmark = os.environ.get("TOMOSEG_CUDNN_BENCHMARK", "0") == "1"
if cuda:
    torch.cuda.init()
    torch.zeros(1, device=device)
mark("device", sync)
import tomoseg
from tomoseg.model import inference_copy
# the network as segment runs it: BatchNorms folded, in the memory order that pays on the device
model = inference_copy(tomoseg.load_model(), device)
mark("model", sync)
window = tuple(int(v) for v in sys.argv[2].split("x"))
with torch.inference_mode():
    model(torch.zeros((1, 1, 64, 64, 64), device=device))
    mark("first small forward", sync)
    x = torch.zeros(window, device=device)
    model(x)
    mark("first window", sync)
    model(x)
    mark("second window", sync)
print(json.dumps(marks))
"""


def one_round(device: str, window: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")] if p)}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, device, window], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    marks = json.loads(out.stdout.strip().splitlines()[-1])
    times = {"python": marks[0][1] - t0}
    for (_, a), (name, b) in zip(marks, marks[1:]):
        times[name] = b - a
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--window", default="3x1x256x304x560", help="the window batch segment runs (n x 1 x z x y x x)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/segment_start.md")
    args = ap.parse_args(argv)
    rounds = [one_round(args.device, args.window) for _ in range(args.rounds)]
    med = {p: statistics.median(r[p] for r in rounds) for p in PHASES}
    total = sum(med.values())
    rows = "".join(f"| {p} | {med[p]:.2f} | {100 * med[p] / total:.0f} % |\n" for p in PHASES)
    name = "cpu"
    if args.device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(0)
    body = (f"{name}, window batch {args.window}, cuDNN autotuning "
            f"{'on' if os.environ.get('TOMOSEG_CUDNN_BENCHMARK') == '1' else 'off'}; median of {args.rounds} fresh "
            f"processes, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            "| phase | seconds | share |\n|---|---:|---:|\n" + rows + f"| **total** | **{total:.2f}** | |\n\n")
    emit_section(args.out, f"{args.device} {args.window}", body, title="Start of a segment process, phase by phase",
                 intro="`python benchmarks/segment_start.py` (see its docstring for the phases).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
