"""A fixed set of validation patches (the same every epoch) and the model's scores on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TomosegError
from ..metrics import ConfusionMatrix
from .config import TrainConfig
from .losses import masked_loss
from .sampling import PatchSource


def validation_source(cfg: TrainConfig, val_volumes=()) -> str:
    """Where the validation scores (and the choice of ``best.safetensors``) come from: held-out data, or, where
    the config gives none, the training volumes themselves (then training-set numbers: :func:`train` warns).
    ``val_volumes``: those :func:`~.loop.prepare_data` gave (the slices held out by ``data.hold_out``)."""
    d, parts = cfg.data, []
    if d.validation_volumes:
        parts.append("validation volumes")
    ph = d.phantoms
    if ph is not None and (ph.validation_count or (ph.physics is not None and ph.physics.validation_count)):
        parts.append("validation phantoms")
    if d.volumes and not d.validation_volumes and cfg.sampling.mode == "paper":
        parts.append("validation slices of the training volumes")
    if any(getattr(v, "part", "") == "held-out" for v in val_volumes):
        parts.append(f"held-out slices of the training volumes (data.hold_out {d.hold_out:g})")
    return " and ".join(parts) or "training volumes"


def validation_patches(cfg: TrainConfig, val_volumes, train_volumes, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors on ``device``: patches of the validation volumes, cut once with a seed of their own and
    never augmented. Only where there are no validation volumes at all are the training volumes used (see
    :func:`validation_source`).

    Paper mode: the sub-volumes of a grid over the validation volumes (the paper's validation slices, see
    :func:`~.loop.prepare_data`), ``sampling.validation_patches`` of them drawn with the validation seed;
    where the validation slices are thinner than a patch, the patches are as thick as the slices allow (a
    multiple of the network's divisor), never reaching into training or test slices. The same for slices held out
    by ``data.hold_out``."""
    n = cfg.sampling.validation_patches
    volumes = val_volumes or train_volumes
    if grid_validation(cfg, volumes):
        return _grid_patches(cfg, volumes, device)  # held-out slices may be thinner than a patch, as paper mode's
    from dataclasses import replace

    sampling = replace(cfg.sampling, mode="random")
    source = PatchSource(volumes, sampling, cfg.augment, cfg.data.ignore_value,
                         cfg.data.normalization == "patch", device, seed=cfg.seed + 10_007)
    return source.batch(np.random.default_rng(cfg.seed + 10_007), train=False, size=n)


# held-out slices (sampling.held_out_cells: all) validate on every grid cell holding annotated voxels, up to this
# many (drawn with the validation seed beyond): 256 cells of 64^3 are 256 MiB of float32 patches; the held-out
# slices of a fully annotated large scan hold more (the share of their annotation scored is printed, R6)
MAX_HELD_OUT_CELLS = 256


def grid_validation(cfg: TrainConfig, volumes) -> bool:
    """Whether the validation patches of ``volumes`` are cells of a grid (paper mode, held-out slices)."""
    return cfg.sampling.mode == "paper" or any(v.part == "held-out" for v in volumes)


def coverage(patches, volumes, ignore_value: int) -> float:
    """The share of the annotated voxels of ``volumes`` (labels other than ``ignore_value``) that the (grid,
    non-overlapping) validation ``patches`` hold: what the validation scores rest on."""
    total = sum(int(np.count_nonzero(v.labels != ignore_value)) for v in volumes)
    return int((patches[1] != ignore_value).sum()) / total if total else 0.0


