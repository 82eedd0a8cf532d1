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
    check_expectations(meta, path)


# the values segment knows (a method other than zscore loads, to be studied, and predict/segment refuse it)
NORMALIZATION = {"scope": ("whole-volume", "patch"), "objects": ("dark", "bright")}


def check_expectations(meta: dict, path) -> None:
    """Refuse what a model file says about the data it expects where ``segment`` could not act on it: a threshold
    that is not an integer 0-254, a voxel size that is not three positive numbers (or null), a normalization that
    is not an object of known values (review MF1: these were shown as garbage by ``info`` or silently ignored).
    A key left out keeps its default (:data:`tomoseg.checkpoint.DEFAULT_METADATA`)."""
    import math

    fix = "the file is damaged or its metadata were edited; save the model again with tomoseg.save_model"
    threshold = meta.get("threshold", 127)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= 254:
        raise TomosegError(f"{path}: its threshold {threshold!r} is not an integer from 0 to 254 (probability x "
                           f"255); {fix}")
    voxel = meta.get("voxel_size_nm")
    if voxel is not None and not (isinstance(voxel, (list, tuple)) and len(voxel) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in voxel)):
        raise TomosegError(f"{path}: its voxel_size_nm {voxel!r} is not three positive numbers (z, y, x in nm) or "
                           f"null; {fix}")
    if not isinstance(meta.get("training", {}), dict):  # segment reads its recipe and training data
        raise TomosegError(f"{path}: its training record {meta['training']!r} is not an object; {fix}")
    norm = meta.get("normalization", {})
    if not isinstance(norm, dict):
        raise TomosegError(f"{path}: its normalization {norm!r} is not an object (method, scope, objects); {fix}")
    if not isinstance(norm.get("method", "zscore"), str):
        raise TomosegError(f"{path}: its normalization method {norm['method']!r} is not a name; {fix}")
    for key, allowed in NORMALIZATION.items():
        if key in norm and norm[key] not in allowed:
            raise TomosegError(f"{path}: its normalization {key} {norm[key]!r} is none of {list(allowed)}; "
                               + fix)


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
