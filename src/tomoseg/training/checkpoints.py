"""What a run folder holds, and how a run is saved and resumed.

``config.yaml`` (the effective config), ``metrics.csv`` (one row per epoch), ``learning_curve.png``,
``best.safetensors`` (lowest validation loss of ``optim.loss``, or highest whole-volume F1), ``last.safetensors``
and ``last.state.safetensors``
(optimizer, random states, elapsed time: what ``--resume`` needs). Everything is safetensors or text:
nothing in a run folder is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model, save_model, with_umask_permissions, write_safetensors
from ..errors import TomosegError
from ..io.result_folders import json_safe
from ..table import read_csv, write_csv
from .config import TrainConfig, dump_config
from .runlog import LOG

METRIC_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "accuracy", "tp", "tn", "fp", "fn", "recall",
                  "precision", "f1", "best_threshold", "seconds", "data_s", "compute_s", "validation_s", "loss_kind",
                  "val_loss_trained", "learning_rate"]
STATE = "last.state.safetensors"
# settings that may change between a run and its resume. epochs and max_minutes change the budget, and with it
# the learning-rate and loss schedules from the resumed step on (they follow the share of the budget spent): the
# resume says so (RunFolder.saved_budget); the others do not change what is learned
RESUMABLE_CHANGES = {"epochs", "max_minutes", "device", "performance", "output"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# keys added to the config since a run may have started, with the value that does what that run did
ADDED_LATER = {"data.hold_out": 0.0}
# keys a run started before them resumes with, set to the value that did what it did then, without being asked:
# a resumed run keeps its own validation patches (validation_cells, held_out_cells) and goes on training on what it
# trained on (patches_from: the kept box and where its non-object patches are drawn, review R5)
ADOPTED_ON_RESUME = {"sampling.validation_cells": "any", "sampling.held_out_cells": "drawn",
                     "sampling.patches_from": "box"}


def adopt_old_values(saved: dict, cfg) -> list[str]:
    """Set ``cfg``'s :data:`ADOPTED_ON_RESUME` keys that the run's saved config lacks (a run started before them)
    to their old value, in place, and the same in ``saved`` (so that the two compare equal there); returns the
    keys set."""
    have = _flatten(saved)
    adopted = []
    for key, old in ADOPTED_ON_RESUME.items():
        section, name = key.split(".")
        if isinstance(saved.get(section), dict) and key not in have:
            setattr(getattr(cfg, section), name, old)
            saved[section][name] = old
            adopted.append(key)
    return adopted


def _yaml_value(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _resolved(entry):
    """A data path (``file`` or ``file:dataset``) as the absolute path of its file: the same files named from
    another working folder compare equal (review R10)."""
    from ..io import split_dataset
    from ..shipped import SHIPPED_MODELS

    if not isinstance(entry, str) or entry in SHIPPED_MODELS:
        return entry
    file, dataset = split_dataset(entry)
    return str(Path(file).expanduser().resolve()) + (f":{dataset}" if dataset else "")


def _with_resolved_paths(flat: dict) -> dict:
    out = dict(flat)
    if "init" in out:
        out["init"] = _resolved(out["init"])
    for key in ("data.volumes", "data.validation_volumes"):
        if isinstance(out.get(key), list):
            out[key] = [{k: _resolved(v) for k, v in e.items()} if isinstance(e, dict) else e for e in out[key]]
    return out


def changed_keys(saved: dict, current: dict) -> list[str]:
    """Config keys (dotted) whose values differ, leaving out those a resume may change. A key the saved config
    lacks (:data:`ADDED_LATER`) counts as the value that did what the run did then."""
    a, b = _with_resolved_paths(_flatten(saved)), _with_resolved_paths(_flatten(current))
    for key, then in ADDED_LATER.items():
        if key.split(".")[0] in saved:
            a.setdefault(key, then)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in keys if k.split(".")[0] not in RESUMABLE_CHANGES]


# what a run folder holds after a start that stopped before any epoch was saved (an error or Ctrl-C in the first
# epoch): nothing to resume, so such a folder is started again as new (review R4)
LEFT_BEFORE_AN_EPOCH = {"config.yaml", LOG}
# the files a run writes: what a new start in a folder whose run never took a step replaces
RUN_FILES = ("config.yaml", "metrics.csv", "learning_curve.png", "best.safetensors", "last.safetensors", STATE)


def state_metadata(path) -> dict:
    """The counters and rows of a state file (its JSON header), without reading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["tomoseg_train_state"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TomosegError(f"{path}: the training state cannot be read ({exc}); start a new run in another "
                           "folder") from None


def _run_file(name: str) -> bool:
    """Whether a file of this name is one a training run writes (its files, log, temporary names, tomoseg's
    hidden records), so that a folder holding others is a user's folder, never called a run to delete."""
    return name in RUN_FILES or name == LOG or name.startswith(".tomoseg") or name.endswith(".partial") or \
        name.startswith("learning_curve.")


class RunFolder:
    """Saves and restores one training run."""

    def __init__(self, cfg: TrainConfig, *, resume: bool):
        self.cfg = cfg
        self.path = Path(cfg.output)
        self.state_file = self.path / STATE
        if self.path.exists() and not self.path.is_dir():
            raise TomosegError(f"{self.path}: is a file, not a folder; give a folder for the run (--output or the "
                               "config's output)")
        held = {p.name for p in self.path.iterdir()} if self.path.exists() else set()
        exists = bool(held) and not held <= LEFT_BEFORE_AN_EPOCH
        # the same answer with and without --resume, naming what the folder holds
        if exists and not self.state_file.exists():
            if (self.path / "config.yaml").exists() and all(_run_file(name) for name in held):
                raise TomosegError(f"{self.path}: a run that stopped before its first epoch ended (no {STATE}), so "
                                   "there is nothing to resume; delete the folder or choose another output")
            raise TomosegError(f"{self.path}: a folder of other files, not a tomoseg run; choose a new folder "
                               "(--output or the config's output)")
        self.saved = state_metadata(self.state_file) if exists else {}
        # a fine-tune stopped in its first epoch holds the init model's score (epoch 0) and no step: without
        # --resume it starts again as new
        self.replace = exists and not resume and self.saved.get("step") == 0
        if exists and not resume and not self.replace:
            raise TomosegError(f"{self.path}: run folder exists; pass --resume to continue it, or choose another "
                               "output")
        self.resuming = exists and not self.replace
        self.saved_budget = (cfg.epochs, cfg.max_minutes)
        if self.resuming:
            self._check_same_config()
            self._check_unfinished()
        self.rows = {c: [] for c in METRIC_COLUMNS}

    def _check_unfinished(self) -> None:
        """A resume of a run that has nothing left to train is refused before any data are read (review R10)."""
        epoch, step, elapsed = (self.saved.get(k, 0) for k in ("epoch", "step", "elapsed"))
        cfg = self.cfg
        out_of_steps = epoch >= cfg.epochs or step >= cfg.epochs * cfg.sampling.steps_per_epoch
        out_of_time = cfg.max_minutes is not None and elapsed >= cfg.max_minutes * 60
        if out_of_steps:
            raise TomosegError(f"{self.path}: this run already finished {epoch} of {cfg.epochs} epochs; its model "
                               f"is {self.path / 'best.safetensors'}. To train longer, resume with more epochs "
                               f"(--epochs {epoch + max(1, epoch // 2)})")
        if out_of_time:
            raise TomosegError(f"{self.path}: this run already spent its max_minutes {cfg.max_minutes:g} "
                               f"({elapsed / 60:.1f} min, {epoch} of {cfg.epochs} epochs); its model is "
                               f"{self.path / 'best.safetensors'}. To train longer, raise max_minutes in the "
                               "config and resume")

    def architecture(self) -> dict | None:
        """The architecture of the run's saved model (None where it has none yet)."""
        from ..checkpoint import read_metadata

        last = self.path / "last.safetensors"
        return read_metadata(last).get("architecture") if last.exists() else None

    def saved_init(self) -> dict | None:
        """What a resumed run started from, as its model files record it (``init``); None for a run of an earlier
        version, which did not record it."""
        from ..checkpoint import read_metadata

        last = self.path / "last.safetensors"
        return read_metadata(last).get("init") if last.exists() else None

    def _check_same_config(self) -> None:
        import yaml

        saved_file = self.path / "config.yaml"
        try:
            saved = yaml.safe_load(saved_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            raise TomosegError(f"{saved_file}: missing or unreadable; cannot check that --resume continues the "
                               "same run") from None
        saved = saved if isinstance(saved, dict) else {}
        self.saved_budget = (saved.get("epochs"), saved.get("max_minutes"))
        adopt_old_values(saved, self.cfg)
        diff = changed_keys(saved, self.cfg.to_dict())
        if diff:
            older = [k for k in diff if k in ADDED_LATER and k not in _flatten(saved)]
            hint = "".join(f"; this run started before {k} existed: set it to {_yaml_value(ADDED_LATER[k])} in "
                           "its config.yaml to resume it as it was" for k in older)
            raise TomosegError(f"{self.path}: the config changed since this run started ({', '.join(diff[:8])}); "
                               f"resume with the run's own config.yaml, or start a new run in another folder{hint}")

    def start(self) -> None:
        """The folder, with config.yaml: a new run's written (replacing that of a start that saved no trained
        epoch, and that start's files), a resumed run's kept."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.resuming:
            if self.replace:
                for name in RUN_FILES:
                    (self.path / name).unlink(missing_ok=True)
            (self.path / "config.yaml").write_text(dump_config(self.cfg), encoding="utf-8")

    def restore(self, model, optimizer, source) -> dict:
        """Load the last state into ``model``, ``optimizer`` and ``source``; returns the saved counters.

        Everything comes from the state file, the last file :meth:`save` writes and the one written atomically:
        the weights, optimizer, random states, the paper grid's pass and the metrics rows are of one epoch, even
        where the run was stopped between two of the files of a save."""
        from safetensors.torch import load_file

        meta = dict(self.saved) or state_metadata(self.state_file)  # the header, read when the folder was opened
        tensors = load_file(str(self.state_file))
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        if not weights:  # a state file of an earlier version: the weights are last.safetensors', if of its step
            last = load_model(self.path / "last.safetensors")
            step = (last.metadata.get("training") or {}).get("step")
            if step != meta["step"]:
                raise TomosegError(f"{self.path}: last.safetensors is of step {step} and {STATE} of step "
                                   f"{meta['step']} (the run stopped while saving); start a new run in another "
                                   "folder")
            weights = last.state_dict()
        model.load_state_dict(weights)
        state = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
        torch.set_rng_state(tensors["torch_rng"])
        if "source_rng" in tensors:
            source.set_generator_state(tensors["source_rng"])
        if "paper_order" in tensors:
            source.set_pass_state(tensors["paper_order"])
        if "budget" in meta:  # the budget the state was saved under (config.yaml keeps the first one)
            self.saved_budget = tuple(meta.pop("budget"))
        for key in SCORE_COUNTERS:  # written as null where NaN (JSON has none)
            if key in meta and meta[key] is None:
                meta[key] = float("nan")
        rows = meta.pop("rows", None)
        if rows is not None:
            rows = {c: [float("nan") if v is None else v for v in values] for c, values in rows.items()}
        if rows is None and (self.path / "metrics.csv").exists():
            rows = read_csv(self.path / "metrics.csv")
        if rows is not None:
            n = len(rows.get("epoch", []))  # columns a run of an earlier version did not write: NaN
            self.rows = {c: list(rows[c]) if c in rows else [float("nan")] * n for c in METRIC_COLUMNS}
        return meta

    def save(self, model, optimizer, source, counters: dict, row: dict, model_meta: dict, *, best: bool) -> None:
        for c in METRIC_COLUMNS:
            self.rows[c].append(row[c])
        training = {"config": self.cfg.to_dict(), "epoch": counters["epoch"], "step": counters["step"],
                    "seconds": round(counters["elapsed"], 1),
                    "validation": {k: row[k] for k in ("val_loss", "recall", "precision", "f1", "best_threshold")}}
        was_training = model.training
        model.eval()
        save_model(model, self.path / "last.safetensors", {**model_meta, "training": training}, overwrite=True)
        if best:
            save_model(model, self.path / "best.safetensors", {**model_meta, "training": training}, overwrite=True)
        model.train(was_training)
        # the state file is written last and holds the weights, the pass and the rows too: the consistent set that
        # --resume trusts (a stop between the model files and it resumes from the epoch before, whole)
        opt = optimizer.state_dict()
        tensors = {"torch_rng": torch.get_rng_state(), "source_rng": source.generator_state().cpu()}
        tensors.update({f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
        order = source.pass_state()
        if order is not None:
            tensors["paper_order"] = order
        for idx, entries in opt["state"].items():
            for name, value in entries.items():
                tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta = {**counters, "param_groups": opt["param_groups"], "rows": self.rows,
                "budget": [self.cfg.epochs, self.cfg.max_minutes]}
        tmp = self.state_file.with_name(self.state_file.name + ".partial")
        # NaN and infinite scores as null (valid JSON; restore reads them back as NaN)
        header = json.dumps(json_safe(meta), default=_plain, allow_nan=False)
        write_safetensors(tensors, tmp, metadata={"tomoseg_train_state": header})  # the disk full: an OSError
        with_umask_permissions(tmp)
        tmp.replace(self.state_file)
        write_csv({c: np.asarray(self.rows[c]) for c in METRIC_COLUMNS}, self.path / "metrics.csv", overwrite=True)
        learning_curve({c: np.asarray(self.rows[c]) for c in METRIC_COLUMNS}, self.path / "learning_curve.png")


SCORE_COUNTERS = ("best_val_loss", "best_score", "best_epoch_val_loss")  # the state's counters that may be NaN


def _plain(value):
    """NumPy scalars (metrics rows read back from metrics.csv) as JSON numbers."""
    return value.item() if hasattr(value, "item") else float(value)


def learning_curve(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = rows["step"].astype(float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    a.plot(step, rows["train_loss"].astype(float), "o-", label="training")
    a.plot(step, rows["val_loss"].astype(float), "s-", label="validation")
    init = np.flatnonzero(rows["epoch"].astype(float) == 0)  # a fine-tune's init model, scored before training
    if len(init):
        a.axhline(float(rows["val_loss"][init[0]]), color="0.5", ls="--", lw=1, label="init model (validation)")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.set_yscale("log")
    a.legend()
    for key in ("recall", "precision", "f1"):
        b.plot(step, rows[key].astype(float), "o-", label=key)
    if len(init) and np.isfinite(float(rows["f1"][init[0]])):
        b.axhline(float(rows["f1"][init[0]]), color="0.5", ls="--", lw=1, label="init model f1")
    b.set_xlabel("step")
    b.set_ylim(0, 1)
    b.set_title("validation voxels (threshold 127)")
    b.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
