"""Which features tell a false persisting pair (a dissolved object and a new one formed beside its spot) from a
true one that changed, beyond ``track``'s ``uncertain`` rule (centroid moved farther than the radius changed,
plus 1 voxel: :func:`tomoseg.track.tracking.uncertain_pairs`).

Phantom pairs of SHAPE (29.33 nm voxels, 2 % of the voxels in objects; 30 % of the objects dissolved, a new
ball of radius 1.5-4 voxels formed 1.5-3.5 voxels from each dissolved one's spot where it fits; 30 % grown, by
1 voxel of radius on even seeds and 2 on odd ones; 8 % shrunk), tracked with the instance images as labels and
the transform estimated from the images (as a user runs it). Each persisting pair ``track`` reports is true
(the truth's persisting link) or false (a new object paired with the dissolved one beside it). Per pair:

- ``shift`` and ``dr``: centroid distance after the transform, and the size of the change of equivalent radius
  (voxels; the present rule flags shift > dr + 1);
- ``vol_ratio``: larger over smaller volume;
- ``d_gray``: change of mean gray value, AFTER minus BEFORE (both scans' 8-bit values, not corrected for the
  scan's gray change);
- ``contain``: voxels of the BEFORE object carried into the AFTER grid (the transform ``track`` used) that lie
  in the AFTER object, over the smaller object's voxels (1: one holds the other, as a ball that grew or shrank);
- ``d_sph``: change of the mesh sphericity.

Rules are chosen on the CHOOSE seeds only and scored on the HELD_OUT seeds (never used to choose). A rule is
worth adding only if, on the held-out pairs, it flags clearly more false pairs and no more true pairs off the
edge than the present one.

    python benchmarks/track_uncertain.py            # collects (cached in --cache), then writes the results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _report import emit_section

SHAPE = (64, 192, 192)
VOXEL_NM = 29.33
CHOOSE = tuple(range(0, 8))
HELD_OUT = tuple(range(100, 108))
OUT = Path(__file__).parent / "results" / "track_uncertain.md"


def _truth_ids(found: np.ndarray, truth: np.ndarray) -> dict:
    """{found label: the truth instance it overlaps most (0 for none)}."""
    both = (found > 0) & (truth > 0)
    pairs, counts = np.unique(np.stack([found[both], truth[both]]).astype(np.int64), axis=1, return_counts=True)
    best: dict = {}
    for (f, t), n in zip(pairs.T.tolist(), counts.tolist()):
        if n > best.get(f, (0, 0))[1]:
            best[f] = (t, n)
    return {f: t for f, (t, _) in best.items()}


def collect(seed: int, segmented: bool = False) -> list[dict]:
    """One phantom pair tracked; a row of features per persisting pair ``track`` reports. ``segmented``: both
    scans segmented by the shipped model (``track`` without labels), each object then named by the truth
    instance it overlaps most; else the instance images are the labels."""
    from tomoseg.synthetic.pair import PairChanges, make_phantom_pair
    from tomoseg.track import track
    from tomoseg.track.matching import carry_labels

    changes = PairChanges(remove=0.3, beside_removed=1.0, grow=0.3, grow_by=1.0 + seed % 2, shrink=0.08)
    pair = make_phantom_pair(SHAPE, rng=seed, object_fraction=0.02, changes=changes)
    labels = {} if segmented else {"before_labels": pair.before["instances"], "after_labels": pair.after["instances"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = track(pair.before["image"], pair.after["image"], voxel_size=(VOXEL_NM,) * 3, **labels)
    m, t = result.matches, pair.truth
    true_pairs = {(int(b), int(a)) for b, a, s in zip(t["before_label"], t["after_label"], t["status"])
                  if s == "persisting"}
    before, after = np.asarray(result.before_labels), np.asarray(result.after_labels)
    if segmented:
        to_b, to_a = _truth_ids(before, pair.before["instances"]), _truth_ids(after, pair.after["instances"])
    carried = carry_labels(before, result.registration.matrix, SHAPE)
    both = (carried > 0) & (after > 0)
    ov = {}
    for b, a in zip(carried[both].tolist(), after[both].tolist()):
        ov[(b, a)] = ov.get((b, a), 0) + 1
    carried_n = np.bincount(carried.ravel())
    rows = []
    for i in np.flatnonzero(m["status"] == "persisting"):
        b, a = int(m["before_label"][i]), int(m["after_label"][i])
        tb, ta = (to_b.get(b, 0), to_a.get(a, 0)) if segmented else (b, a)
        vb, va = float(m["before_volume_vox"][i]), float(m["after_volume_vox"][i])
        smaller = max(min(float(carried_n[b]) if b < len(carried_n) else 0.0, va), 1.0)
        rows.append({
            "seed": seed, "segmented": segmented, "before": b, "after": a, "true": (tb, ta) in true_pairs,
            "formed_beside": pair.formed_beside.get(ta) == tb, "edge": int(m["edge"][i]),
            "uncertain": int(m["uncertain"][i]),
            "shift": float(m["displacement_nm"][i]) / VOXEL_NM,
            "dr": abs(float(m["after_radius_vox"][i]) - float(m["before_radius_vox"][i])),
            "r_before": float(m["before_radius_vox"][i]), "r_after": float(m["after_radius_vox"][i]),
            "vol_ratio": max(vb, va) / max(min(vb, va), 1.0),
            "d_gray": float(m["after_mean_gray"][i]) - float(m["before_mean_gray"][i]),
            "contain": ov.get((b, a), 0) / smaller,
            "d_sph": float(m["after_sphericity_mesh"][i]) - float(m["before_sphericity_mesh"][i]),
        })
    return rows


def rows_for(seeds, cache: Path, segmented: bool = False) -> list[dict]:
    rows = []
    for seed in seeds:
        path = cache / f"{'segmented' if segmented else 'seed'}{seed}.json"
        if not path.exists():
            t0 = time.perf_counter()
            path.write_text(json.dumps(collect(seed, segmented)))
            print(f"seed {seed}{' segmented' if segmented else ''}: {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
        rows += json.loads(path.read_text())
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=Path("/tmp/track_uncertain_cache"))
    p.add_argument("--collect-only", action="store_true")
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    choose = rows_for(CHOOSE, args.cache)
    held = rows_for(HELD_OUT, args.cache)
    segmented = rows_for(HELD_OUT, args.cache, segmented=True)
    if args.collect_only:
        return
    emit_section(OUT, f"{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}", report(choose, held, segmented), title=TITLE,
                 intro=INTRO)


TITLE = "track: the uncertain flag, and features beyond it"
INTRO = ("Written by benchmarks/track_uncertain.py (how the pairs are made and what each feature is: its "
         "docstring). Conclusion, by hand, under the generated section.")
FEATURES = ("shift", "dr", "vol_ratio", "d_gray", "contain", "d_sph")


def rules(choose: list[dict]) -> dict:
    """The present rule, and each candidate beside it with its threshold set on the CHOOSE pairs only: the
    most false pairs it can flag there without flagging a true pair off the edge (a small margin kept)."""
    true = [r for r in choose if r["true"] and not r["edge"]]

    def top(key):
        return max(key(r) for r in true)

    present = (lambda r: r["shift"] > r["dr"] + 1.0)
    slack = round(top(lambda r: r["shift"] - r["dr"]) + 0.05, 2)
    contain = round(min(r["contain"] for r in true) - 0.05, 2)
    ratio = round(top(lambda r: r["vol_ratio"]) * 1.1, 1)
    gray = round(top(lambda r: abs(r["d_gray"])) + 1.0, 1)
    sph = round(top(lambda r: abs(r["d_sph"])) + 0.005, 3)
    return {
        "present: shift > dr + 1": present,
        f"shift > dr + {slack} (less slack)": lambda r: r["shift"] > r["dr"] + slack,
        f"present, or contain < {contain}": lambda r: present(r) or r["contain"] < contain,
        f"present, or vol_ratio > {ratio}": lambda r: present(r) or r["vol_ratio"] > ratio,
        f"present, or abs d_gray > {gray}": lambda r: present(r) or abs(r["d_gray"]) > gray,
        f"present, or abs d_sph > {sph}": lambda r: present(r) or abs(r["d_sph"]) > sph,
        "shift > 1 (no growth allowed for)": lambda r: r["shift"] > 1.0,
        # fewer true pairs flagged where the centroids are noisy (segmented scans), not more false ones flagged
        "shift > dr + max(1, 2 x the run's median shift)": lambda r: r["shift"] > r["dr"] + max(1, 2 * r["run_shift"]),
        "shift > dr + max(1, 3 x the run's median shift)": lambda r: r["shift"] > r["dr"] + max(1, 3 * r["run_shift"]),
    }


def _with_run_shift(rows: list[dict]) -> list[dict]:
    """Each row with ``run_shift``: the median shift of the persisting pairs off the edge of its run (one seed,
    one way of labelling), as ``track`` could measure it."""
    runs: dict = {}
    for r in rows:
        if not r["edge"]:
            runs.setdefault(r["seed"], []).append(r["shift"])
    return [{**r, "run_shift": float(np.median(runs.get(r["seed"], [0.0])))} for r in rows]


def _count(rows, rule) -> str:
    return f"{sum(map(rule, rows))} of {len(rows)}" if rows else "-"


def report(choose: list[dict], held: list[dict], segmented: list[dict]) -> str:
    from _report import table_body

    sets = {}
    choose, held, segmented = (_with_run_shift(rows) for rows in (choose, held, segmented))
    for name, rows in (("choose", choose), ("held-out", held), ("held-out, segmented", segmented)):
        off = [r for r in rows if not r["edge"]]
        sets[name] = ([r for r in off if r["true"]], [r for r in off if r["formed_beside"]],
                      [r for r in off if not r["true"] and not r["formed_beside"]])
    lines = []
    for name, rule in rules(choose).items():
        cells = [name]
        for true, false, _ in sets.values():
            cells += [_count(true, rule), _count(false, rule)]
        lines.append("| " + " | ".join(cells) + " |")
    columns = ["rule"] + [f"{what} ({name})" for name in sets for what in ("true flagged", "false flagged")]
    n_choose, n_held = len(CHOOSE), len(HELD_OUT)
    body = table_body(
        f"Persisting pairs off the edge that `track` reported: true (the truth's persisting link) and false (a "
        f"new object paired with the dissolved one beside whose spot it formed), flagged by each rule. choose: "
        f"seeds {CHOOSE[0]}-{CHOOSE[-1]} ({n_choose} pairs, the thresholds set there); held-out: seeds "
        f"{HELD_OUT[0]}-{HELD_OUT[-1]} ({n_held} pairs), the instance images as labels, and segmented by the "
        f"shipped model (`track` without labels; each object named by the truth instance it overlaps most; the "
        f"pairs neither true nor false, from segmentation errors, left out: "
        f"{sum(len(s[2]) for s in sets.values() if s)}). Lengths in voxels.", columns, lines)
    true, false, _ = sets["choose"]
    unflagged = [r for r in false if not r["uncertain"]]
    lines = []
    for key in FEATURES:
        for name, rows in (("true", true), ("false, unflagged", unflagged), ("false, flagged",
                                                                               [r for r in false if r["uncertain"]])):
            q = np.percentile([r[key] for r in rows], [0, 5, 50, 95, 100])
            lines.append(f"| {key}, {name} ({len(rows)}) | " + " | ".join(f"{v:.3g}" for v in q) + " |")
    body += "\n" + table_body("Features on the choose pairs (instance images as labels): percentiles.",
                               ["feature, pairs", "min", "5 %", "median", "95 %", "max"], lines)
    body += "\nTrue pairs' shift (voxels; median, 95 %, max): " + "; ".join(
        f"{name} " + ", ".join(f"{v:.2f}" for v in np.percentile([r["shift"] for r in s[0]], [50, 95, 100]))
        for name, s in sets.items()) + "\n"
    true, false, _ = sets["held-out, segmented"]
    worst = sorted(true, key=lambda r: r["shift"] - r["dr"])[-5:]
    body += ("\nHeld-out, segmented: the five true pairs off the edge with the largest shift - dr (voxels): "
             + "; ".join(f"seed {r['seed']}, {r['before']} -> {r['after']}: shift {r['shift']:.2f}, dr "
                         f"{r['dr']:.2f}, r {r['r_before']:.2f} -> {r['r_after']:.2f}" for r in worst) + "\n")
    return body


if __name__ == "__main__":
    main()
