"""The training loop: batches from a data source on the device, one step each, validation and a
checkpoint each epoch, until the step budget or the time budget ends (whichever comes first).

The parts have homes of their own: where batches come from (:mod:`.sampling`), the step with its
optimizer and schedules (:mod:`.step`), validation (:mod:`.validation`) and the run folder with
resume (:mod:`.checkpoints`). The CPU and the GPU run the same code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model
from ..cpu_memory import kept_on
from ..errors import TomosegError, warn
from ..interrupt import raise_if_interrupted
from ..io.units import voxel_size_text
from ..model import build_model
from .checkpoints import RunFolder
from .config import TrainConfig
from .data import check_phantom_pool, load_pairs, phantom_volume_sets
from .runlog import RunLog
from .sampling import PatchSource, hold_out, largest_crop, split_part
from .step import TrainStep, configure_device, resolve_device
from .step_memory import check_step_memory, out_of_memory_in_training
from .timing import PhaseClock
from .validation import (coverage, evaluate, evaluate_volumes, grid_validation, validation_patches,
                         validation_source)


def prepare_data(cfg: TrainConfig, *, progress: bool = True):
    """The training and validation volumes of a config, loaded (or generated, or read from the phantom
    cache) and normalized.

    Pass the result to :func:`train` as ``data=`` to train several models on the same volumes
    without preparing them again (the ablation study does).
    """
    data = cfg.data
    train, val = [], []
    if data.phantoms is not None:
        check_phantom_pool(data.phantoms, progress=progress)  # disk, memory and time, before generating any
        phantoms, validation = phantom_volume_sets(data.phantoms, data)
        train += phantoms
        val += validation
    if data.volumes:
        # random mode keeps the annotated regions of each pair (one slab per run of annotated slices, or with
        # patches_from: box one box) and the context a patch needs around them; paper mode splits whole volumes
        need = largest_crop(cfg.sampling, cfg.augment)
        context = None if cfg.sampling.mode == "paper" else -(-need // 2)
        slabs = cfg.sampling.patches_from == "annotation"
        pairs = load_pairs(data.volumes, data, context=context, slabs=slabs)
        if data.validation_volumes:
            val += load_pairs(data.validation_volumes, data, context=context, slabs=slabs)
        elif cfg.sampling.mode == "paper":
            val += [split_part(v, "validation") for v in pairs]  # the paper's validation slices, and only those
        elif data.hold_out > 0:
            pairs, held = _held_out(cfg, pairs)
            val += held
        train += pairs
    if not train:
        raise TomosegError("the training set is empty: give data.volumes or data.phantoms")
    return train, val


def _held_out(cfg: TrainConfig, pairs) -> tuple[list, list]:
    """The training volumes less their held-out slices (``data.hold_out``), and those slices, per file (its slabs
    together); a file that cannot spare them trains whole, with a warning that names it."""
    need = largest_crop(cfg.sampling, cfg.augment)
    files: dict = {}
    for v in pairs:
        files.setdefault(v.source or v.name, []).append(v)
    train, held = [], []
    for volumes in files.values():
        split = hold_out(volumes, cfg.data.hold_out, ignore_value=cfg.data.ignore_value, need=need,
                         divisor=2 ** (cfg.model.levels - 1))
        if isinstance(split, str):
            if min(min(v.shape) for v in volumes) >= need:  # too small to train on at all: check_fits says so
                name = volumes[0].source or volumes[0].name
                warn(f"{name}: no slices held out for validation ({split}); it trains whole, and is not "
                     "validated on")
            train += volumes
        else:
            train += split[0]
            held += split[1]
    return train, held


def _model(cfg: TrainConfig, run: RunFolder) -> torch.nn.Module:
    """The network to train: a resume builds the run's own architecture (its weights come from the state, so the
    init file need not be where it was), a new run starts from ``init`` or from random weights."""
    if run.resuming:
        return build_model(run.architecture() or {"levels": cfg.model.levels,
                                                   "base_features": cfg.model.base_features})
    if cfg.init is None:
        return build_model({"levels": cfg.model.levels, "base_features": cfg.model.base_features})
    model = load_model(None if cfg.init == "default" else cfg.init)
    arch = model.config.to_dict()
    if (arch["levels"], arch["base_features"]) != (cfg.model.levels, cfg.model.base_features):
        raise TomosegError(f"init model has levels {arch['levels']}, base_features {arch['base_features']}; "
                           "set model: to match it")
    return model


def init_identity(cfg: TrainConfig, model) -> dict | None:
    """Which model a run started from: the config's name for it, the file's SHA-256, the shipped model it is (if
    one) and the tomoseg version that wrote it. ``default`` names another model in each release (review R9)."""
    if cfg.init is None:
        return None
    from ..shipped import shipped_name

    meta = getattr(model, "metadata", None) or {}
    return {"name": cfg.init, "path": str(model.path), "sha256": model.sha256, "shipped": shipped_name(model.sha256),
            "tomoseg_version": meta.get("tomoseg_version")}


def train(config: TrainConfig | dict | str | Path, *, resume: bool = False, progress: bool = True,
          data=None) -> Path:
    """Train (or fine-tune) a model as ``config`` says; returns the run folder.

    ``config``: a :class:`TrainConfig`, a dict of its sections, or the path of a YAML config file (read as
    ``tomoseg train CONFIG`` reads it: :func:`~tomoseg.training.config.load_config`).

    Examples
    --------
    >>> import tomoseg, tempfile  # doctest: +SKIP
    >>> run = tomoseg.train({"output": tempfile.mkdtemp() + "/run", "epochs": 1,
    ...                      "data": {"phantoms": {"count": 1, "shape": [32, 96, 96]}}})  # doctest: +SKIP

    ``data``: the ``(training, validation)`` volumes from :func:`prepare_data` of an equal data section;
    by default they are prepared here.

    A fine-tune (``init``) scores its init model on the validation patches first, as epoch 0: that model
    competes for ``best.safetensors`` like every epoch, and the run warns where no epoch beat it.
    """
    from .config import config_from_dict, load_config

    if isinstance(config, (str, Path)):
        cfg = load_config(config)
    else:
        cfg = config if isinstance(config, TrainConfig) else config_from_dict(config)
    run = RunFolder(cfg, resume=resume)  # a finished run, or a changed config, is refused before the data are read
    log = RunLog(echo=progress)
    with log.keeping_warnings():
        _train(cfg, run, log, progress, data)
    return run.path


def _train(cfg: TrainConfig, run: RunFolder, log: RunLog, progress: bool, data) -> None:
    device = resolve_device(cfg.device)
    configure_device(cfg, device)
    check_step_memory(cfg, device)  # before the data are read
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    train_vols, val_vols = prepare_data(cfg, progress=progress) if data is None else data
    t_data = time.perf_counter() - t0
    source = PatchSource(train_vols, cfg.sampling, cfg.augment, cfg.data.ignore_value,
                         cfg.data.normalization == "patch", device, seed=cfg.seed)
    val_patches = validation_patches(cfg, val_vols, train_vols, device)
    model = _model(cfg, run)
    init = run.saved_init() if run.resuming else init_identity(cfg, model)
    step = TrainStep(model.to(device).train(), cfg, device)
    files = len({v.source or v.name for v in train_vols})  # the slabs of one file count once
    setup = {"volumes": files, "validation_volumes": len(val_vols), "data_s": round(t_data, 1),
             "device_s": round(time.perf_counter() - t0 - t_data, 1),
             "validation_source": validation_source(cfg, val_vols)}
    if len(train_vols) > files:
        setup["slabs"] = len(train_vols)
    scored = ""
    if grid_validation(cfg, val_vols or train_vols):  # what share of the validation annotation is scored (R6)
        setup["validation_patches"] = len(val_patches[0])
        setup["validation_coverage"] = round(coverage(val_patches, val_vols or train_vols, cfg.data.ignore_value), 4)
        scored = (f"; {setup['validation_patches']} patches, {setup['validation_coverage']:.0%} of its annotated "
                  "voxels")
    if any(v.part == "held-out" for v in val_vols):
        setup["held_out"] = [v.name for v in val_vols if v.part == "held-out"]
    if setup["validation_source"] == "training volumes":
        warn("no held-out data (data.validation_volumes is empty): the validation scores and the choice of "
             "best.safetensors are computed on the training volumes; give data.validation_volumes (or "
             "data.hold_out, or sampling.mode: paper) for held-out numbers")
    # also recorded in the model files' metadata ("setup"), for runs under -q
    slabs = f" ({setup['slabs']} annotated slabs)" if "slabs" in setup else ""
    log.say(f"training data: {setup['volumes']} volumes{slabs} and {setup['validation_volumes']} for validation, "
            f"ready in {setup['data_s']} s (validation: {setup['validation_source']}{scored}); on the "
            f"{device.type} device in {setup['device_s']} s more")
    counters = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_val_loss": float("inf")}
    if run.resuming:
        counters.update(run.restore(step.model, step.optimizer, source))
        rng.bit_generator.state = counters.pop("numpy_rng")
        _say_budget_change(cfg, run.saved_budget, step, counters, log)
    meta = {**_model_metadata(cfg, train_vols), "trained_on": _trained_on(device, step), "setup": setup}
    if init is not None:
        meta["init"] = init
    run.start()
    log.open(run.path)
    loop = _Loop(cfg, run, step, source, (val_patches, val_vols or train_vols), counters, rng, meta, log)
    # on the CPU, glibc keeps freed activations and gradients for the next step (tomoseg.cpu_memory): a step
    # of 2 x 96^3 on 2 cores went from 1.43 to 1.04 s
    try:
        with kept_on(device):
            if init is not None and not run.resuming:
                loop.baseline()
            loop.run(progress)
    except (RuntimeError, MemoryError) as exc:  # PyTorch's allocation failures: one line, with what to change
        said = out_of_memory_in_training(exc, cfg, device)
        if said is None:
            raise
        raise said from exc


def _trained_on(device, step) -> dict:
    trained_on = {"device": device.type, "precision": step.precision}
    if device.type == "cuda":
        trained_on["gpu"] = torch.cuda.get_device_name(device)
    return trained_on


def _model_metadata(cfg: TrainConfig, volumes) -> dict:
    """What the model file says about the data it expects; with whole-volume normalization, the z-scored
    gray-value histogram of its training volumes (``segment`` warns when an input's differs)."""
    voxel = _voxel_size(cfg, volumes)
    scope = "patch" if cfg.data.normalization == "patch" else "whole-volume"
    # objects: segment flips bright objects as training did (segment --objects defaults to this)
    meta = {"normalization": {"method": "zscore", "scope": scope, "objects": cfg.data.objects},
            "voxel_size_nm": voxel, "threshold": 127}
    if scope == "whole-volume" and volumes:
        from ..inference.domain import intensity_histogram

        sample = np.concatenate([v.image[::4].ravel() for v in volumes])  # already z-scored per volume
        meta["input_histogram"] = intensity_histogram(sample, 0.0, 1.0)
    return meta


def _say_budget_change(cfg: TrainConfig, saved: tuple, step: TrainStep, counters: dict, log: RunLog) -> None:
    """One line on stderr when a resume changes epochs or max_minutes: the schedules follow the share of the budget
    spent, so from the resumed step on they follow the new budget."""
    epochs, minutes = saved
    if (epochs, minutes) == (cfg.epochs, cfg.max_minutes) or not isinstance(epochs, int):
        return

    def progress(e, m):
        done = counters["step"] / (e * cfg.sampling.steps_per_epoch)
        return max(done, counters["elapsed"] / (m * 60)) if m else done

    before, after = progress(epochs, minutes), progress(cfg.epochs, cfg.max_minutes)
    what = ", ".join(f"{k} {a} -> {b}" for k, a, b in (("epochs", epochs, cfg.epochs),
                                                       ("max_minutes", minutes, cfg.max_minutes)) if a != b)
    line = (f"tomoseg: note: the budget changed ({what}): the learning-rate and loss schedules follow the new budget "
            f"from step {counters['step']} on: learning rate {step.learning_rate(before):.3g} -> "
            f"{step.learning_rate(after):.3g}")
    if cfg.optim.loss_after and step.loss_kind(before) != step.loss_kind(after):
        line += f", loss {step.loss_kind(before)} -> {step.loss_kind(after)}"
    log.say(line, always=True)


VOXEL_TOLERANCE = 0.03  # relative: sizes closer than this are the same size written with other rounding


def _voxel_size(cfg: TrainConfig, volumes) -> list | None:
    """The voxel size the model records: the config's ``voxel_size_nm`` (with a warning where the training files
    record another), else the one size the training volumes record (phantoms: 29.33 nm). None, with a warning, where
    a training file records none or they record different sizes: the init model's size is not the data's (R2)."""
    sizes: dict = {}
    for v in volumes:
        sizes.setdefault(tuple(v.voxel_size_nm) if v.voxel_size_nm else None, []).append(v.name)
    unknown = sizes.pop(None, [])
    if cfg.voxel_size_nm:
        given = np.asarray(cfg.voxel_size_nm, float)
        for size, names in sorted(sizes.items()):
            if np.any(np.abs(np.asarray(size) / given - 1) > VOXEL_TOLERANCE):
                warn(f"voxel_size_nm {voxel_size_text(cfg.voxel_size_nm)} in the config differs from the "
                     f"{voxel_size_text(size)} that {names[0]}" + (f" (and {len(names) - 1} more)" if len(names) > 1
                                                                 else "")
                     + " records; the model records the config's, and segment will compare scans with it. Leave "
                     "voxel_size_nm out of the config where the files are right")
        return list(cfg.voxel_size_nm)
    if unknown:
        warn(f"the training scan {unknown[0]}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
             + " records no voxel size, so the model records none and segment cannot warn when a scan's differs; "
             "set voxel_size_nm [z, y, x] in the config")
        return None
    if len(sizes) > 1:
        shown = "; ".join(voxel_size_text(s) for s in sorted(sizes))
        warn(f"the training volumes record different voxel sizes ({shown}), so the model records none; set "
             "voxel_size_nm in the config to the size the model is for")
        return None
    return list(next(iter(sizes))) if sizes else None


class _Loop:
    """Epochs of steps until a budget ends; each epoch ends with validation and a checkpoint."""

    def __init__(self, cfg, run, step, source, validation, counters, rng, model_meta, log):
        self.cfg, self.run_folder, self.step, self.source = cfg, run, step, source
        (self.val_patches, self.val_volumes), self.counters = validation, counters
        self.rng, self.model_meta, self.log = rng, model_meta, log
        self.total_steps = cfg.epochs * cfg.sampling.steps_per_epoch
        self.budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None

    def progress(self) -> float:
        done = self.counters["step"] / self.total_steps
        if self.budget_s:
            done = max(done, self.counters["elapsed"] / self.budget_s)
        return done

    def run(self, show: bool) -> None:
        bar = _bar(show, self.total_steps, self.counters["step"], self.cfg.epochs, self.counters["epoch"])
        self.log.bar = bar
        try:
            while self.counters["epoch"] < self.cfg.epochs and self.progress() < 1:
                self.epoch(bar)
        finally:
            self.log.bar = None
            if bar is not None:
                bar.close()
        self._say_outcome()

    def baseline(self) -> None:
        """Epoch 0 of a fine-tune: the init model scored on the validation patches before any step, recorded as a
        row of metrics.csv and saved as best.safetensors until an epoch beats it (review R3)."""
        t0 = time.perf_counter()
        self._finish_epoch(t0, float("nan"), {})

    def epoch(self, bar) -> None:
        c, t0 = self.counters, time.perf_counter()
        start_elapsed, losses = c["elapsed"], []
        clock = PhaseClock(self.step.device)
        for _ in range(self.cfg.sampling.steps_per_epoch):
            raise_if_interrupted()  # a stop signal something swallowed (interrupt.py): stop before the next step
            clock.start()
            x, y = self.source.batch(self.rng)
            clock.lap("data")
            losses.append(self.step(x, y, self.progress()))
            clock.lap("compute")
            c["step"] += 1
            c["elapsed"] = start_elapsed + time.perf_counter() - t0
            if bar is not None:
                if len(losses) % 20 == 0:
                    bar.set_description(_bar_text(c["epoch"] + 1, self.cfg.epochs,
                                                  float(torch.stack(losses[-20:]).mean())))
                elif len(losses) == 1:
                    bar.set_description(_bar_text(c["epoch"] + 1, self.cfg.epochs))
                bar.update(1)
            if self.progress() >= 1:
                break
        c["epoch"] += 1
        self._finish_epoch(t0, float(torch.stack(losses).mean()), clock.totals(), start_elapsed)

    def _finish_epoch(self, t0: float, train_loss: float, phases: dict, start_elapsed: float | None = None) -> None:
        """Validation, the metrics row, the checkpoint and the epoch's line."""
        c = self.counters
        t_val = time.perf_counter()
        kind = self.step.loss_kind(self.progress())
        # best.safetensors is chosen by one criterion over the whole run: the validation loss of optim.loss, also
        # after a switch to optim.loss_after (whose loss is another quantity: Dice + BCE adds about 1, focal is
        # always below BCE); the loss being trained is logged beside it
        val_losses, cm = evaluate(self.step, self.val_patches, self.cfg, (self.cfg.optim.loss, kind))
        val_loss = val_losses[self.cfg.optim.loss]
        score, best_threshold = val_loss, float("nan")
        if self.cfg.sampling.validation == "volumes":
            scores = evaluate_volumes(self.step.model, self.val_volumes, self.step.device,
                                      self.cfg.data.ignore_value, per_patch=self.cfg.data.normalization == "patch"
                                      and self.cfg.sampling.patch_size)
            cm, best_threshold = scores.cm, scores.best_threshold
            score = -scores.f1_by_threshold[127]
        if start_elapsed is not None:  # epoch 0 (the init model's score) spends none of the time budget
            c["elapsed"] = start_elapsed + time.perf_counter() - t0
        best = score < c.get("best_score", float("inf"))
        if best:
            c["best_epoch"], c["best_epoch_val_loss"] = c["epoch"], val_loss
        c["best_score"] = min(score, c.get("best_score", float("inf")))
        c["best_val_loss"] = min(val_loss, c["best_val_loss"])
        row = {"epoch": c["epoch"], "step": c["step"], "train_loss": train_loss,
               "val_loss": val_loss, "accuracy": cm.accuracy, "tp": cm.tp, "tn": cm.tn, "fp": cm.fp, "fn": cm.fn,
               "recall": cm.recall, "precision": cm.precision, "f1": cm.f1, "best_threshold": best_threshold,
               "seconds": time.perf_counter() - t0, "data_s": phases.get("data", 0.0),
               "compute_s": phases.get("compute", 0.0), "validation_s": time.perf_counter() - t_val,
               "loss_kind": kind, "val_loss_trained": val_losses[kind],
               "learning_rate": self.step.learning_rate(self.progress())}
        self.run_folder.save(self.step.model, self.step.optimizer, self.source,
                             {**c, "numpy_rng": self.rng.bit_generator.state}, row, self.model_meta, best=best)
        self.log.say(epoch_line(row, self.cfg.epochs, c))

    def _say_outcome(self) -> None:
        """A fine-tune whose epochs all scored worse than its init model says so (review R3)."""
        c, rows = self.counters, self.run_folder.rows
        if c.get("best_epoch") != 0 or c["epoch"] == 0:
            return
        key = "f1" if self.cfg.sampling.validation == "volumes" else "val_loss"
        before = [float(v) for e, v in zip(rows["epoch"], rows[key]) if int(e) == 0]
        after = [float(v) for e, v in zip(rows["epoch"], rows[key]) if int(e) > 0 and v == v]
        if not before or not after:
            return
        what = "whole-volume F1" if key == "f1" else "validation loss"
        best = max(after) if key == "f1" else min(after)
        warn(f"no epoch improved on the init model ({self.cfg.init}): {what} {before[0]:.4g} before training, "
             f"{best:.4g} at best after; best.safetensors holds the init model's weights (epoch 0). Lower "
             "optim.learning_rate, annotate more, or use the init model as it is")


def epoch_line(row: dict, epochs: int, counters: dict) -> str:
    """``epoch 3/10: train 0.0204, val 0.0203 (best 0.0194 @2), F1 0.130, 0.7 s``."""
    f1 = row["f1"]
    scores = f"val {row['val_loss']:.4g}" + (f" (best {counters['best_epoch_val_loss']:.4g} @{counters['best_epoch']})"
                                              if "best_epoch" in counters else "")
    scores += ", F1 " + (f"{f1:.3f}" if f1 == f1 else "n/a (nothing found)")
    if row["epoch"] == 0:
        return f"epoch 0/{epochs} (the init model, before training): {scores}, {row['seconds']:.1f} s"
    return f"epoch {row['epoch']}/{epochs}: train {row['train_loss']:.4g}, {scores}, {row['seconds']:.1f} s"


def _bar(enabled: bool, total: int, initial: int, epochs: int, epoch: int):
    """tomoseg's progress (one redrawn line on a terminal, a plain line every 30 s in a log: a batch job's log
    got hundreds of tqdm fragments a minute), over the run's steps; a resumed run's ``initial`` steps count as
    done before."""
    if not enabled:
        return None
    from ..progress import Progress

    bar = Progress(total, desc=_bar_text(epoch + 1, epochs), unit="steps")
    if initial:
        bar.skip(initial, resumed=True)
    return bar


def _bar_text(epoch: int, epochs: int, loss: float | None = None) -> str:
    """``train epoch 3/10, loss 0.0213``: the bar's description (the loss: the mean of the last 20 steps)."""
    return f"train epoch {min(epoch, epochs)}/{epochs}" + ("" if loss is None else f", loss {loss:.4f}")
