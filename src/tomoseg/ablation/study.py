"""Run an ablation study: train each configuration on the same data, with the same budget and seed,
score all of them and the baselines on the same held-out phantoms, and write one table.

Output folder::

    ablation.yaml          the effective study config
    models/L-B[-variant]/  one training run each (config.yaml, metrics.csv, best.safetensors, ...)
    rows/NAME.json         one scored row each; a rerun skips rows already scored (resume after a crash)
    results.csv            the table, one row per model or baseline
    results.md             the same as a Markdown table
    f1_vs_parameters.png   voxel and object F1 against parameter count (and .svg, .pdf; its caption in captions.json)
    confusion_matrices/    ROW.png (.svg, .pdf) each row's pooled confusion matrix (the paper's Fig. 4), captions.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from ..metrics import ConfusionMatrix
from .config import BASELINES, VARIANTS, AblationConfig, ablation_from_dict, parse_configuration, row_name

COLUMNS = ["row", "kind", "levels", "base_features", "parameters", "trainable_parameters", "train_steps",
           "seconds_per_1000_steps", "accuracy", "recall", "precision", "f1", "object_recall",
           "object_precision", "object_f1", "tp", "fp", "fn", "tn", "true_objects", "predicted_objects", "matched_true",
           "matched_predicted", "note"]
MIN_VOXELS = 8


def _log(msg: str) -> None:
    import sys

    print(f"[ablation] {msg}", file=sys.stderr, flush=True)


def _check_held_out_memory(ev) -> None:
    """The held-out phantoms fit in half the available memory (training and inference need the rest)."""
    import psutil

    from ..io.disk_space import human_size

    need, available = ev.memory_bytes(), psutil.virtual_memory().available
    if need > available // 2:
        raise TomosegError(f"evaluation: {ev.count} held-out phantoms of {ev.shape} take about {human_size(need)} in "
                           f"memory, more than half of the {human_size(available)} available; lower evaluation.count "
                           "or evaluation.shape")


def held_out(ev, data=None) -> list:
    """The held-out volumes, each with ``image``, ``labels`` (bool) and ``pillar`` (the sample mask), and how its
    gray values read: ``objects`` (dark or bright) and ``fill`` (the no-data value): the phantoms' dark objects
    without fill, the user's volumes' as the training recipe's ``data`` (a DataConfig) says, as training reads
    them."""
    from types import SimpleNamespace

    from ..evaluation import check_binary_labels
    from ..io import read_volume
    from ..sample_mask import inside
    from ..synthetic import make_phantom

    items = []
    for i in range(ev.count):
        ph = make_phantom(tuple(ev.shape), rng=ev.seed + i, preset_name=ev.presets[i % len(ev.presets)])
        items.append(SimpleNamespace(image=ph.image, labels=ph.labels, pillar=ph.pillar, objects="dark", fill=None))
    objects, fill = (data.objects, data.fill_value) if data is not None else ("dark", None)
    for entry in ev.volumes:
        image = read_volume(entry["image"])
        labels = check_binary_labels(read_volume(entry["labels"]), entry["labels"])
        if labels.shape != image.shape:
            raise TomosegError(f"{entry['labels']}: labels {labels.shape} and image {image.shape} differ in shape")
        sample = inside(read_volume(entry["sample"]), entry["sample"]) if "sample" in entry else \
            np.ones(image.shape, bool)
        if sample.shape != image.shape:
            raise TomosegError(f"{entry['sample']}: sample mask {sample.shape} and image {image.shape} differ")
        items.append(SimpleNamespace(image=image, labels=labels.astype(np.uint8), pillar=sample, objects=objects,
                                     fill=fill))
    return items


def score(masks_or_probs, phantoms) -> dict:
    """Voxel scores (pooled confusion matrix) and object detection (pooled counts) over the phantoms, inside
    each one's sample mask (``pillar``): prediction and truth outside it are not scored, neither as errors nor
    as true negatives. Inputs are uint8 probability maps (0–255, object above 127) or boolean masks.

    Returns the scores with the counts behind them: ``tp, fp, fn, tn`` (voxels) and ``true_objects,
    predicted_objects, matched_true, matched_predicted`` (objects kept for detection: >= ``MIN_VOXELS`` voxels,
    off the border, :func:`~tomoseg.evaluation.evaluate`'s defaults)."""
    import warnings

    from ..errors import TomosegWarning
    from ..evaluation import evaluate
    from ..interrupt import raise_if_interrupted
    from ..metrics import confusion_matrix
    from ..objects.analysis import AnalysisOptions
    from ..objects.matching import detection_f1

    cm = ConfusionMatrix()
    counts = dict.fromkeys(("true_objects", "predicted_objects", "matched_true", "matched_predicted"), 0)
    for pred, ph in zip(masks_or_probs, phantoms):
        raise_if_interrupted()  # a stop signal something swallowed (interrupt.py)
        pred = pred if pred.dtype == bool else pred > 127
        # every row inside the same sample mask (the threshold baselines look nowhere else): finds and labels
        # outside the pillar count neither for nor against a row
        pred = pred & ph.pillar
        truth = ph.labels.astype(bool) & ph.pillar
        cm = cm + confusion_matrix(pred, truth, mask=ph.pillar)
        with warnings.catch_warnings():  # the study's own masks: a row marking most voxels is a result, not a
            # gray-value image given for a mask (evaluation.py's warning to its user)
            warnings.filterwarnings("ignore", message=r".* of the voxels are objects; is this a mask\?",
                                    category=TomosegWarning)
            res = evaluate(pred.view(np.uint8), truth.view(np.uint8),
                           options=AnalysisOptions(min_voxels=MIN_VOXELS))
        for key in counts:
            counts[key] += res["objects"][key]
    recall = counts["matched_true"] / counts["true_objects"] if counts["true_objects"] else float("nan")
    precision = counts["matched_predicted"] / counts["predicted_objects"] if counts["predicted_objects"] \
        else float("nan")
    return {"accuracy": cm.accuracy, "recall": cm.recall, "precision": cm.precision, "f1": cm.f1,
            "object_recall": recall, "object_precision": precision, "object_f1": detection_f1(recall, precision),
            "tp": cm.tp, "fp": cm.fp, "fn": cm.fn, "tn": cm.tn, **counts}


def _model_rows(cfg: AblationConfig) -> list[dict]:
    """What to train: one entry per configuration, then the variants of the reference."""
    rows = [{"name": row_name(c), "configuration": c, "variant": None, "changes": {}} for c in cfg.configurations]
    changes = {"patch-normalization": {"data.normalization": "patch"}, "dice-bce": {"optim.loss": "dice_bce"}}
    for v in cfg.variants:
        rows.append({"name": row_name(cfg.reference, v), "configuration": cfg.reference, "variant": v,
                     "changes": changes[v]})
    return rows


def _check_output(cfg: AblationConfig) -> Path:
    import yaml

    out = Path(cfg.output)
    saved = out / "ablation.yaml"
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: is a file, not a folder; give a folder for the study (--output or the config's "
                           "output)")
    if saved.exists():
        try:
            before = ablation_from_dict(yaml.safe_load(saved.read_text(encoding="utf-8")))
        except (TomosegError, yaml.YAMLError):
            raise TomosegError(f"{out}: its ablation.yaml cannot be read as a study config; choose another output, "
                               "or delete the folder to start again") from None
        changed = _differences(_recipe(before), _recipe(cfg), "train")
        if changed:
            more = f", and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise TomosegError(f"{out} holds a study trained with another recipe ({'; '.join(changed[:3])}{more}); "
                               "choose another output, or delete it to start again")
        if before.to_dict()["evaluation"] != cfg.to_dict()["evaluation"]:
            # the scores are of another held-out set: every row is scored again, the trained models kept
            for row in (out / "rows").glob("*.json"):
                row.unlink()
            _log(f"the held-out set differs from the study's in {out}: scoring every row again (the trained models "
                 "are kept)")
        _log(f"resuming the study in {out}")
    elif out.exists() and any(out.iterdir()):
        raise TomosegError(f"{out}: exists and holds no ablation study; choose another output")
    try:
        (out / "rows").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TomosegError(f"{out}: cannot create the study folder ({exc.strerror}); give a folder you can write to "
                           "(--output or the config's output)") from None
    saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return out


