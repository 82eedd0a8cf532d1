"""One optimization step, and the settings that make it fast on its device.

The step owns the optimizer, mixed precision (bf16 autocast by default on CUDA and on CPUs with bf16
units), the gradient scaler (fp16 only), the learning-rate schedule and the loss schedule. Both follow the
run's *progress*, the larger of the share of steps done and the share of the time budget spent, so a run
that ends on time
still finishes its cosine decay and switches loss at the same point of its budget.
"""

from __future__ import annotations

import math

import torch

from ..errors import TomosegError
from .config import TrainConfig
from .losses import masked_loss


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TomosegError(f"device {name}: no CUDA GPU is visible to PyTorch; use device: cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (x86 AVX-512 BF16 or AMX, read from /proc/cpuinfo). There
    bf16 autocast makes a training step of the paper's network 1.7-1.9x faster than f32 (docs/training.md);
    elsewhere bf16 is emulated and slower, so ``auto`` keeps f32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision ``auto`` stands for: bf16 autocast on CUDA and on CPUs with bf16 hardware, else f32."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" or cpu_has_bf16() else "f32"
    if precision == "fp16" and device.type != "cuda":
        raise TomosegError("precision fp16 needs CUDA; on the CPU use f32 (or auto)")
    return precision


def resolve_channels_last(channels_last: bool | str, device: torch.device, precision: str = "f32") -> bool:
    """What ``performance.channels_last: auto`` stands for at the resolved ``precision``: the memory order that
    pays on the device (:func:`tomoseg.memory_order.channels_last_pays`: on the CPU, and on CUDA for bf16/fp16
    where cuDNN 9.8+ would otherwise be bypassed)."""
    if channels_last == "auto":
        from ..memory_order import channels_last_pays

        return channels_last_pays(device, precision)
    return bool(channels_last)


def configure_device(cfg: TrainConfig, device: torch.device) -> None:
    """Process-wide speed switches of the CUDA libraries (no effect on the CPU)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.performance.tf32
        torch.backends.cudnn.allow_tf32 = cfg.performance.tf32
        torch.backends.cudnn.benchmark = cfg.performance.cudnn_benchmark


class TrainStep:
    """``step(x, y, progress) -> loss`` (a 0-d tensor, not synchronized): forward, loss, backward, update."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.precision = resolve_precision(cfg.precision, device)
        self.model = model
        self.channels_last = resolve_channels_last(cfg.performance.channels_last, device, self.precision)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.forward = torch.compile(self.model) if cfg.performance.compile else self.model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate,
                                          weight_decay=cfg.optim.weight_decay)
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None)

    def learning_rate(self, progress: float) -> float:
        base = self.cfg.optim.learning_rate
        if self.cfg.optim.schedule == "cosine":
            return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))))
        return base

    def loss_kind(self, progress: float) -> str:
        o = self.cfg.optim
        return o.loss_after if o.loss_after and progress >= o.switch_at else o.loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(progress)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.forward(x)
        loss = masked_loss(logits.float(), y, kind=self.loss_kind(progress), ignore_value=self.cfg.data.ignore_value)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()
