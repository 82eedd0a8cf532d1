"""How long a training config's phantom pool takes to generate: measured here, and scheduled for a larger host.

A GPU lease pays for the pool before the first step (the v2 pool took about 2.5 minutes on the H200's 16 cores).
This benchmark

1. generates every phantom of the config's pool (training and validation) one by one in this process and
   times each;
2. from those times, computes the pool's wall time on ``--workers`` processes two ways: as tomoseg generated it
   before (the training pool, then the validation pool, each in the config's order) and as it does now (one
   pool, the longest phantoms first). This is a schedule from measured times, not a measurement on that host:
   it leaves out process start (about 2 s a worker) and assumes the cores run as fast as this one;
3. optionally (``--measure``) times ``prepare_data`` itself on this machine's cores (no phantom cache).

``--scale`` keeps a share of the pool's phantoms (at least one of each kind) for a small machine.

    python benchmarks/training_pool.py configs/default-model-v3.yaml --scale 0.25 --workers 2 16 --measure

Writes benchmarks/results/training_pool.md.
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import emit_section  # noqa: E402


def makespan(durations, workers: int) -> float:
    """Wall time of jobs handed out in this order to the first free of ``workers`` processes."""
    free = [0.0] * workers
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def scaled(spec, share: float):
    if share >= 1:
        return spec
    keep = {"count": max(1, round(spec.count * share)),
            "validation_count": max(1, round(spec.validation_count * share)) if spec.validation_count else 0}
    physics = spec.physics
    if physics is not None:
        physics = replace(physics, count=max(1, round(physics.count * share)),
                          validation_count=max(1, round(physics.validation_count * share))
                          if physics.validation_count else 0)
    return replace(spec, **keep, physics=physics)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="configs/default-model-v3.yaml")
    ap.add_argument("--scale", type=float, default=1.0, help="share of the pool's phantoms to generate")
    ap.add_argument("--workers", type=int, nargs="+", default=[16])
    ap.add_argument("--measure", action="store_true", help="also time prepare_data on this machine's cores")
    ap.add_argument("--out", default="benchmarks/results/training_pool.md")
    args = ap.parse_args(argv)

    from tomoseg.training import load_config
    from tomoseg.synthetic.pool import generate_item
    from tomoseg.training.data import _work, phantom_specs
    from tomoseg.training.loop import prepare_data

    cfg = load_config(args.config)
    spec = replace(scaled(cfg.data.phantoms, args.scale), cache_dir=None)
    cfg = replace(cfg, data=replace(cfg.data, phantoms=spec))
    train_items, val_items = phantom_specs(spec, validation=False), phantom_specs(spec, validation=True)
    seconds = []
    for item in train_items + val_items:
        t0 = time.perf_counter()
        generate_item(item)
        seconds.append(time.perf_counter() - t0)
        print(f"{item['preset']} seed {item['seed']}: {seconds[-1]:.1f} s", flush=True)
    n = len(train_items)
    lines = [f"Config `{args.config}`" + (f", scaled to {args.scale:g} of its phantoms" if args.scale < 1 else "")
             + f": {n} training and {len(val_items)} validation phantoms, "
             f"{sum(it['physics'] is not None for it in train_items + val_items)} of them physics mode; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores here.",
             "",
             f"Each phantom alone, in this process: {sum(seconds):.0f} s in all, the longest {max(seconds):.1f} s "
             f"(preset {min(s for s, it in zip(seconds, train_items + val_items) if it['physics'] is None):.1f}–"
             f"{max(s for s, it in zip(seconds, train_items + val_items) if it['physics'] is None):.1f} s).",
             "",
             "| workers | before: training pool, then validation pool, config order (s) | now: one pool, longest "
             "first (s) | ratio |",
             "|---:|---:|---:|---:|"]
    order = sorted(range(len(seconds)), key=lambda k: -_work((train_items + val_items)[k]))
    for w in args.workers:
        before = makespan(seconds[:n], w) + makespan(seconds[n:], w)
        now = makespan([seconds[k] for k in order], w)
        lines.append(f"| {w} | {before:.0f} | {now:.0f} | {before / now:.2f}x |")
    lines += ["", "Scheduled from the times above (process start left out), not measured on a host of that size."]
    if args.measure:
        t0 = time.perf_counter()
        prepare_data(cfg)
        lines += ["", f"Measured here: `prepare_data` (the pool in processes on {len(os.sched_getaffinity(0))} "
                      f"cores, normalization included) took {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines) + "\n"
    emit_section(args.out, f"{Path(args.config).name}, scale {args.scale:g}", text,
                 title="Training pool generation",
                 intro="Written by benchmarks/training_pool.py: what a config's phantom pool costs before training.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
