"""Backends that run the model on a batch of normalized tiles and return probabilities.

A backend is a callable ``f(x) -> p`` on float32 arrays of shape (n, 1, z, y, x),
p in [0, 1]. ``torch`` runs on CPU or CUDA (with fp16/bf16 autocast on CUDA);
``openvino`` runs on CPU and is several times faster there. Compiled OpenVINO
models are cached per input shape.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit

from ..errors import TomosegError

PRECISIONS = ("f32", "bf16", "fp16")


@dataclass(frozen=True)
class BackendConfig:
    backend: str = "auto"      # auto | torch | openvino
    device: str = "auto"       # auto | cpu | cuda | cuda:N
    precision: str = "f32"     # f32 | bf16 | fp16 (fp16 on CUDA only)

    def __post_init__(self):
        if self.backend not in ("auto", "torch", "openvino"):
            raise TomosegError(f"backend {self.backend!r} must be auto, torch or openvino")
        if self.precision not in PRECISIONS:
            raise TomosegError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise TomosegError(f"device {self.device!r} must be auto, cpu, cuda or cuda:N")


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve(config: BackendConfig) -> tuple[str, str]:
    """The (backend, device) that ``auto`` stands for here."""
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TomosegError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    backend = config.backend
    if backend == "auto":
        backend = "openvino" if device == "cpu" and openvino_available() else "torch"
    if backend == "openvino":
        if not device == "cpu":
            raise TomosegError("the openvino backend runs on the CPU; use --backend torch for CUDA")
        if not openvino_available():
            raise TomosegError("the openvino backend needs the openvino package: pip install openvino")
    if config.precision == "fp16" and not device.startswith("cuda"):
        raise TomosegError("fp16 precision needs CUDA; on the CPU use f32 or bf16")
    return backend, device


class TorchBackend:
    def __init__(self, model: torch.nn.Module, device: str, precision: str = "f32"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.name = f"torch-{self.device.type}-{precision}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.dtype is not None:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    logits = self.model(t)
            else:
                logits = self.model(t)
            return torch.sigmoid(logits.float()).cpu().numpy()


class OpenVINOBackend:
    def __init__(self, model: torch.nn.Module, precision: str = "f32", threads: int | None = None):
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        self.model = model.cpu().eval()
        self.properties = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = {}
        self.name = f"openvino-cpu-{precision}"

    def _compile(self, shape):
        if shape not in self._compiled:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracing warnings about the input-size check
                ov_model = self._ov.convert_model(self.model, example_input=torch.zeros(shape),
                                                  input=[shape])
            self._compiled[shape] = self.core.compile_model(ov_model, "CPU", self.properties)
        return self._compiled[shape]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        logits = self._compile(tuple(x.shape))(x)[0]
        return expit(logits).astype(np.float32, copy=False)


def make_backend(model: torch.nn.Module, config: BackendConfig = BackendConfig()):
    backend, device = resolve(config)
    if backend == "openvino":
        threads = int(os.environ["TOMOSEG_THREADS"]) if os.environ.get("TOMOSEG_THREADS") else None
        return OpenVINOBackend(model, config.precision, threads)
    if device.startswith("cuda"):
        from .cuda_pipeline import CudaBackend

        return CudaBackend(model, device, config.precision)
    return TorchBackend(model, device, config.precision)
