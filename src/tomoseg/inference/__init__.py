"""Segmentation engine: tiling, stitching, backends, and the ``segment`` entry point."""

from .backends import BackendConfig
from .engine import SegmentOptions, predict, predict_whole, segment
from .normalization import Stats, volume_stats
from .tiling import TilingConfig, tile_grid

__all__ = ["segment", "predict", "predict_whole", "SegmentOptions", "TilingConfig", "BackendConfig", "Stats",
           "volume_stats", "tile_grid"]
