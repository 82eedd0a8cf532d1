"""The memory a training step takes, checked before the data are read; an allocation that fails in one, said.

A step holds the batch's activations and their gradients: on the CPU, with the paper's network (4 levels, base
8) in float32, 270-400 bytes per patch voxel on top of about 200 MiB (measured for 2-4 patches of 48³-96³ on 2
cores). ``sampling.patch_size: 192`` with ``batch_size: 8`` needs about 22 GiB: on a laptop the kernel would kill
the run at its first step, after the data were read, without a word. On a GPU, an allocation that fails raises
an error at once; it is said in one line with what to change.
"""

from __future__ import annotations

from ..errors import TomosegError
from ..inference.memory_check import is_out_of_memory

STEP_BYTES_PER_VOXEL = 400   # per patch voxel, base 8, float32 (the upper end of the measured figures)
STEP_FIXED_BYTES = 200 << 20


def step_bytes(batch: int, patch: int, base_features: int = 8) -> int:
    """About the most memory one training step on the CPU takes."""
    return int(STEP_FIXED_BYTES + STEP_BYTES_PER_VOXEL * batch * patch**3 * max(1, base_features) / 8)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _patches(n: int) -> str:
    return f"{n} patch{'es' if n != 1 else ''}"


def check_step_memory(cfg, device, available: int | None = None) -> None:
    """Refuse, before the data are read, a CPU run whose training step needs more memory than this process may
    take (``available``: :func:`tomoseg.host_memory.available_memory` by default), naming a patch size and a
    batch size that fit."""
    if device.type != "cpu":
        return
    if available is None:
        from ..host_memory import available_memory

        available = available_memory()
    sampling, base = cfg.sampling, cfg.model.base_features
    need = step_bytes(sampling.batch_size, sampling.patch_size, base)
    if available is None or need <= available:
        return
    step = max(8, 2 ** (cfg.model.levels - 1))  # patch sizes are multiples of 8 and of the network's divisor
    patch = next((p for p in range(sampling.patch_size - step, step - 1, -step)
                  if step_bytes(sampling.batch_size, p, base) <= available), None)
    batch = next((b for b in range(sampling.batch_size - 1, 0, -1)
                  if step_bytes(b, sampling.patch_size, base) <= available), None)
    fits = [f"sampling.patch_size: {patch}" if patch else None, f"sampling.batch_size: {batch}" if batch else None]
    fits = [f for f in fits if f]
    raise TomosegError(
        f"a training step of {_patches(sampling.batch_size)} of {sampling.patch_size}³ voxels needs about "
        f"{_gib(need)} of memory on the CPU and {_gib(available)} are available; "
        + (f"use {' or '.join(fits)} in the config, " if fits else "use smaller patches, ")
        + "or train on a GPU (device: cuda)")


def out_of_memory_in_training(exc: BaseException, cfg, device) -> TomosegError | None:
    """The one-line error for an allocation that failed in a training step (None where ``exc`` is not one)."""
    if not is_out_of_memory(exc):
        return None
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    sampling = cfg.sampling
    return TomosegError(
        f"out of memory in a training step on the {device.type} device ({_patches(sampling.batch_size)} of "
        f"{sampling.patch_size}³ voxels; {first[:160]}); use a smaller sampling.patch_size or sampling.batch_size "
        "in the config (a new output), or a device with more memory")