def _recipe(cfg: AblationConfig) -> dict:
    """The shared training recipe as it trains (defaults filled in), without the row's model and output, and
    without where and how fast it runs (``device``, ``performance``: a study may move to a GPU and go on)."""
    recipe = cfg.train_config().to_dict()
    for key in ("model", "output", "device", "performance"):
        recipe.pop(key)
    return recipe


def _differences(before, after, where: str) -> list[str]:
    """``where.key: old -> new`` for each value that differs between two nested dicts."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [d for key in sorted(set(before) | set(after), key=str)
                for d in _differences(before.get(key), after.get(key), f"{where}.{key}")]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


def _seconds_per_1000(run: Path) -> tuple[int, float]:
    from ..table import read_csv

    m = read_csv(run / "metrics.csv")
    steps = np.asarray(m["step"], dtype=np.int64)
    per_epoch = np.diff(np.concatenate([[0], steps]))
    # the median epoch, so that one epoch slowed by a busy machine (or a pause) does not skew the row
    return int(steps[-1]), float(np.median(np.asarray(m["seconds"], float) / per_epoch)) * 1000


def _scored_row(out: Path, name: str) -> dict | None:
    """The row ``name`` as the study scored it (rows/NAME.json), or None: not scored yet, or scored by a tomoseg
    before the confusion counts were kept (review AB2), whose scoring differed (AB3: the voxels outside the sample
    counted): such a row is scored again from its kept model, not mixed into the table."""
    f = out / "rows" / f"{name}.json"
    if not f.exists():
        return None
    row = json.loads(f.read_text(encoding="utf-8"))
    return row if all(k in row for k in ("tp", "fp", "fn", "tn")) else None


def _trained(run: Path, tc) -> bool:
    """Whether the row's training run has nothing left to train: all its steps, or its ``max_minutes`` spent (as
    ``train --resume`` would refuse it, training/checkpoints.py)."""
    from ..training.checkpoints import STATE, state_metadata

    if (run / "metrics.csv").exists() and _seconds_per_1000(run)[0] >= tc.epochs * tc.sampling.steps_per_epoch:
        return True
    if not (run / STATE).exists() or not (run / "best.safetensors").exists():
        return False
    saved = state_metadata(run / STATE)
    epoch, step, elapsed = (saved.get(k, 0) for k in ("epoch", "step", "elapsed"))
    return epoch >= tc.epochs or step >= tc.epochs * tc.sampling.steps_per_epoch or \
        (tc.max_minutes is not None and elapsed >= tc.max_minutes * 60)


def _train_row(cfg: AblationConfig, entry: dict, data_cache: dict, progress: bool):
    from ..training import prepare_data, train

    tc = cfg.train_config(entry["configuration"], entry["variant"], **entry["changes"])
    run = Path(tc.output)
    if not _trained(run, tc):
        key = tc.data.normalization
        if key not in data_cache:
            _log(f"preparing the training data ({key} normalization)")
            data_cache[key] = prepare_data(tc)
        _log(f"training {entry['name']} ({tc.epochs * tc.sampling.steps_per_epoch} steps)")
        if run.exists() and not (run / "last.state.safetensors").exists():
            import shutil

            shutil.rmtree(run)  # stopped before its first epoch ended: nothing to resume
        train(tc, resume=run.exists(), progress=progress, data=data_cache[key])
    return run, tc


def run_ablation(config: AblationConfig | dict, *, progress: bool = True) -> Path:
    """Run (or resume) the study; returns the output folder with ``results.csv`` and ``results.md``."""
    from ..checkpoint import load_model
    from ..inference import predict
    from ..inference.engine import to_uint8
    from ..interrupt import raise_if_interrupted
    from ..model import count_parameters
    from ..table import write_csv
    from ..training.validation import predict_per_subvolume

    cfg = config if isinstance(config, AblationConfig) else ablation_from_dict(config)
    recipe = cfg.train_config()
    if recipe.data.phantoms is not None:
        from ..training.data import check_phantom_pool

        check_phantom_pool(recipe.data.phantoms, progress=False)  # refused before anything is generated
    _check_held_out_memory(cfg.evaluation)
    out = _check_output(cfg)
    _log(f"preparing the held-out set: {cfg.evaluation.count} phantoms {cfg.evaluation.shape}, "
         f"{len(cfg.evaluation.volumes)} labelled volumes")
    phantoms = held_out(cfg.evaluation, recipe.data)
    data_cache: dict = {}
    results = []

    def finish(name, row):
        row = {"row": name, **row}
        # NaN kept (not strict JSON): the study reads its rows back and computes with them (resume)
        (out / "rows" / f"{name}.json").write_text(json.dumps(row, indent=1, default=float), encoding="utf-8")
        results.append(row)
        _log(f"{name}: voxel F1 {row['f1']:.3f}, object F1 {row['object_f1']:.3f}")

    def cached(name):
        row = _scored_row(out, name)
        if row is not None:
            results.append(row)
        return row is not None

    for entry in _model_rows(cfg):
        raise_if_interrupted()  # a stop signal something swallowed (interrupt.py): stop between rows
        names = [entry["name"]] + ([entry["name"] + "-volume-inference"]
                                   if entry["variant"] == "patch-normalization" else [])
        if all(_scored_row(out, n) is not None for n in names):
            for n in names:
                cached(n)
            continue
        run, tc = _train_row(cfg, entry, data_cache, progress)
        model = load_model(run / "best.safetensors")
        total, trainable = count_parameters(model)
        steps, per_1000 = _seconds_per_1000(run)
        levels, base = parse_configuration(entry["configuration"])
        common = {"kind": "variant" if entry["variant"] else "network", "levels": levels, "base_features": base,
                  "parameters": total, "trainable_parameters": trainable, "train_steps": steps,
                  "seconds_per_1000_steps": per_1000}
        if entry["variant"] == "patch-normalization":
            probs = [to_uint8(predict_per_subvolume(p.image, model, cfg.evaluation.subvolume)) for p in phantoms]
            finish(names[0], {**common, **score(probs, phantoms),
                              "note": f"{VARIANTS[entry['variant']]}; inference per {cfg.evaluation.subvolume}^3 "
                                      "sub-volume, each z-scored on its own (the paper's code)"})
            probs = [to_uint8(predict(p.image, model)) for p in phantoms]
            finish(names[1], {**common, **score(probs, phantoms),
                              "note": "the same model, inference with whole-volume z-score (a mismatch)"})
        else:
            probs = [to_uint8(predict(p.image, model)) for p in phantoms]
            note = VARIANTS[entry["variant"]] if entry["variant"] else \
                f"whole-volume z-score, {tc.optim.loss.replace('_', ' + ').upper()}"
            finish(entry["name"], {**common, **score(probs, phantoms), "note": note})

    empty = {"levels": None, "base_features": None, "parameters": 0, "trainable_parameters": 0, "train_steps": 0,
             "seconds_per_1000_steps": float("nan")}
    for name in cfg.baselines:
        raise_if_interrupted()
        if cached(name):
            continue
        t0 = time.perf_counter()
        if name == "otsu":
            from .baselines import otsu_mask

            masks = [otsu_mask(p.image, p.pillar, objects=p.objects) for p in phantoms]
        elif name == "best-threshold":
            from .baselines import best_threshold_mask

            masks = [best_threshold_mask(p.image, p.pillar, p.labels.astype(bool), objects=p.objects)
                     for p in phantoms]
        else:
            from ..inference.normalization import normalize, volume_stats
            from ..training import prepare_data
            from .baselines import ForestBaseline

            tc = cfg.train_config(**{"data.normalization": "volume"})  # the forest's features: z-scored volumes
            if "volume" not in data_cache:
                data_cache["volume"] = prepare_data(tc)
            train_vols, val_vols = data_cache["volume"]
            _log("training the random forest")
            forest = ForestBaseline(seed=tc.seed).fit(train_vols, tc.data.ignore_value, validation=val_vols)
            # z-scored as the training volumes were (bright objects flipped, the fill value left out)
            masks = [forest.mask(normalize(p.image, volume_stats(p.image, fill=p.fill, objects=p.objects)))
                     for p in phantoms]
        row = {**empty, **score(masks, phantoms), "kind": "baseline",
               "note": f"{BASELINES[name]} ({time.perf_counter() - t0:.0f} s)"}
        finish(name, row)

    table = {c: [r.get(c) for r in results] for c in COLUMNS}
    table = {c: np.asarray([np.nan if v is None else v for v in vals]) if c not in ("row", "kind", "note")
             else np.asarray([str(v) for v in vals]) for c, vals in table.items()}
    write_csv(table, out / "results.csv", overwrite=True)
    (out / "results.md").write_text(to_markdown(results, cfg), encoding="utf-8")
    f1_figure(results, out / "f1_vs_parameters.png")
    confusion_figures(results, out / "confusion_matrices")
    return out


def confusion_figures(rows: list[dict], folder: Path) -> None:
    """Each row's pooled confusion matrix as ``folder/ROW.png`` (.svg, .pdf; the paper's Fig. 4), captioned in
    ``folder/captions.json``; rows scored before the counts were kept have none."""
    from ..report.figures import CONFUSION_CAPTION, confusion_figure

    folder.mkdir(exist_ok=True)
    for r in rows:
        if any(r.get(k) is None for k in ("tp", "fp", "fn", "tn")):
            continue
        cm = ConfusionMatrix(*(int(r[k]) for k in ("tp", "fp", "fn", "tn")))
        confusion_figure(cm, folder / f"{r['row']}.png",
                         caption=f"{r['row']}: {CONFUSION_CAPTION[0].lower()}{CONFUSION_CAPTION[1:]} Pooled over the "
                                 f"held-out volumes, inside the sample: TP {cm.tp:,}, FP {cm.fp:,}, FN {cm.fn:,}, "
                                 f"TN {cm.tn:,}.")


def _fmt(v, spec=".3f"):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return format(v, spec)


def to_markdown(rows: list[dict], cfg: AblationConfig) -> str:
    tc = cfg.train_config()
    steps = tc.epochs * tc.sampling.steps_per_epoch
    ev = cfg.evaluation
    held = []
    if ev.count:
        held.append(f"{ev.count} phantom{'s' * (ev.count > 1)} {ev.shape} (seed{'s' * (ev.count > 1)} "
                    f"{ev.seed}{f'..{ev.seed + ev.count - 1}' if ev.count > 1 else ''}, presets "
                    f"{', '.join(ev.presets[:ev.count])})")
    if ev.volumes:
        n = len(ev.volumes)
        held.append(f"{n} labelled volume{'s' * (n > 1)} "
                    f"({', '.join(Path(str(v['image'])).name for v in ev.volumes)})")
    budget = f" or {tc.max_minutes:g} minutes, whichever ends first" if tc.max_minutes is not None else ""
    head = (f"Training: {steps} steps{budget} of batch {tc.sampling.batch_size} x {tc.sampling.patch_size}^3, seed "
            f"{tc.seed}, loss {tc.optim.loss} (steps: what each row trained); held-out: {' and '.join(held)}"
            + ". Every row is scored inside the sample (the phantoms' pillars, the volumes' sample masks): "
            "prediction and truth outside it are not scored. Voxel scores at threshold 127, pooled over the held-out "
            "volumes; objects: one-to-one detection (by overlap, then centroid distance) among objects of >= "
            f"{MIN_VOXELS} voxels not touching the border, on both sides: predicted objects under {MIN_VOXELS} "
            "voxels or touching the border are not counted in the precision (they may still find a true object).\n\n"
            "| row | parameters (trainable) | steps | s / 1000 steps | accuracy | recall | precision | F1 | object R | "
            "object P | object F1 | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    body = ""
    for r in rows:
        params = f"{r['parameters']:,} ({r['trainable_parameters']:,})" if r["parameters"] else "–"
        trained = _fmt(r.get("train_steps"), ",") if r["parameters"] else "–"
        body += (f"| {r['row']} | {params} | {trained} | {_fmt(r['seconds_per_1000_steps'], '.0f')} | "
                 f"{_fmt(r['accuracy'], '.5f')} | {_fmt(r['recall'])} | {_fmt(r['precision'])} | {_fmt(r['f1'])} | "
                 f"{_fmt(r['object_recall'])} | {_fmt(r['object_precision'])} | {_fmt(r['object_f1'])} | "
                 f"{r['note']} |\n")
    body += ("\nThe counts behind the scores (results.csv has them too): the pooled confusion matrix, in voxels "
             "inside the sample (TP: object in both; FP: predicted only; FN: labelled only; TN: neither), and the "
             "objects counted for detection.\n\n| row | TP | FP | FN | TN | true objects | predicted objects | "
             "matched (true / predicted) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        n = {k: _fmt(r.get(k), ",") for k in ("tp", "fp", "fn", "tn", "true_objects", "predicted_objects",
                                               "matched_true", "matched_predicted")}
        body += (f"| {r['row']} | {n['tp']} | {n['fp']} | {n['fn']} | {n['tn']} | {n['true_objects']} | "
                 f"{n['predicted_objects']} | {n['matched_true']} / {n['matched_predicted']} |\n")
    return head + body


def f1_plot(rows: list[dict]):
    """Voxel and object F1 against parameter count: the networks (filled) and the variants (open) as points at
    their size, the baselines (no parameters) as lines across; the legend below the axes, off the points.
    Returns the Figure."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from ..report.figures import DOUBLE_COLUMN, SERIES, new_figure
    from ..report.layout import keep_labels_apart

    fig, ax = new_figure(figsize=(DOUBLE_COLUMN, 3.6))
    handles = []
    names = []
    sized = [r for r in rows if r["kind"] in ("network", "variant")]
    for kind, markers, fill in (("network", ("o", "s"), True), ("variant", ("^", "v"), False)):
        chosen = [r for r in sized if r["kind"] == kind]
        for (key, what), marker, colour in zip((("f1", "voxel F1"), ("object_f1", "object F1")), markers, SERIES):
            if not chosen:
                continue
            (line,) = ax.plot([r["parameters"] for r in chosen], [r[key] for r in chosen], marker, color=colour,
                              mfc=colour if fill else "none", label=f"{kind}s: {what}")
            handles.append(line)
        placed: list = []  # the voxel F1 of the names written so far
        for r in chosen:  # one name a row, beside its voxel F1; a variant named by what it changes, the variants'
            # names (all at the reference's size) one line apart only where their scores nearly coincide
            prefix = f"{r['levels']}-{r['base_features']}-" if r.get("levels") is not None else ""
            name = r["row"][len(prefix):] if kind == "variant" and r["row"].startswith(prefix) else r["row"]
            f1 = r["f1"] if r["f1"] is not None and np.isfinite(r["f1"]) else 0.0
            k = sum(abs(f1 - other) < 0.03 for other in placed)
            placed.append(f1)
            names.append(ax.annotate(name, (r["parameters"], r["f1"]), xytext=(4, 2) if fill else (-4, 2 + 9 * k),
                                     ha="left" if fill else "right", textcoords="offset points", fontsize=7))
    baselines = [r for r in rows if r["kind"] == "baseline"]
    for r, colour in zip(baselines, (SERIES * 2)[2:]):
        for key, style in (("f1", "--"), ("object_f1", ":")):
            if r[key] is not None and np.isfinite(r[key]):
                ax.axhline(r[key], color=colour, ls=style, label=f"{r['row']}: {key}")
        handles.append(Line2D([], [], color=colour, label=r["row"]))
    if baselines:
        handles += [Line2D([], [], color="0.4", ls="--", label="baseline: voxel F1"),
                    Line2D([], [], color="0.4", ls=":", label="baseline: object F1")]
    ax.set_xscale("log")
    if sized:
        sizes = [r["parameters"] for r in sized]
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters (as Keras counts them: trainable + BatchNorm statistics)")
    ax.set_ylabel("F1 on the held-out set")
    ax.set_ylim(0, 1)
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    keep_labels_apart(fig, names)  # networks of about one size and score: "3-8" and "4-4" were written as one
    return fig


def f1_figure(rows: list[dict], path: Path) -> None:
    """:func:`f1_plot` saved as ``path`` (PNG) with SVG and PDF beside it and its caption in captions.json."""
    from ..report.figures import save_figure, styled

    caption = ("Voxel F1 (circles; variants: triangles) and object-detection F1 (squares; variants: inverted "
               "triangles) against the number of parameters, on the held-out set (voxel scores at threshold 127 "
               "inside the sample); networks filled, the variants of the reference network open, at its size; "
               "baselines, which have no parameters, as lines across (dashed: voxel F1, dotted: object F1).")
    styled(lambda: save_figure(f1_plot(rows), path, caption))()
