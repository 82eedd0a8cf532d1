"""tomoseg: find and measure precipitates and pores in 3D X-ray tomograms with a 3D U-Net.

Names that need PyTorch (the model, segmentation, training) are imported on first
use, so ``import tomoseg`` and the I/O and analysis functions start fast.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import TomosegError
from .io import Volume, create_volume, open_volume, read_volume, write_volume

_LAZY = {
    "UNet3D": "tomoseg.model",
    "count_parameters": "tomoseg.model",
    "save_model": "tomoseg.checkpoint",
    "load_model": "tomoseg.checkpoint",
    "make_phantom": "tomoseg.synthetic",
    "segment": "tomoseg.inference",
    "label_objects": "tomoseg.objects",
    "measure_objects": "tomoseg.objects",
    "confusion_matrix": "tomoseg.metrics",
    "train": "tomoseg.training",
}

__all__ = ["__version__", "TomosegError", "Volume", "open_volume", "read_volume", "write_volume",
           "create_volume", *_LAZY, "track"]


_SUBMODULES = ("inference", "objects", "training", "synthetic", "report", "metrics", "evaluation", "model",
               "checkpoint", "table", "track")  # tomoseg.track is a module that can be called: tomoseg.track(...)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tomoseg.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tomoseg' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
