"""Segmentation throughput, side by side in one process, on one volume with the same (shipped) weights.

Rows, each timed from the input file to the output file(s) (read, normalize, infer, write):

- ``tomoseg``: ``segment()`` with its defaults, in this process (imports done; the model file is read);
- ``tomoseg, no sample mask``: the same with ``sample_mask="off"`` (every tile computed);
- ``tomoseg, no sample mask, CUDA defaults before 2026-11-28`` (a GPU only): the same with the CUDA backend's
  changes of that day off (``device_stats=False``: the statistics binned by NumPy on the host;
  ``device_input=False``: windows from the host's copy of the volume, not the GPU's), side by side;
- ``tomoseg, PyTorch backend`` (the CPU only): the same as ``tomoseg`` with ``backend="torch"``, the CPU path of
  an installation without OpenVINO (its network: BatchNorms folded, channels-last memory);
- ``tomoseg, no sample mask, cuDNN autotuning on`` (a GPU only): the same with cuDNN trying its kernels on
  each window shape and running the fastest (``TOMOSEG_CUDNN_BENCHMARK=1``; off by default), which says what
  the tuning (seconds per window shape) gains per window;
- ``tomoseg CLI``: ``python -m tomoseg segment IN OUT`` in a subprocess: process start, imports, model
  load and compile (from the on-disk cache after the first run) included;
- ``tomoseg --gpus 1`` (a GPU only): the tiles as Dask tasks on a local cluster of one GPU worker, the
  cluster's and the worker's start included;
- ``paper-style pass``: one PyTorch pass over the whole volume, as the paper's code predicts a region;
- ``paper-style pass as a script``: the same in a fresh process (Python, PyTorch's import, the model), as a
  user runs it: the reference for the CLI row, both with their process start;
- ``MONAI``: ``sliding_window_inference`` (roi 128^3, overlap 0.25, gaussian blending).

On the CPU the volumes are 128x512x512 and 128x256x256 (``--quick``: 64x256x256 and one run); on a GPU
(when ``torch.cuda.is_available()``) 256x1024x1024, the paper's volume, on ``device="cuda"``. Times are
medians of ``--repeats`` runs (``--gpu-repeats`` for the big GPU volume) in interleaved rounds, after one
untimed warm-up of tomoseg that fills the compiled-model cache (and on a GPU one of MONAI, whose first run tunes
cuDNN for its windows); the CPU-seconds column (this process and
its children, user + system) is less sensitive than wall time to other users of a shared machine. Peak memory is sampled per row: host RSS (this process, or
the CLI child) and GPU memory (PyTorch's allocator peak). "max diff" compares each output with the
paper-style pass on the 0-255 scale: everywhere, and inside the sample (the phantom's pillar).

The input is a phantom from ``tomoseg.make_phantom`` (``--input phantom``, the default on the CPU sizes);
for the GPU volume a 2x2x2 tiling of a 128x512x512 phantom (``--input tiled``: four pillars side by side,
the same share of environment, a minute instead of many to make).

Each (device, shape) run replaces only its own section of ``--out``, so a CPU run keeps GPU results.

    python benchmarks/segment_throughput.py                   # CPU (and GPU where present), median of 3
    python benchmarks/segment_throughput.py --quick           # a minute: 64x256x256, one run, no MONAI
    python benchmarks/segment_throughput.py --device cuda --gpu-repeats 1 --methods tomoseg paper monai
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit_section  # noqa: E402

METHODS = ["tomoseg", "tomoseg-nomask", "tomoseg-before", "tomoseg-torch", "tomoseg-tuned", "tomoseg-cli", "tomoseg-cli-tuned", "tomoseg-gpus",
           "paper", "paper-script", "monai"]
GPU_ONLY = {"tomoseg-tuned", "tomoseg-cli-tuned", "tomoseg-gpus", "tomoseg-before"}  # cuDNN's autotuning, --gpus: rows for a GPU
CPU_ONLY = {"tomoseg-torch"}  # the CPU path where OpenVINO is not installed
LABELS = {"tomoseg": "tomoseg (defaults)", "tomoseg-nomask": "tomoseg, no sample mask",
          "tomoseg-before": "tomoseg, no sample mask, CUDA defaults before 2026-11-28 (statistics binned by NumPy, "
                            "windows from the host's copy of the volume)",
          "tomoseg-torch": "tomoseg, PyTorch backend (as without OpenVINO installed)",
          "tomoseg-tuned": "tomoseg, no sample mask, cuDNN autotuning on",
          "tomoseg-cli": "tomoseg CLI (process start included)",
          "tomoseg-cli-tuned": "tomoseg CLI, cuDNN autotuning on (TOMOSEG_CUDNN_BENCHMARK=1)",
          "tomoseg-gpus": "tomoseg --gpus 1 (a local Dask cluster of one GPU worker; its start included)",
          "paper": "paper-style whole-volume pass",
          "paper-script": "paper-style pass as a script (process start included: Python, PyTorch, the model)",
          "monai": "MONAI sliding_window_inference"}
CPU_SHAPES = [(128, 512, 512), (128, 256, 256)]
GPU_SHAPES = [(256, 1024, 1024)]


class PeakRSS:
    """Peak resident memory of a process (this one by default) while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int | None = None):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()

    def sample(self):
        try:
            self.peak = max(self.peak, self.process.memory_info().rss)
        except Exception:  # the child has exited
            pass

    def _run(self):
        while not self._stop.wait(0.01):
            self.sample()

    def __enter__(self):
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: less sensitive to other users of
    a shared machine than wall time."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _sync(device: str) -> None:
    if _cuda(device):
        import torch

        torch.cuda.synchronize()


