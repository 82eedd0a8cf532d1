"""Held-out evaluation of a model on phantoms from seeds never used in training.

The held-out set varies noise, contrast and artifacts beyond the training presets, and includes the
physics mode (forward projection, Poisson noise, filtered back-projection), which training never saw.
Beside each model row: the best single gray threshold inside the pillar, chosen knowing the labels.

    python benchmarks/evaluate_default_model.py --out docs/model-card-heldout.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
import time
from _report import emit

import numpy as np

HELD_OUT = [  # name, preset, overrides, shape; seeds 9001.. are never used in training (1000-1013, 3000-3044)
    ("default", "default", {}, (64, 256, 256)),
    ("noisy", "noisy", {}, (64, 256, 256)),
    ("low-contrast", "low-contrast", {}, (64, 256, 256)),
    ("strong-rings", "strong-rings", {}, (64, 256, 256)),
    ("small-objects", "small-objects", {}, (64, 256, 256)),
    ("unseen: very noisy", "default", {"noise_sd": 34.0, "noise_correlation": 1.0}, (64, 256, 256)),
    ("unseen: faint objects", "default", {"object_gray": 140.0, "noise_sd": 14.0}, (64, 256, 256)),
    ("unseen: blurred, drifting", "default", {"blur_sigma": 1.6, "z_drift": 0.2, "ring_strength": 15.0},
     (64, 256, 256)),
    ("unseen: physics (FBP)", "physics", {}, (32, 256, 256)),
]
PHYSICS = [  # physics mode at several photon counts and angles, and its faint and small-object cases
    ("physics: 400 photons, 180 angles", "physics", {"photons": 400.0, "angles": 180}, (32, 256, 256)),
    ("physics: 1500 photons, 360 angles", "physics", {"photons": 1500.0, "angles": 360}, (32, 256, 256)),
    ("physics: 4000 photons, 256 angles", "physics", {"photons": 4000.0, "angles": 256}, (32, 256, 256)),
    ("physics: faint objects", "physics", {"photons": 1500.0, "object_gray": 140.0}, (32, 256, 256)),
    ("physics: small objects", "physics", {"photons": 1500.0, "radius_mean": 2.2, "radius_sd": 0.7}, (32, 256, 256)),
]
CASES = HELD_OUT + PHYSICS
RADIUS_BINS = [(1, 2), (2, 3), (3, 4), (4, 6), (6, 12)]


def _phantom(args):
    import tomoseg

    name, preset, overrides, shape, seed = args
    ph = tomoseg.make_phantom(shape, rng=seed, preset_name=preset, **overrides)
    return ph.image, ph.labels, ph.instances, ph.pillar[0], ph.objects["equivalent_radius_vox"]


def phantoms(cases, seed0: int = 9001, workers: int = 0) -> list:
    """The held-out phantoms, generated in parallel (physics mode costs ~0.3 s per slice)."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    jobs = [(*c, seed0 + i) for i, c in enumerate(cases)]
    n = min(workers or len(os.sched_getaffinity(0)) or 1, len(jobs))
    if n <= 1:
        return [_phantom(j) for j in jobs]
    with ProcessPoolExecutor(n, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_phantom, jobs))


def evaluate_model(model_path=None, *, cases=CASES, seed0: int = 9001, backend="auto", data=None) -> list[dict]:
    import tomoseg
    from tomoseg.evaluation import evaluate
    from tomoseg.inference import BackendConfig, predict
    from tomoseg.inference.engine import to_uint8
    from tomoseg.metrics import best_threshold

    model = tomoseg.load_model(model_path)
    data = data or phantoms(cases, seed0)
    rows = []
    for i, ((name, preset, overrides, shape), (image, labels, instances, pillar, radii)) in enumerate(zip(cases, data)):
        t0 = time.perf_counter()
        prob = to_uint8(predict(image, model, backend=BackendConfig(backend=backend)))
        seconds = time.perf_counter() - t0
        res = evaluate(prob, labels, intensity=image, voxel_size=(29.33,) * 3)
        base = best_threshold(image, labels, mask=np.broadcast_to(pillar, image.shape))
        hit = np.bincount(instances[prob > 127].ravel(), minlength=len(radii) + 1)[1:] > 0
        rows.append({"case": name, "seed": seed0 + i, "shape": "x".join(map(str, shape)),
                     "recall": res["voxel"]["recall"], "precision": res["voxel"]["precision"],
                     "f1": res["voxel"]["f1"], "object_recall": res["objects"]["recall"],
                     "object_precision": res["objects"]["precision"], "object_f1": res["objects"]["f1"],
                     "true_objects": res["objects"]["true_objects"],
                     "threshold_f1": base["f1"], "threshold_recall": base["recall"],
                     "threshold_precision": base["precision"], "seconds": seconds,
                     "radii": np.asarray(radii), "hit": hit, "prob": prob, "labels": labels})
        print(f"{name}: voxel R {rows[-1]['recall']:.3f} P {rows[-1]['precision']:.3f}, object F1 "
              f"{rows[-1]['object_f1']:.3f}; best threshold F1 {base['f1']:.3f}", file=sys.stderr)
    return rows


def best_model_threshold(rows) -> dict:
    """The probability threshold (0-255) with the best mean voxel F1 over the cases, and its scores."""
    from tomoseg.metrics import ConfusionMatrix

    best = None
    for t in range(31, 240, 8):
        f1 = []
        for r in rows:
            p, lab = r["prob"] > t, r["labels"] == 1
            tp = int(np.count_nonzero(p & lab))
            cm = ConfusionMatrix(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(lab)) - tp, 0)
            f1.append(cm.f1)
        if best is None or np.mean(f1) > best["mean_f1"]:
            best = {"threshold": t, "mean_f1": float(np.mean(f1))}
    return best


