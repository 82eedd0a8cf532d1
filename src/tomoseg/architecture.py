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


FORMAT = "tomoseg-model"  # a model file's metadata: "format" and "format_version"
FORMAT_VERSION = 1        # the newest this tomoseg reads (and the one it writes)

# limits on what a model file may ask to build (the paper's model: levels 4, base_features 8)
LIMITS = {"levels": (2, 8), "base_features": (1, 256), "in_channels": (1, 16), "out_channels": (1, 16)}


def check_metadata(meta: dict, path) -> None:
    """Refuse a model file's metadata that this tomoseg cannot use: another format, a newer format version, an
    architecture outside :data:`LIMITS` (torch-free: also what a cached OpenVINO model's file is checked by)."""
    if meta.get("format") != FORMAT:
        raise TomosegError(f"{path}: is not a tomoseg model file")
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TomosegError(f"{path}: format_version {version!r} is not a positive integer; the file is damaged or "
                           "not written by tomoseg.save_model")
    if version > FORMAT_VERSION:
        raise TomosegError(f"{path}: format_version {version} was written by a newer tomoseg (this one reads up to "
                           f"{FORMAT_VERSION}); upgrade tomoseg (pip install -U tomoseg)")
    if not isinstance(meta.get("architecture"), dict):
        raise TomosegError(f"{path}: its metadata lack the model 'architecture' (levels, base_features, ...); "
                           "save the model again with tomoseg.save_model")
    check_architecture(meta["architecture"], path)


def check_architecture(arch: dict, path) -> None:
    """Refuse architectures outside sane limits before anything is built (a huge one exhausts memory)."""
    allowed = set(ModelConfig.__dataclass_fields__)
    unknown = sorted(set(arch) - allowed)
    if unknown:
        raise TomosegError(f"{path}: unknown architecture key(s) {unknown}; allowed: {sorted(allowed)}")
    for key, (lo, hi) in LIMITS.items():
        value = arch.get(key, getattr(ModelConfig, key))
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise TomosegError(f"{path}: architecture {key} = {value!r} is outside {lo}..{hi}; the file is damaged "
                               "or not a tomoseg U-Net")