def _normalized_tensor(src, device):
    import torch

    import tomoseg
    from tomoseg.inference.normalization import normalize, volume_stats

    image = tomoseg.read_volume(src)
    x = torch.from_numpy(normalize(image, volume_stats(image)))[None, None]
    del image
    return x.to(device)


def run_paper(src, out, model, device) -> dict:
    """One pass of the network over the whole (padded) volume, as the paper's code predicts a region. Where the
    whole volume does not fit (GPU memory, or PyTorch's 32-bit indexing limit), the fewest equal z slabs that do,
    each in one pass (the row then says so; slab faces are not exact)."""
    import torch

    import tomoseg
    from tomoseg.inference.tiling import round_up

    x = _normalized_tensor(src, device)
    d = model.config.divisor
    depth = x.shape[2]
    u8 = np.empty(tuple(x.shape[2:]), np.uint8)
    for slabs in (1, 2, 4, 8):
        try:
            step = round_up(-(-depth // slabs), d)
            for z0 in range(0, depth, step):
                part = x[:, :, z0:z0 + step]
                shape = part.shape[2:]
                pad = [p for s in reversed(shape) for p in (0, round_up(s, d) - s)]
                with torch.inference_mode():
                    if any(pad):
                        part = torch.nn.functional.pad(part, pad, mode="reflect")
                    prob = torch.sigmoid(model(part))[0, 0, :shape[0], :shape[1], :shape[2]]
                    u8[z0:z0 + step] = torch.round(prob * 255).to(torch.uint8).cpu().numpy()
                del part, prob
            break
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if slabs == 8 or not _cuda(device):
                raise
            print(f"paper-style pass in {slabs} slab(s) failed ({str(exc).splitlines()[0][:80]}); "
                  f"trying {2 * slabs}", file=sys.stderr)
            torch.cuda.empty_cache()
    del x
    tomoseg.write_volume(str(out), u8)
    return {"note": f"in {slabs} z slabs (the whole volume did not fit)"} if slabs > 1 else {}


def run_monai(src, out, model, device):
    import torch
    from monai.inferers import sliding_window_inference

    import tomoseg

    x = _normalized_tensor(src, device)
    # as a MONAI user runs it: cuDNN's autotuning on (its windows all have one shape). tomoseg's CUDA backend used
    # to leave the process-wide flag off, which left MONAI on cuDNN's heuristics in the H100's run (17.0 s,
    # against 3.7 s with autotuning on an H200; benchmarks/results/segment_throughput.md)
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with torch.inference_mode():
            logits = sliding_window_inference(x, roi_size=(128, 128, 128), sw_batch_size=4 if _cuda(device) else 1,
                                              predictor=model, overlap=0.25, mode="gaussian")
            del x
            u8 = torch.round(torch.sigmoid(logits) * 255).to(torch.uint8).cpu().numpy()[0, 0]
    finally:
        torch.backends.cudnn.benchmark = before
    tomoseg.write_volume(str(out), u8)


def _segment_options(device, tile_size, sample_mask, backend="auto"):
    from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig

    kwargs = {"backend": BackendConfig(backend=backend, device=device), "overwrite": True}
    if tile_size:
        kwargs["tiling"] = TilingConfig(tile_size=tile_size)
    if sample_mask is not None and "sample_mask" in SegmentOptions.__dataclass_fields__:
        kwargs["sample_mask"] = sample_mask
    return SegmentOptions(**kwargs)


def run_tomoseg(src, out, model, device, tile_size=None, sample_mask=None, tuned: bool = False,
                backend: str = "auto", cuda: dict | None = None) -> dict:
    """``segment`` in this process; returns its stage times (seconds, from the provenance). ``tuned=True``
    runs with cuDNN's autotuning on, as ``TOMOSEG_CUDNN_BENCHMARK=1`` does; ``backend="torch"`` runs PyTorch
    where OpenVINO would run; ``cuda`` holds settings of the CUDA backend other than its defaults."""
    import torch

    from tomoseg.inference import engine, segment

    if cuda:
        from tomoseg.inference.cuda_pipeline import CudaBackend

        made = engine.make_backend
        engine.make_backend = lambda m, config: CudaBackend(m, device, config.precision, **cuda)
        try:
            return run_tomoseg(src, out, model, device, tile_size, sample_mask, tuned, backend)
        finally:
            engine.make_backend = made

    before = torch.backends.cudnn.benchmark, os.environ.get("TOMOSEG_CUDNN_BENCHMARK")
    if tuned:
        os.environ["TOMOSEG_CUDNN_BENCHMARK"] = "1"  # read by the CUDA backend that segment() creates
    try:
        record = segment(src, out, model=model, options=_segment_options(device, tile_size, sample_mask, backend),
                         progress=False)
    finally:
        torch.backends.cudnn.benchmark = before[0]
        if before[1] is None:
            os.environ.pop("TOMOSEG_CUDNN_BENCHMARK", None)
        else:
            os.environ["TOMOSEG_CUDNN_BENCHMARK"] = before[1]
    return {"stages": record.get("timings_s"), "parts": record.get("timings_detail_s")}


def _run_child(cmd, what: str, env_extra=None) -> dict:
    """Run ``cmd`` in a fresh process with this checkout's ``src`` on the path; returns its peak RSS in MiB (the
    caller times it)."""
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[1] / "src"),
                                                    env.get("PYTHONPATH", "")] if p)
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    with PeakRSS(proc.pid) as rss:
        _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {err[-2000:]}")
    return {"rss_mib": rss.mib}


