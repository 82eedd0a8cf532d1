"""Model files: safetensors weights with the metadata the model needs, never pickles.

The metadata (JSON in the safetensors header, key ``tomoseg``) carries the
architecture, the normalization the model expects, the voxel size it was
trained at, its decision threshold, training provenance and the package version.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._version import __version__
from .errors import TomosegError
from .model import UNet3D, build_model

FORMAT = "tomoseg-model"
FORMAT_VERSION = 1
DEFAULT_METADATA = {
    "normalization": {"method": "zscore", "scope": "whole-volume"},
    "voxel_size_nm": None,
    "threshold": 127,
    "training": {},
}


def default_model_path() -> Path:
    """Path of the default model shipped inside the package."""
    return Path(str(resources.files("tomoseg") / "weights" / "default.safetensors"))


def save_model(model: UNet3D, path, metadata: dict | None = None, *, overwrite: bool = False) -> Path:
    """Save weights and metadata to a ``.safetensors`` file.

    Parameters
    ----------
    model : UNet3D
    path : str or Path
    metadata : dict, optional
        Merged over the defaults: ``normalization``, ``voxel_size_nm``, ``threshold``, ``training``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise TomosegError(f"{path}: already exists; pass overwrite=True to replace it")
    meta = {**DEFAULT_METADATA, **(metadata or {})}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, architecture=model.config.to_dict(),
                tomoseg_version=__version__)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={"tomoseg": json.dumps(meta, sort_keys=True)})
    tmp.replace(path)
    return path


def read_metadata(path) -> dict:
    """The metadata of a model file, without loading its weights."""
    path = _check_file(Path(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("tomoseg")
    except (SafetensorError, OSError, ValueError) as exc:
        raise TomosegError(f"{path}: is not a readable safetensors model file ({exc})") from None
    if raw is None:
        raise TomosegError(f"{path}: is a safetensors file without tomoseg metadata; save models with "
                           "tomoseg.save_model")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise TomosegError(f"{path}: is not a tomoseg model file")
    return meta


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise TomosegError(f"{path}: model file not found")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise TomosegError(f"{path}: is a pickled PyTorch checkpoint; tomoseg never unpickles files, since "
                           "loading a pickle can run arbitrary code. Load it yourself if you trust it, then "
                           "save it with tomoseg.save_model (safetensors)")
    return path


def load_model(path=None, *, device: str | torch.device = "cpu") -> UNet3D:
    """Load a model file (the shipped default if ``path`` is None) in eval mode.

    The metadata is on ``model.metadata``; the file's SHA-256 on ``model.sha256``.

    Raises
    ------
    TomosegError
        For a pickle, a damaged file, or tensors that do not fit the architecture.
    """
    if path is None:
        path = default_model_path()
        if not path.exists():
            raise TomosegError("no default model is installed with this tomoseg; pass --model PATH")
    path = Path(path)
    meta = read_metadata(path)
    model = build_model(meta["architecture"])
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise TomosegError(f"{path}: weights cannot be read ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
             if k in tensors and tensors[k].shape != v.shape]
    if missing or extra or wrong:
        details = "; ".join(filter(None, [f"missing {missing[:3]}" if missing else "",
                                           f"unexpected {extra[:3]}" if extra else "", "; ".join(wrong[:3])]))
        raise TomosegError(f"{path}: weights do not fit the architecture {meta['architecture']}: {details}")
    model.load_state_dict(tensors)
    model.metadata = meta
    model.sha256 = file_sha256(path)
    return model.to(device).eval()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
