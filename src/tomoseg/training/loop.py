"""The training loop: Adam, validation each epoch, logs, checkpoints, resume.

A run folder holds ``config.yaml`` (the effective config), ``metrics.csv`` (one
row per epoch), ``learning_curve.png``, ``best.safetensors`` (lowest validation
loss), ``last.safetensors`` and ``last.state.safetensors`` (optimizer and random
states, for ``--resume``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model, save_model
from ..errors import TomosegError
from ..inference.engine import to_uint8
from ..metrics import ConfusionMatrix
from ..model import build_model
from ..table import read_csv, write_csv
from .config import TrainConfig, dump_config
from .data import load_pairs, phantom_volumes
from .losses import masked_loss
from .sampling import make_sampler, split_ranges

METRIC_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "accuracy", "tp", "tn", "fp", "fn", "recall",
                  "precision", "f1", "seconds"]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TomosegError("device cuda: no CUDA GPU is visible; use device: cpu")
    return torch.device(name)


def prepare_data(cfg: TrainConfig):
    """The training and validation volumes of a config, loaded (or generated) and normalized.

    Pass the result to :func:`train` as ``data=`` to train several models on the same volumes
    without preparing them again (the ablation study does).
    """
    data = cfg.data
    train, val = [], []
    if data.phantoms is not None:
        ph = data.phantoms
        train += phantom_volumes(ph, data, start=0, count=ph.count)
        val += phantom_volumes(ph, data, start=ph.count, count=ph.validation_count)
    if data.volumes:
        pairs = load_pairs(data.volumes, data)
        train += pairs
        if data.validation_volumes:
            val += load_pairs(data.validation_volumes, data)
        elif cfg.sampling.mode == "paper":
            val += pairs  # validation patches come from the validation slices (see _validation_set)
    if not train:
        raise TomosegError("the training set is empty: give data.volumes or data.phantoms")
    return train, val


def _validation_set(cfg: TrainConfig, val_volumes, train_volumes, sampler_cls_args):
    """A fixed set of validation patches (the same every epoch)."""
    from .sampling import RandomSampler

    rng = np.random.default_rng(cfg.seed + 10_007)
    vols = val_volumes or train_volumes
    p = cfg.sampling.patch_size
    if cfg.sampling.mode == "paper" and not cfg.data.validation_volumes and cfg.data.phantoms is None:
        patches = []
        for v in vols:
            lo, hi = split_ranges(v.shape[0])["validation"]
            for z in range(lo, hi - p + 1, p):
                for y in range(0, v.shape[1] - p + 1, p):
                    for x in range(0, v.shape[2] - p + 1, p):
                        patches.append((v.image[z:z + p, y:y + p, x:x + p], v.labels[z:z + p, y:y + p, x:x + p]))
        if patches:
            return patches[: max(cfg.sampling.validation_patches, 1)]
    sampler = RandomSampler(vols, cfg.sampling, cfg.augment, cfg.data.ignore_value, *sampler_cls_args)
    return [sampler.patch(rng, train=False) for _ in range(cfg.sampling.validation_patches)]


def _evaluate(model, patches, cfg: TrainConfig, device, autocast) -> tuple[float, ConfusionMatrix]:
    model.eval()
    total, n, cm = 0.0, 0, ConfusionMatrix()
    with torch.no_grad():
        for image, labels in patches:
            x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)
            y = torch.from_numpy(np.ascontiguousarray(labels))[None, None].to(device)
            with autocast():
                logits = model(x)
            logits = logits.float()
            total += float(masked_loss(logits, y, kind=cfg.optim.loss, ignore_value=cfg.data.ignore_value))
            n += 1
            prob = torch.sigmoid(logits)[0, 0].cpu().numpy()
            pred = to_uint8(prob) > 127
            lab = labels
            known = lab != cfg.data.ignore_value
            truth = lab == 1
            tp = int(np.count_nonzero(pred & truth & known))
            fp = int(np.count_nonzero(pred & ~truth & known))
            fn = int(np.count_nonzero(~pred & truth & known))
            tn = int(np.count_nonzero(known)) - tp - fp - fn
            cm = cm + ConfusionMatrix(tp, fp, fn, tn)
    model.train()
    return total / max(n, 1), cm


def _save_state(path: Path, optimizer, meta: dict) -> None:
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors = {"torch_rng": torch.get_rng_state()}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {**meta, "param_groups": state["param_groups"]}
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={"tomoseg_train_state": json.dumps(meta)})
    tmp.replace(path)


def _load_state(path: Path, optimizer) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["tomoseg_train_state"])
    tensors = load_file(str(path))
    state = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["torch_rng"])
    return meta


def _learning_curve(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(rows["step"], rows["train_loss"], "o-", label="training")
    a.plot(rows["step"], rows["val_loss"], "s-", label="validation")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.set_yscale("log")
    a.legend()
    for key in ("recall", "precision", "f1"):
        b.plot(rows["step"], rows[key], "o-", label=key)
    b.set_xlabel("step")
    b.set_ylim(0, 1)
    b.set_title("validation voxels (threshold 127)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig | dict, *, resume: bool = False, progress: bool = True, data=None) -> Path:
    """Train (or fine-tune) a model as ``config`` says; returns the run folder.

    Examples
    --------
    >>> import tomoseg, tempfile  # doctest: +SKIP
    >>> run = tomoseg.train({"output": tempfile.mkdtemp() + "/run", "epochs": 1,
    ...                      "data": {"phantoms": {"count": 1, "shape": [32, 96, 96]}}})  # doctest: +SKIP

    ``data``: the ``(training, validation)`` volumes from :func:`prepare_data` of an equal data section;
    by default they are prepared here.
    """
    from .config import config_from_dict

    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config)
    out = Path(cfg.output)
    state_file = out / "last.state.safetensors"
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise TomosegError(f"{out}: run folder exists; pass --resume to continue it, or choose another output")
        if not state_file.exists():
            raise TomosegError(f"{out}: holds no run to resume (no last.state.safetensors)")
    elif resume and not out.exists():
        resume = False
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    train_vols, val_vols = prepare_data(cfg) if data is None else data
    per_patch = cfg.data.normalization == "patch"
    sampler = make_sampler(train_vols, cfg.sampling, cfg.augment, cfg.data.ignore_value, per_patch)
    validation = _validation_set(cfg, val_vols, train_vols, (per_patch,))

    if cfg.init is not None:
        model = load_model(None if cfg.init == "default" else cfg.init)
        arch = model.config.to_dict()
        if (arch["levels"], arch["base_features"]) != (cfg.model.levels, cfg.model.base_features):
            raise TomosegError(f"init model has levels {arch['levels']}, base_features {arch['base_features']}; "
                               f"set model: to match it")
    else:
        model = build_model({"levels": cfg.model.levels, "base_features": cfg.model.base_features})
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate,
                                 weight_decay=cfg.optim.weight_decay)
    use_amp = device.type == "cuda" and cfg.precision != "f32"
    amp_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp)

    total_steps = cfg.epochs * cfg.sampling.steps_per_epoch
    scheduler = None
    if cfg.optim.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(s, total_steps) / total_steps)))
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and cfg.precision == "fp16")

    start_epoch, step, best = 0, 0, float("inf")
    rows = {c: [] for c in METRIC_COLUMNS}
    if resume:
        model.load_state_dict(load_model(out / "last.safetensors").state_dict())
        meta = _load_state(state_file, optimizer)
        start_epoch, step, best = meta["epoch"], meta["step"], meta["best_val_loss"]
        rng.bit_generator.state = meta["numpy_rng"]
        if scheduler is not None:
            scheduler.last_epoch = step
            for group, lr in zip(optimizer.param_groups, scheduler.get_lr()):
                group["lr"] = lr
        if (out / "metrics.csv").exists():
            saved = read_csv(out / "metrics.csv")
            rows = {c: list(saved.get(c, [])) for c in METRIC_COLUMNS}
    else:
        out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))

    voxel = cfg.voxel_size_nm or ([29.33] * 3 if cfg.data.phantoms is not None else None)
    model_meta = {"normalization": {"method": "zscore", "scope": "whole-volume" if not per_patch else "patch"},
                  "voxel_size_nm": voxel, "threshold": 127}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs * cfg.sampling.steps_per_epoch, initial=step, unit="step",
                   dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        losses = []
        for _ in range(cfg.sampling.steps_per_epoch):
            x, y = sampler.batch(rng)
            xb = torch.from_numpy(x).to(device)
            yb = torch.from_numpy(y).to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = model(xb)
            loss = masked_loss(logits.float(), yb, kind=cfg.optim.loss, ignore_value=cfg.data.ignore_value)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.4f}")
        val_loss, cm = _evaluate(model, validation, cfg, device, autocast)
        row = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
               "accuracy": cm.accuracy, "tp": cm.tp, "tn": cm.tn, "fp": cm.fp, "fn": cm.fn, "recall": cm.recall,
               "precision": cm.precision, "f1": cm.f1, "seconds": time.time() - t0}
        for c in METRIC_COLUMNS:
            rows[c].append(row[c])
        training_meta = {"config": cfg.to_dict(), "epoch": epoch + 1, "step": step,
                         "validation": {k: row[k] for k in ("val_loss", "recall", "precision", "f1")}}
        model.eval()
        save_model(model, out / "last.safetensors", {**model_meta, "training": training_meta}, overwrite=True)
        if val_loss < best:
            best = val_loss
            save_model(model, out / "best.safetensors", {**model_meta, "training": training_meta}, overwrite=True)
        model.train()
        _save_state(state_file, optimizer, {"epoch": epoch + 1, "step": step, "best_val_loss": best,
                                            "numpy_rng": rng.bit_generator.state})
        write_csv({c: np.asarray(rows[c]) for c in METRIC_COLUMNS}, out / "metrics.csv", overwrite=True)
        _learning_curve({c: np.asarray(rows[c], dtype=float) for c in METRIC_COLUMNS}, out / "learning_curve.png")
    if bar is not None:
        bar.close()
    return out