def run_cli(src, out, device, tile_size=None, env_extra=None) -> dict:
    """The CLI in a fresh process."""
    cmd = [sys.executable, "-m", "tomoseg", "-q", "segment", str(src), str(out), "--device", device, "--overwrite"]
    if tile_size:
        cmd += ["--tile-size", str(tile_size)]
    return _run_child(cmd, "CLI", env_extra)


PAPER_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import tomoseg
from segment_throughput import run_paper
src, out, device, model = sys.argv[2:6]
run_paper(src, out, tomoseg.load_model(model or None).to(device).eval(), device)
"""


def run_paper_script(src, out, device, model_path=None) -> dict:
    """The paper-style pass as a user runs a script of it: a fresh process that imports PyTorch, loads the model,
    reads, normalizes, runs the whole volume and writes."""
    return _run_child([sys.executable, "-c", PAPER_SCRIPT, str(Path(__file__).parent), str(src), str(out), device,
                       model_path or ""], "paper-style script")


def run_tomoseg_gpus(src, out, model, device, tile_size=None) -> dict:
    """``segment`` with ``--gpus 1``: the tiles as Dask tasks on a local cluster of one GPU worker."""
    from dataclasses import replace

    from tomoseg.inference import segment

    options = replace(_segment_options(device, tile_size, None), gpus=1)
    record = segment(src, out, model=model, options=options, progress=False)
    return {"stages": record.get("timings_s"), "parts": record.get("timings_detail_s")}


DTYPES = {"uint8": None, "uint16": lambda a: a.astype(np.uint16) * np.uint16(257),
          # a reconstruction's linear attenuation coefficients (per µm): what nabu and PyHST2 write
          "float32": lambda a: a.astype(np.float32) * np.float32(1e-4) - np.float32(2e-3)}


def make_input(shape, kind: str, folder: Path, dtype: str = "uint8"):
    """The input volume (Zarr; its gray values as ``dtype``) and the sample (the phantom's pillar) to judge
    exactness inside it."""
    import tomoseg

    if kind == "tiled":
        half = tuple(max(48, s // 2) for s in shape)
        ph = tomoseg.make_phantom(half, rng=123)
        reps = tuple(-(-s // h) for s, h in zip(shape, half))
        image = np.tile(ph.image, reps)[:shape[0], :shape[1], :shape[2]]
        sample = np.tile(ph.pillar, reps)[:shape[0], :shape[1], :shape[2]]
    else:
        ph = tomoseg.make_phantom(tuple(shape), rng=123)
        image, sample = ph.image, ph.pillar
    if DTYPES[dtype] is not None:
        image = DTYPES[dtype](image)
    src = folder / f"volume_{'x'.join(map(str, shape))}.zarr"
    tomoseg.write_volume(str(src), image, voxel_size=(29.33,) * 3)
    return src, sample


def bench_shape(shape, device, methods, repeats, args, folder: Path) -> list[dict]:
    import torch

    import tomoseg

    src, sample = make_input(shape, args.input or ("tiled" if _cuda(device) else "phantom"), folder, args.dtype)
    model = tomoseg.load_model(args.model).to(device).eval()
    path = args.model  # None: the shipped model; tomoseg loads it as the CLI does (from the model cache)
    voxels = int(np.prod(shape))
    tile = args.gpu_tile_size if _cuda(device) else args.tile_size
    runners = {
        "tomoseg": lambda out: run_tomoseg(src, out, path, device, tile, None),
        "tomoseg-nomask": lambda out: run_tomoseg(src, out, path, device, tile, "off"),
        "tomoseg-before": lambda out: run_tomoseg(src, out, path, device, tile, "off",
                                                  cuda={"device_stats": False, "device_input": False}),
        "tomoseg-torch": lambda out: run_tomoseg(src, out, path, device, tile, None, backend="torch"),
        "tomoseg-tuned": lambda out: run_tomoseg(src, out, path, device, tile, "off", tuned=True),
        "tomoseg-cli": lambda out: run_cli(src, out, device, tile),
        "tomoseg-cli-tuned": lambda out: run_cli(src, out, device, tile, {"TOMOSEG_CUDNN_BENCHMARK": "1"}),
        "tomoseg-gpus": lambda out: run_tomoseg_gpus(src, out, path, device, tile),
        "paper": lambda out: run_paper(src, out, model, device),
        "paper-script": lambda out: run_paper_script(src, out, device, path),
        "monai": lambda out: run_monai(src, out, model, device),
    }
    if any(m.startswith("tomoseg") for m in methods):  # warm-up: fills the on-disk model cache
        run_tomoseg(src, folder / "warmup.zarr", path, device, tile, None)
    if "tomoseg-torch" in methods:  # and PyTorch's (oneDNN's kernels for the window shape), as for the others
        run_tomoseg(src, folder / "warmup.zarr", path, device, tile, None, backend="torch")
    if "monai" in methods and _cuda(device):  # MONAI's too: with autotuning on, its first run in a process tunes
        # cuDNN for its window shapes (on the H100: 18.0 s against 3.9 s for the second run)
        run_monai(src, folder / "warmup_monai.zarr", model, device)
    rows, outputs = [], {}
    runs = {m: [] for m in methods}
    failed = {}
    for r in range(repeats):  # interleaved rounds: a change in the machine's load hits every method alike
        for method in methods:
            if method in failed:
                continue
            out = folder / f"{method}_{r}.zarr"
            if _cuda(device):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            try:
                cpu0 = _cpu_seconds()
                t0 = time.perf_counter()
                with PeakRSS() as rss:
                    extra = runners[method](out) or {}
                    _sync(device)
                seconds = time.perf_counter() - t0
                cpu = _cpu_seconds() - cpu0
            except Exception as exc:  # e.g. out of memory: a row that says so
                msg = str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else type(exc).__name__
                print(f"{method} {shape}: failed: {msg}", file=sys.stderr)
                failed[method] = msg
                if _cuda(device):
                    torch.cuda.empty_cache()
                continue
            runs[method].append({"seconds": seconds, "cpu": cpu, "rss_mib": extra.get("rss_mib", rss.mib),
                                 "note": extra.get("note"), "stages": extra.get("stages"),
                                 "parts": extra.get("parts"),
                                 "gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if _cuda(device) else None})
            outputs[method] = out
            print(f"{method} {shape} run {r + 1}: {seconds:.1f} s (CPU {cpu:.1f} s)", file=sys.stderr, flush=True)
    for method in methods:
        if method in failed:
            rows.append({"method": method, "failed": failed[method]})
            continue
        done = runs[method]
        sec = statistics.median(x["seconds"] for x in done)
        rows.append({"method": method, "seconds": sec, "runs": len(done), "mvox_s": voxels / sec / 1e6,
                     "cpu": statistics.median(x["cpu"] for x in done), "note": done[-1]["note"],
                     "rss_mib": max(x["rss_mib"] for x in done),
                     "stages": ({k: statistics.median(x["stages"][k] for x in done) for k in done[0]["stages"]}
                                if done[0].get("stages") else None),
                     "parts": ({k: statistics.median(x["parts"].get(k, 0.0) for x in done) for k in done[0]["parts"]}
                               if done[0].get("parts") else None),
                     "gpu_mib": max(x["gpu_mib"] for x in done) if _cuda(device) else None})
    whole = any(r["method"] == "paper" and not r.get("note") and "failed" not in r for r in rows)
    ref_name = "paper" if whole else ("tomoseg-nomask" if "tomoseg-nomask" in outputs else None)
    if ref_name:
        ref = tomoseg.read_volume(outputs[ref_name]).astype(np.int16)
        for row in rows:
            if row["method"] in outputs:
                diff = np.abs(tomoseg.read_volume(outputs[row["method"]]).astype(np.int16) - ref)
                row["diff_all"], row["diff_sample"] = int(diff.max()), int(diff[sample].max())
                row["ref"] = ref_name
    return rows


def table(rows, shape, device, repeats, args) -> str:
    voxels = int(np.prod(shape))
    ok = {r["method"]: r for r in rows if "failed" not in r}
    gpu = _cuda(device)
    if gpu:
        import torch

        where = f"{torch.cuda.get_device_name()} (torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()})"
    else:
        where = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    ref = next((r.get("ref") for r in rows if r.get("ref")), None)
    script = "paper-script" in ok
    lines = [f"Volume {' x '.join(map(str, shape))} ({voxels / 1e6:.1f} Mvox, {args.dtype}), device `{device}`, "
             f"{where}; "
             f"median of {repeats} interleaved run(s) in one process, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"load average at the start {os.getloadavg()[0]:.1f}.", "",
             "| method | seconds | Mvox/s | vs paper-style | " + ("vs paper-style script | " if script else "")
             + "vs MONAI | CPU s (vs paper-style) | peak host RSS (MiB) | "
             + ("peak GPU (MiB) | " if gpu else "") + f"max diff vs {LABELS.get(ref, 'n/a')} (0-255): all / in sample |",
             "|---|---:|---:|---:|" + ("---:|" if script else "") + "---:|---:|---:|" + ("---:|" if gpu else "")
             + "---:|"]
    for r in rows:
        label = LABELS[r["method"]] + (f" ({r['note']})" if r.get("note") else "")
        if "failed" in r:
            lines.append(f"| {label} | failed: {r['failed']} | | | | | |" + (" |" if gpu else "") + (" |" if script else "")
                         + " |")
            continue

        def ratio(key):
            return f"{ok[key]['seconds'] / r['seconds']:.2f}x" if key in ok else "n/a"

        diff = f"{r['diff_all']} / {r['diff_sample']}" if "diff_all" in r else ""
        cpu_ratio = f" ({ok['paper']['cpu'] / r['cpu']:.2f}x)" if "paper" in ok else ""
        lines.append(f"| {label} | {r['seconds']:.1f} | {r['mvox_s']:.2f} | {ratio('paper')} | "
                     + (f"{ratio('paper-script')} | " if script else "") + f"{ratio('monai')} | "
                     f"{r['cpu']:.1f}{cpu_ratio} | {r['rss_mib']:.0f} | " + (f"{r['gpu_mib']:.0f} | " if gpu else "") + f"{diff} |")
    staged = [r for r in rows if r.get("stages")]
    if staged:
        lines += ["", "Where tomoseg's time went (seconds, medians; from the provenance's `timings_s`):", "",
                  "| method | " + " | ".join(k.replace("_", " ") for k in staged[0]["stages"]) + " |",
                  "|---|" + "---:|" * len(staged[0]["stages"])]
        for r in staged:
            lines.append(f"| {LABELS[r['method']]} | " + " | ".join(f"{v:.2f}" for v in r["stages"].values()) + " |")
    parted = [r for r in rows if r.get("parts")]
    if parted:  # the stages' parts, in the order they ran (docs/segment.md, timings_detail_s)
        keys = list(dict.fromkeys(k for r in parted for k in r["parts"]))
        lines += ["", "The stages in parts (seconds, medians; `timings_detail_s`):", "",
                  "| method | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---|" + "---:|" * len(keys)]
        for r in parted:
            lines.append(f"| {LABELS[r['method']]} | " + " | ".join(f"{r['parts'].get(k, 0.0):.3f}" for k in keys)
                         + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: the CPU always, and a GPU where present")
    ap.add_argument("--shapes", nargs="*", help="volumes as ZxYxX (default: 128x512x512 128x256x256 on the CPU, "
                                                "256x1024x1024 on a GPU)")
    ap.add_argument("--quick", action="store_true",
                    help="quick check (about a minute on 2 cores): 64x256x256 on the CPU, 128x512x512 on a GPU, "
                         "one run each, MONAI left out")
    ap.add_argument("--repeats", type=int, default=3, help="runs per method; the median is reported (default 3)")
    ap.add_argument("--gpu-repeats", type=int, help="runs per method on the GPU volume (default: --repeats)")
    ap.add_argument("--methods", nargs="*", choices=METHODS, help=f"default: all ({' '.join(METHODS)}); "
                                                                   "--quick leaves out monai")
    ap.add_argument("--tile-size", type=int, help="tomoseg's --tile-size on the CPU (default: tomoseg's default)")
    ap.add_argument("--gpu-tile-size", type=int, help="tomoseg's --tile-size on the GPU (default: tomoseg's choice)")
    ap.add_argument("--input", choices=["phantom", "tiled"], help="phantom, or a 2x2x2 tiling of a half-size phantom "
                                                                 "(default: phantom on the CPU, tiled on a GPU)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="uint8",
                    help="the input's gray values: uint8 (default), uint16, or float32 (a reconstruction's)")
    ap.add_argument("--model", help="model file (default: the shipped default model)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "segment_throughput.md"))
    args = ap.parse_args(argv)

    import torch

    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}.get(args.device, [args.device])
    for device in devices:
        gpu = _cuda(device)
        methods = args.methods or [m for m in METHODS if not (args.quick and m == "monai")
                                   and not (m in GPU_ONLY and not gpu) and not (m in CPU_ONLY and gpu)]
        if args.shapes:
            shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes]
        elif args.quick:
            shapes = [(128, 512, 512)] if gpu else [(64, 256, 256)]
        else:
            shapes = GPU_SHAPES if gpu else CPU_SHAPES
        repeats = 1 if args.quick else (args.gpu_repeats or args.repeats) if gpu else args.repeats
        for shape in shapes:
            with tempfile.TemporaryDirectory(dir=os.environ.get("TOMOSEG_BENCH_TMP")) as tmp:
                rows = bench_shape(shape, device, methods, repeats, args, Path(tmp))
            body = table(rows, shape, device, repeats, args)
            key = (f"{'gpu' if gpu else 'cpu'} {'x'.join(map(str, shape))}" + (" (quick)" if args.quick else "")
                   + ("" if args.dtype == "uint8" else f" {args.dtype}"))
            emit_section(args.out, key, body, title="Segmentation throughput",
                         intro="Written by benchmarks/segment_throughput.py; one section per device and volume.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
