"""The U-Net's architecture as data: what a model file records and what is needed to rebuild the network.

Torch-free, so that code which only reads a model file (``inference.model_file``) need not import PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import TomosegError

#: The form of the network that inference backends convert (``tomoseg.inference_graph``); names their cached
#: copies, so changing what the rewrite produces must change this.
INFERENCE_GRAPH = "decoder-rewrite-1"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`UNet3D`: all that is needed to rebuild it."""

    levels: int = 4
    base_features: int = 8
    in_channels: int = 1
    out_channels: int = 1

    def __post_init__(self):
        for name in ("levels", "base_features", "in_channels", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TomosegError(f"model {name} must be a positive integer, not {value!r}")
        if self.levels < 2:
            raise TomosegError(f"model levels must be at least 2, not {self.levels}")

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this: 2^(levels-1)."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        return asdict(self)
