"""Held-out evaluation of a model on phantoms from seeds never used in training.

The held-out set varies noise, contrast and artifacts beyond the training presets, and includes the
physics mode (forward projection, Poisson noise, filtered back-projection), which training never saw.
Beside each model row: the best single gray threshold inside the pillar, chosen knowing the labels.

    python benchmarks/evaluate_default_model.py --out docs/model-card-heldout.md
"""

from __future__ import annotations

import argparse
import sys
import time
from _report import emit

import numpy as np

HELD_OUT = [  # name, preset, overrides, shape; seeds 9001.. are never used in training (1000-1013)
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


def evaluate_model(model_path=None, *, cases=HELD_OUT, seed0: int = 9001, backend="auto") -> list[dict]:
    import tomoseg
    from tomoseg.evaluation import evaluate
    from tomoseg.inference import BackendConfig, predict
    from tomoseg.inference.engine import to_uint8
    from tomoseg.metrics import best_threshold

    model = tomoseg.load_model(model_path)
    rows = []
    for i, (name, preset, overrides, shape) in enumerate(cases):
        ph = tomoseg.make_phantom(shape, rng=seed0 + i, preset_name=preset, **overrides)
        t0 = time.perf_counter()
        prob = to_uint8(predict(ph.image, model, backend=BackendConfig(backend=backend)))
        seconds = time.perf_counter() - t0
        res = evaluate(prob, ph.labels, intensity=ph.image, voxel_size=(29.33,) * 3)
        base = best_threshold(ph.image, ph.labels, mask=ph.pillar)
        rows.append({"case": name, "seed": seed0 + i, "shape": "x".join(map(str, shape)),
                     "recall": res["voxel"]["recall"], "precision": res["voxel"]["precision"],
                     "f1": res["voxel"]["f1"], "object_recall": res["objects"]["recall"],
                     "object_precision": res["objects"]["precision"], "object_f1": res["objects"]["f1"],
                     "true_objects": res["objects"]["true_objects"],
                     "threshold_f1": base["f1"], "threshold_recall": base["recall"],
                     "threshold_precision": base["precision"], "seconds": seconds})
        print(f"{name}: voxel R {rows[-1]['recall']:.3f} P {rows[-1]['precision']:.3f}, object F1 "
              f"{rows[-1]['object_f1']:.3f}; best threshold F1 {base['f1']:.3f}", file=sys.stderr)
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = ("| held-out case | seed | voxel recall | voxel precision | voxel F1 | object recall | "
            "object precision | object F1 (>= 8 vox) | true objects | best threshold F1 (R / P) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['case']} | {r['seed']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['f1']:.3f} | "
        f"{r['object_recall']:.3f} | {r['object_precision']:.3f} | {r['object_f1']:.3f} | {r['true_objects']} | "
        f"{r['threshold_f1']:.3f} ({r['threshold_recall']:.2f} / {r['threshold_precision']:.2f}) |\n" for r in rows)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("recall", "precision", "f1", "object_recall",
                                                              "object_precision", "object_f1", "threshold_f1")}
    body += (f"| **mean** | | **{mean['recall']:.3f}** | **{mean['precision']:.3f}** | **{mean['f1']:.3f}** | "
             f"**{mean['object_recall']:.3f}** | **{mean['object_precision']:.3f}** | **{mean['object_f1']:.3f}** | | "
             f"**{mean['threshold_f1']:.3f}** |\n")
    return head + body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model file (default: the shipped default model)")
    ap.add_argument("--out", default="benchmarks/results/heldout.md")
    args = ap.parse_args(argv)
    table = to_markdown(evaluate_model(args.model))
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
