"""Training throughput: the old NumPy data loop against the tensor data path, data time and compute time apart.

The *old loop* is tomoseg 0.1's: each patch cut, zoomed (scipy.ndimage), flipped, rotated and given
intensity changes and noise in NumPy on one CPU thread, then copied to the device. The *new path* is
``tomoseg.training.sampling.PatchSource``: volumes held as tensors on the device, every batch cut and
augmented there. Both feed the same step (``tomoseg.training.step.TrainStep``: Adam, the loss, mixed
precision as configured). Times are medians over steps after a warm-up, with the device synchronized
around each part.

    python benchmarks/train_throughput.py            # CPU (and CUDA when present)
    python benchmarks/train_throughput.py --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import sys
import time
from _report import emit

import numpy as np
import torch


# ---------------------------------------------------------------- the old loop (frozen copy of 0.1's data path)
def _old_patch(v, p, aug, fg_fraction, rng):
    from scipy import ndimage

    size = p
    if aug.zoom[1] > aug.zoom[0] and rng.random() < aug.zoom_probability:
        size = max(8, int(round(p / rng.uniform(*aug.zoom))))
    size = min(size, *v.shape)
    centre = v.foreground[int(rng.integers(len(v.foreground)))] if len(v.foreground) and rng.random() < fg_fraction \
        else None
    starts = []
    for axis in range(3):
        top = v.shape[axis] - size
        if centre is not None:
            starts.append(int(np.clip(centre[axis] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, top)))
        else:
            starts.append(int(rng.integers(0, top + 1)))
    sl = tuple(slice(s, s + size) for s in starts)
    image, labels = v.image[sl], v.labels[sl]
    if size != p:
        f = [p / s for s in image.shape]
        image = ndimage.zoom(image, f, order=1, mode="nearest", grid_mode=True)[:p, :p, :p]
        labels = ndimage.zoom(labels, f, order=0, mode="nearest", grid_mode=True)[:p, :p, :p]
    for axis in range(3):
        if rng.random() < 0.5:
            image, labels = np.flip(image, axis), np.flip(labels, axis)
    k = int(rng.integers(4))
    image, labels = np.rot90(image, k, axes=(1, 2)), np.rot90(labels, k, axes=(1, 2))
    image = np.ascontiguousarray(image, dtype=np.float32)
    image *= np.float32(1 + rng.uniform(-aug.intensity_scale, aug.intensity_scale))
    image += np.float32(rng.uniform(-aug.intensity_shift, aug.intensity_shift))
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0, aug.noise))
    return image, np.ascontiguousarray(labels)


def old_batch(vols, cfg, device, rng):
    pairs = [_old_patch(vols[int(rng.integers(len(vols)))], cfg.sampling.patch_size, cfg.augment,
                        cfg.sampling.foreground_fraction, rng) for _ in range(cfg.sampling.batch_size)]
    x = torch.from_numpy(np.stack([a for a, _ in pairs])[:, None]).to(device, non_blocking=True)
    y = torch.from_numpy(np.stack([b for _, b in pairs])[:, None]).to(device, non_blocking=True)
    return x, y


# ---------------------------------------------------------------- measurement
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg, vols, steps: int, warmup: int) -> list[dict]:
    """The old loop and the new path, step by step in alternation (so that a busy machine slows both
    alike), each feeding its own copy of the same seeded model."""
    from tomoseg.model import build_model
    from tomoseg.training.sampling import PatchSource
    from tomoseg.training.step import TrainStep, configure_device, resolve_device

    device = resolve_device(cfg.device)
    configure_device(cfg, device)
    paths = {}
    for path in ("old", "new"):
        torch.manual_seed(0)
        step = TrainStep(build_model({"levels": 4, "base_features": 8}).to(device).train(), cfg, device)
        source = PatchSource(vols, cfg.sampling, cfg.augment, 255, False, device, seed=0) if path == "new" else None
        paths[path] = {"step": step, "source": source, "rng": np.random.default_rng(0), "data": [], "compute": []}
    for i in range(warmup + steps):
        for path, p in paths.items():
            _sync(device)
            t0 = time.perf_counter()
            x, y = p["source"].batch(p["rng"]) if p["source"] is not None else old_batch(vols, cfg, device, p["rng"])
            _sync(device)
            t1 = time.perf_counter()
            float(p["step"](x, y, 0.5))
            _sync(device)
            t2 = time.perf_counter()
            if i >= warmup:
                p["data"].append(t1 - t0)
                p["compute"].append(t2 - t1)
    rows = []
    b, s = cfg.sampling.batch_size, cfg.sampling.patch_size
    for path, p in paths.items():
        d, c = float(np.median(p["data"])), float(np.median(p["compute"]))
        total = d + c
        rows.append({"device": device.type, "path": path, "patch": f"{b} x {s}^3", "precision": p["step"].precision,
                     "steps_per_s": 1 / total, "patches_per_s": b / total, "mvox_per_s": b * s ** 3 / total / 1e6,
                     "data_ms": d * 1e3, "compute_ms": c * 1e3, "data_share": d / total})
    return rows


def _config(device: str, patch: int, batch: int, precision: str, channels_last: bool = False):
    from tomoseg.training import config_from_dict

    return config_from_dict({
        "device": device, "precision": precision, "performance": {"channels_last": channels_last},
        "data": {"phantoms": {"count": 1}},
        "sampling": {"patch_size": patch, "batch_size": batch, "foreground_fraction": 0.5},
        "augment": {"zoom": [1.0, 1.3], "zoom_probability": 0.3, "intensity_scale": 0.15,
                    "intensity_shift": 0.15, "noise": 0.1},
    })


def _volumes(n: int, shape):
    from tomoseg.training.config import DataConfig, PhantomData
    from tomoseg.training.data import phantom_volumes

    data = DataConfig(phantoms=PhantomData(count=n, shape=list(shape), randomize=True, seed=4242,
                                           presets=["default", "noisy", "small-objects", "clean"],
                                           validation_count=0, cache_dir=None))
    return phantom_volumes(data.phantoms, data)


def to_markdown(rows, title) -> str:
    head = (f"### {title}\n\n| device | data path | batch | precision | steps/s | patches/s | Mvox/s of patches | "
            "data ms | compute ms | data share | new / old |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = ""
    for r in rows:
        ratio = r.get("ratio")
        body += (f"| {r['device']} | {r['path']} | {r['patch']} | {r['precision']} | {r['steps_per_s']:.2f} | "
                 f"{r['patches_per_s']:.1f} | {r['mvox_per_s']:.1f} | {r['data_ms']:.1f} | {r['compute_ms']:.1f} | "
                 f"{100 * r['data_share']:.0f} % | {'' if ratio is None else f'{ratio:.2f}x'} |\n")
    return head + body


def run_device(device: str, cases, vols, steps, warmup, title: str, out: str) -> list[dict]:
    """Each case in turn; the table is written after every case, so a run cut short keeps what it measured."""
    rows = []
    for patch, batch, precision, channels_last in cases:
        cfg = _config(device, patch, batch, precision, channels_last)
        old, new = measure(cfg, vols, steps, warmup)
        new["ratio"] = new["steps_per_s"] / old["steps_per_s"]
        if channels_last:
            old["precision"] += " ch-last"
            new["precision"] += " ch-last"
        rows += [old, new]
        emit(to_markdown(rows, title), out)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    ap.add_argument("--out-dir", default="benchmarks/results")
    args = ap.parse_args(argv)
    import platform

    if args.device in ("all", "cpu"):
        steps = 3 if args.quick else 9
        vols = _volumes(2 if args.quick else 4, (64, 160, 160) if args.quick else (96, 192, 192))
        title = f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        patch = 32 if args.quick else 64
        cases = [(patch, 2, precision, channels_last)
                 for precision in ("f32", "bf16") for channels_last in (False, True)]
        run_device("cpu", cases, vols, steps, 1, title,
                   f"{args.out_dir}/train_throughput-cpu.md")
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        steps = 8 if args.quick else 20
        vols = _volumes(2 if args.quick else 12, (96, 192, 192) if args.quick else (96, 256, 256))
        # the v2 recipe (bf16) in both memory orders, and f32: cuDNN 9.8+ loses contiguous bf16 3D convolutions
        cases = [(96, 8, "bf16", False), (96, 8, "bf16", True), (96, 8, "f32", False)]
        if not args.quick:
            cases += [(96, 8, "f32", True), (192, 2, "bf16", False)]
        title = (f"GPU: {torch.cuda.get_device_name()} (torch {torch.__version__}, "
                 f"cuDNN {torch.backends.cudnn.version()})")
        run_device("cuda", cases, vols, steps, 2, title,
                   f"{args.out_dir}/train_throughput-gpu.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
