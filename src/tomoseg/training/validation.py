"""A fixed set of validation patches (the same every epoch) and the model's scores on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import ConfusionMatrix
from .config import TrainConfig
from .losses import masked_loss
from .sampling import PatchSource, split_ranges


def validation_patches(cfg: TrainConfig, val_volumes, train_volumes, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors on ``device``: patches of the validation volumes (or the paper's validation slices),
    cut once with a seed of their own and never augmented."""
    p, n = cfg.sampling.patch_size, cfg.sampling.validation_patches
    if cfg.sampling.mode == "paper" and not cfg.data.validation_volumes and cfg.data.phantoms is None:
        images, labels = [], []
        for v in val_volumes or train_volumes:
            lo, hi = split_ranges(v.shape[0])["validation"]
            for z in range(lo, hi - p + 1, p):
                for y in range(0, v.shape[1] - p + 1, p):
                    for x in range(0, v.shape[2] - p + 1, p):
                        images.append(v.image[z:z + p, y:y + p, x:x + p])
                        labels.append(v.labels[z:z + p, y:y + p, x:x + p])
        if images:
            x = torch.as_tensor(np.stack(images[:max(n, 1)])[:, None], dtype=torch.float32)
            y = torch.as_tensor(np.stack(labels[:max(n, 1)])[:, None])
            if cfg.data.normalization == "patch":
                x = (x - x.mean(dim=(2, 3, 4), keepdim=True)) / x.std(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
            return x.to(device), y.to(device)
    from dataclasses import replace

    sampling = replace(cfg.sampling, mode="random")
    source = PatchSource(val_volumes or train_volumes, sampling, cfg.augment, cfg.data.ignore_value,
                         cfg.data.normalization == "patch", device, seed=cfg.seed + 10_007)
    return source.batch(np.random.default_rng(cfg.seed + 10_007), train=False, size=n)


def evaluate(step, patches, cfg: TrainConfig, loss_kind: str) -> tuple[float, ConfusionMatrix]:
    """Mean loss and voxel confusion matrix (threshold 127 on the 0–255 scale) of the validation patches."""
    x_all, y_all = patches
    model = step.forward
    step.model.eval()
    losses, counts = [], torch.zeros(4, dtype=torch.int64, device=x_all.device)
    ignore = cfg.data.ignore_value
    with torch.no_grad():
        for k in range(0, len(x_all), cfg.sampling.batch_size):
            x, y = x_all[k:k + cfg.sampling.batch_size], y_all[k:k + cfg.sampling.batch_size]
            with step.autocast():
                logits = model(x).float()
            for i in range(len(x)):
                losses.append(masked_loss(logits[i:i + 1], y[i:i + 1], kind=loss_kind, ignore_value=ignore))
            pred = torch.round(torch.sigmoid(logits) * 255) > 127
            known, truth = y != ignore, y == 1
            tp = (pred & truth & known).sum()
            fp = (pred & ~truth & known).sum()
            fn = (~pred & truth & known).sum()
            counts += torch.stack([tp, fp, fn, known.sum() - tp - fp - fn])
    step.model.train()
    tp, fp, fn, tn = (int(c) for c in counts.cpu())
    return float(torch.stack(losses).mean()) if losses else 0.0, ConfusionMatrix(tp, fp, fn, tn)


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


def evaluate_volumes(model, volumes, device, ignore_value: int = 255) -> VolumeScore:
    """Scores of whole validation volumes, segmented as ``segment`` segments them (tiled). Object-centred
    patches overstate recall on whole volumes, where objects are rare and small; the F1 at 127 is the score
    that picks the checkpoint when ``sampling.validation`` is ``volumes``."""
    from ..inference import BackendConfig, TilingConfig, predict
    from ..inference.normalization import Stats

    was_training = model.training
    objects, background = np.zeros(256, np.int64), np.zeros(256, np.int64)  # voxels per 0-255 value
    backend = BackendConfig(backend="torch", device=str(device))
    for v in volumes:
        # the volumes are z-scored already: identity statistics keep them as they are
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


def _f1(cm: ConfusionMatrix) -> float:
    f1 = cm.f1
    return f1 if f1 == f1 else 0.0  # NaN when nothing is found
