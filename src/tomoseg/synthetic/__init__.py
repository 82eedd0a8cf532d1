"""Synthetic TXM micropillar phantoms with exact ground truth (no PyTorch needed)."""

from .config import PRESETS, PhantomConfig, preset
from .phantom import Phantom, make_phantom
from .version import GENERATOR_VERSION

__all__ = ["GENERATOR_VERSION", "make_phantom", "Phantom", "PhantomConfig", "PRESETS", "preset"]
