"""Losses on logits that ignore unannotated voxels: BCE (the paper's), Dice + BCE, focal."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def masked_loss(logits: torch.Tensor, labels: torch.Tensor, *, kind: str = "bce", ignore_value: int = 255,
                focal_gamma: float = 2.0) -> torch.Tensor:
    """Mean loss over annotated voxels; voxels equal to ``ignore_value`` get zero gradient."""
    weight = (labels != ignore_value).to(logits.dtype)
    target = (labels == 1).to(logits.dtype)
    n = weight.sum().clamp_min(1.0)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if kind == "bce":
        return (bce * weight).sum() / n
    if kind == "focal":
        p = torch.sigmoid(logits)
        pt = torch.where(target > 0, p, 1 - p)
        return ((1 - pt) ** focal_gamma * bce * weight).sum() / n
    if kind == "dice_bce":
        p = torch.sigmoid(logits) * weight
        t = target * weight
        dice = 1 - (2 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)
        return (bce * weight).sum() / n + dice
    raise ValueError(f"unknown loss {kind!r}")