def _grid_patches(cfg: TrainConfig, volumes, device) -> tuple[torch.Tensor, torch.Tensor]:
    p, n = cfg.sampling.patch_size, max(cfg.sampling.validation_patches, 1)
    every = cfg.sampling.held_out_cells == "all" and any(v.part == "held-out" for v in volumes)
    divisor = 2 ** (cfg.model.levels - 1)
    size = [min(p, *(v.shape[a] for v in volumes)) // divisor * divisor for a in range(3)]
    if min(size) < divisor:
        thin = min(volumes, key=lambda v: min(v.shape))
        raise TomosegError(f"{thin.name}: the validation part {tuple(thin.shape)} is thinner than the {divisor} "
                           f"voxels the network needs (model.levels {cfg.model.levels}); give "
                           "data.validation_volumes, or use thicker volumes")
    sz, sy, sx = size
    cells = [(i, z, y, x) for i, v in enumerate(volumes)
             for z in range(0, v.shape[0] - sz + 1, sz)
             for y in range(0, v.shape[1] - sy + 1, sy)
             for x in range(0, v.shape[2] - sx + 1, sx)]
    if cfg.sampling.validation_cells == "annotated" or every:
        # only cells holding annotated voxels: with a few annotated slices, most cells of the held-out part hold
        # none, and validation patches drawn among all of them scored (and picked best.safetensors) on almost no
        # voxels (review R6). Every cell of a fully annotated volume holds some: the same draw as before
        ignore = cfg.data.ignore_value
        held = [k for k, (i, z, y, x) in enumerate(cells)
                if np.any(volumes[i].labels[z:z + sz, y:y + sy, x:x + sx] != ignore)]
        cells = [cells[k] for k in held] or cells
    if every:  # the held-out slices are a few: all their annotated cells, not validation_patches of them (R6)
        n = MAX_HELD_OUT_CELLS
    # a seeded draw over all the volumes and layers, not the first n cells in raster order (all in the first volume)
    pick = np.random.default_rng(cfg.seed + 10_007).permutation(len(cells))[:n]
    cut = [tuple(slice(s, s + e) for s, e in zip(cells[k][1:], size)) for k in pick]
    x = torch.as_tensor(np.stack([volumes[cells[k][0]].image[sl] for k, sl in zip(pick, cut)])[:, None],
                        dtype=torch.float32)
    y = torch.as_tensor(np.stack([volumes[cells[k][0]].labels[sl] for k, sl in zip(pick, cut)])[:, None])
    if cfg.data.normalization == "patch":
        sd = x.std(dim=(2, 3, 4), keepdim=True)
        x = (x - x.mean(dim=(2, 3, 4), keepdim=True)) / torch.where(sd > 0, sd, torch.ones_like(sd))
    return x.to(device), y.to(device)


def evaluate(step, patches, cfg: TrainConfig, kinds) -> tuple[dict, ConfusionMatrix]:
    """Mean loss of each of ``kinds`` (loss names) and the voxel confusion matrix (threshold 127 on the 0–255
    scale) of the validation patches, from one forward pass."""
    x_all, y_all = patches
    model = step.forward
    step.model.eval()
    kinds = tuple(dict.fromkeys(kinds))
    losses, counts = {k: [] for k in kinds}, torch.zeros(4, dtype=torch.int64, device=x_all.device)
    ignore = cfg.data.ignore_value
    with torch.no_grad():
        for k in range(0, len(x_all), cfg.sampling.batch_size):
            x, y = x_all[k:k + cfg.sampling.batch_size], y_all[k:k + cfg.sampling.batch_size]
            with step.autocast():
                logits = model(x).float()
            for kind in kinds:
                for i in range(len(x)):
                    losses[kind].append(masked_loss(logits[i:i + 1], y[i:i + 1], kind=kind, ignore_value=ignore))
            pred = torch.round(torch.sigmoid(logits) * 255) > 127
            known, truth = y != ignore, y == 1
            tp = (pred & truth & known).sum()
            fp = (pred & ~truth & known).sum()
            fn = (~pred & truth & known).sum()
            counts += torch.stack([tp, fp, fn, known.sum() - tp - fp - fn])
    step.model.train()
    tp, fp, fn, tn = (int(c) for c in counts.cpu())
    means = {k: float(torch.stack(v).mean()) if v else 0.0 for k, v in losses.items()}
    return means, ConfusionMatrix(tp, fp, fn, tn)


THRESHOLDS = (31, 63, 95, 127, 159, 191, 223)   # 0-255 scale; 127 is the paper's (and segment's default)


@dataclass(frozen=True)
class VolumeScore:
    """Whole-volume validation: the confusion matrix at the threshold ``segment`` uses (127) and the voxel F1
    at each of :data:`THRESHOLDS`, which says whether the model is calibrated (best near 127) or over- or
    under-confident."""

    cm: ConfusionMatrix
    f1_by_threshold: dict

    @property
    def best_threshold(self) -> int:
        return max(self.f1_by_threshold, key=lambda t: (self.f1_by_threshold[t], -abs(t - 127)))


def evaluate_volumes(model, volumes, device, ignore_value: int = 255, *, per_patch: int | None = None) -> VolumeScore:
    """Scores of whole validation volumes, segmented as ``segment`` segments them (tiled). Object-centred
    patches overstate recall on whole volumes, where objects are rare and small; the F1 at 127 is the score
    that picks the checkpoint when ``sampling.validation`` is ``volumes``.

    ``per_patch``: the volumes are not normalized (``data.normalization: patch``): each sub-volume of this edge
    is z-scored on its own, as the model saw its training patches (:func:`predict_per_subvolume`)."""
    from ..inference import BackendConfig, TilingConfig, predict
    from ..inference.normalization import Stats

    was_training = model.training
    objects, background = np.zeros(256, np.int64), np.zeros(256, np.int64)  # voxels per 0-255 value
    backend = BackendConfig(backend="torch", device=str(device))
    for v in volumes:
        if per_patch:
            prob = predict_per_subvolume(v.image, model, per_patch, backend=backend)
        else:  # the volumes are z-scored already: identity statistics keep them as they are
            prob = predict(v.image, model, tiling=TilingConfig(), backend=backend,
                           stats=Stats(mean=0.0, std=1.0, voxels=int(v.image.size), method="full"))
        p8 = np.rint(np.clip(prob, 0, 1) * 255).astype(np.uint8)
        known, truth = v.labels != ignore_value, v.labels == 1
        objects += np.bincount(p8[known & truth], minlength=256)
        background += np.bincount(p8[known & ~truth], minlength=256)
    model.train(was_training)
    counts = {}
    for t in THRESHOLDS:  # object where value > t
        tp, fn = int(objects[t + 1:].sum()), int(objects[:t + 1].sum())
        fp, tn = int(background[t + 1:].sum()), int(background[:t + 1].sum())
        counts[t] = ConfusionMatrix(tp, fp, fn, tn)
    return VolumeScore(cm=counts[127], f1_by_threshold={t: _f1(c) for t, c in counts.items()})


def predict_per_subvolume(image: np.ndarray, model, size: int, *, backend=None) -> np.ndarray:
    """The paper's inference (and what a model trained with ``data.normalization: patch`` expects): non-overlapping
    sub-volumes of edge ``size``, each z-scored with its own statistics."""
    from ..inference import Stats, predict

    out = np.empty(image.shape, np.float32)
    for z in range(0, image.shape[0], size):
        for y in range(0, image.shape[1], size):
            for x in range(0, image.shape[2], size):
                sl = (slice(z, z + size), slice(y, y + size), slice(x, x + size))
                block = np.asarray(image[sl], np.float32)
                sd = float(block.std())
                stats = Stats(float(block.mean()), sd if sd > 0 else 1.0, block.size, "sub-volume")
                out[sl] = predict(block, model, backend=backend, stats=stats)
    return out


def _f1(cm: ConfusionMatrix) -> float:
    f1 = cm.f1
    return f1 if f1 == f1 else 0.0  # NaN when nothing is found
