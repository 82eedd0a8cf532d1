"""Synthetic TXM micropillar phantoms with exact ground truth (no PyTorch needed)."""

from .config import PRESETS, PhantomConfig, preset
from .phantom import Phantom, make_phantom

__all__ = ["make_phantom", "Phantom", "PhantomConfig", "PRESETS", "preset"]
