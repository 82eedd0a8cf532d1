"""Which memory order runs the network's 3D convolutions faster on a device: one rule for inference and training.

PyTorch holds a 5D tensor either contiguous (N, C, D, H, W) or channels-last-3D (N, D, H, W, C). The math is the
same; the kernels differ. :func:`channels_last_pays` is the choice ``segment`` and ``train`` make when not told.
"""

from __future__ import annotations

HALF_PRECISIONS = ("bf16", "fp16")
CUDNN_HALF_3D_BROKEN = 90800  # cuDNN 9.8: PyTorch stops giving it half-precision 3D convolutions in NCDHW order


def channels_last_pays(device, precision: str = "f32") -> bool:
    """Whether ``device`` at ``precision`` ("f32", "bf16", "fp16") should run the network in channels-last memory.

    - **CPU with oneDNN** (PyTorch's x86 builds, and others built with it): yes. oneDNN's 3D convolutions are
      faster in that order: on 2 x86 cores the network alone ran 1.8x as fast (2.2x with the BatchNorms folded)
      and a training step 1.7x (f32) and 1.35x (bf16) as fast (docs/segment.md, docs/training.md). Without
      oneDNN, PyTorch's own 3D convolution would only convert the order back and forth: no.
    - **CUDA, bf16 or fp16, cuDNN 9.8 or later**: yes. A cuDNN bug made PyTorch route half-precision 3D
      convolutions away from cuDNN to a much slower fallback (4x slower training reported by nnU-Net's author,
      pytorch/pytorch#166122): PyTorch 2.9.0 in either memory order, later releases only in contiguous memory
      and only with cuDNN 9.8 to 9.14. There channels-last keeps them on cuDNN; elsewhere it is the order
      cuDNN's tensor-core kernels use anyway. Measured on an H100 with cuDNN 9.19 (outside that range): a bf16
      training step of 8 x 96^3 took 43.5 ms in channels-last against 126.4 ms contiguous (2.9x); bf16
      inference ran as fast either way (252 and 250 Mvox/s at tile 256).
    - **CUDA, f32**: no. On the same H100, f32 inference ran as fast either way (332 and 321 Mvox/s at tile
      256, 428 both at tile 384; benchmarks/results/segment_gpu_tiles.md); f32 training in channels-last is
      not measured.
    """
    import torch

    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cpu":
        return torch.backends.mkldnn.is_available()
    if kind == "cuda" and precision in HALF_PRECISIONS:
        version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return version is not None and version >= CUDNN_HALF_3D_BROKEN
    return False