SCORES = ("recall", "precision", "f1", "object_recall", "object_precision", "object_f1")


def means(rows: list[dict], keys=SCORES) -> dict:
    """Each score's mean over ``rows``."""
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def to_markdown(rows: list[dict]) -> str:
    head = ("| held-out case | seed | voxel recall | voxel precision | voxel F1 | object recall | "
            "object precision | object F1 (>= 8 vox) | true objects | best threshold F1 (R / P) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['case']} | {r['seed']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['f1']:.3f} | "
        f"{r['object_recall']:.3f} | {r['object_precision']:.3f} | {r['object_f1']:.3f} | {r['true_objects']} | "
        f"{r['threshold_f1']:.3f} ({r['threshold_recall']:.2f} / {r['threshold_precision']:.2f}) |\n" for r in rows)
    mean = means(rows, SCORES + ("threshold_f1",))
    body += (f"| **mean** | | **{mean['recall']:.3f}** | **{mean['precision']:.3f}** | **{mean['f1']:.3f}** | "
             f"**{mean['object_recall']:.3f}** | **{mean['object_precision']:.3f}** | **{mean['object_f1']:.3f}** | | "
             f"**{mean['threshold_f1']:.3f}** |\n")
    return head + body


def side_by_side(results: dict) -> str:
    """Models in columns: voxel recall / precision and object F1 per case, then the means."""
    names = list(results)
    head = ("| held-out case | " + " | ".join(f"{n}: voxel R / P | {n}: object F1" for n in names)
            + " | best threshold F1 |\n|---|" + "---:|---:|" * len(names) + "---:|\n")
    body = ""
    first = results[names[0]]
    for i, r0 in enumerate(first):
        cells = []
        for n in names:
            r = results[n][i]
            cells.append(f"{r['recall']:.3f} / {r['precision']:.3f} | {r['object_f1']:.3f}")
        body += f"| {r0['case']} | " + " | ".join(cells) + f" | {r0['threshold_f1']:.3f} |\n"
    for label, sel in (("mean", lambda r: True), ("mean, physics cases", lambda r: "physics" in r["case"])):
        cells = []
        for n in names:
            m = means([r for r in results[n] if sel(r)])
            cells.append(f"**{m['recall']:.3f} / {m['precision']:.3f}** | **{m['object_f1']:.3f}**")
        body += f"| **{label}** | " + " | ".join(cells) + " | |\n"
    return head + body


def radius_table(results: dict) -> str:
    """Share of true objects hit (>= 1 voxel above the threshold) by equivalent radius, over all cases."""
    names = list(results)
    head = ("| equivalent radius (voxels) | true objects | " + " | ".join(f"{n}: hit rate" for n in names)
            + " |\n|---|---:|" + "---:|" * len(names) + "\n")
    body = ""
    for lo, hi in RADIUS_BINS:
        counts, cells = None, []
        for n in names:
            radii = np.concatenate([r["radii"] for r in results[n]])
            hit = np.concatenate([r["hit"] for r in results[n]])
            sel = (radii >= lo) & (radii < hi)
            counts = int(sel.sum())
            cells.append(f"{hit[sel].mean():.3f}" if counts else "-")
        body += f"| {lo}-{hi} | {counts} | " + " | ".join(cells) + " |\n"
    return head + body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", metavar="[NAME=]PATH",
                    help="model file (repeat to compare models side by side; default: the shipped model)")
    ap.add_argument("--quick", action="store_true", help="small volumes, three cases (a smoke run)")
    ap.add_argument("--out", default="benchmarks/results/heldout.md")
    ap.add_argument("--json", help="also write each model's scores (per case and mean) to this JSON file "
                                   "(benchmarks/device/ship_default_model.py records them in the model)")
    args = ap.parse_args(argv)
    cases = CASES
    if args.quick:
        cases = [(n, p, o, (32, 128, 128)) for n, p, o, _ in (HELD_OUT[0], HELD_OUT[4], PHYSICS[0])]
    models = {}
    for entry in args.model or ["default=default"]:
        name, _, path = entry.rpartition("=")
        models[name or path] = None if path == "default" else path
    data = phantoms(cases)
    results = {name: evaluate_model(path, cases=cases, data=data) for name, path in models.items()}
    parts = []
    for name, rows in results.items():
        best = best_model_threshold(rows)
        parts.append(f"### {name}\n\n" + to_markdown(rows)
                     + f"\nBest single probability threshold for {name} over these cases: {best['threshold']} "
                       f"(mean voxel F1 {best['mean_f1']:.3f}; at 127: "
                       f"{np.mean([r['f1'] for r in rows]):.3f}).\n")
    if len(results) > 1:
        parts.insert(0, "### Side by side\n\n" + side_by_side(results))
    parts.append("### Objects hit, by size\n\n" + radius_table(results))
    emit("\n".join(parts), args.out)
    if args.json:
        Path(args.json).write_text(json.dumps({name: summary(rows) for name, rows in results.items()}, indent=1))
    return 0


def summary(rows: list[dict]) -> dict:
    """The scores of one model: per case, the mean over all cases and over the physics cases."""
    def rounded(scores):
        return {k: round(v, 4) for k, v in scores.items()}
    return {"cases": {r["case"]: rounded({k: float(r[k]) for k in SCORES}) for r in rows},
            "mean": rounded(means(rows)), "mean_physics": rounded(means([r for r in rows if "physics" in r["case"]])),
            "best_threshold": best_model_threshold(rows)["threshold"]}


if __name__ == "__main__":
    sys.exit(main())
