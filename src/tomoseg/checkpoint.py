"""Model files: safetensors weights with the metadata the model needs, never pickles.

The metadata (JSON in the safetensors header, key ``tomoseg``) carries the
architecture, the normalization the model expects, the voxel size it was
trained at, its decision threshold, training provenance and the package version.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ._version import __version__
from .errors import TomosegError
from .architecture import FORMAT, FORMAT_VERSION, LIMITS, check_architecture, check_metadata  # noqa: F401 (re-exported)
from .model import UNet3D, build_model, weights_digest
from .shipped import default_model_path, file_sha256, model_path, names_shipped_model  # noqa: F401 (re-exported)

DEFAULT_METADATA = {
    "normalization": {"method": "zscore", "scope": "whole-volume"},
    "voxel_size_nm": None,
    "threshold": 127,
    "training": {},
}


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
    from .io.result_folders import json_safe

    write_safetensors(tensors, tmp, metadata={"tomoseg": json.dumps(json_safe(meta), sort_keys=True,
                                                                   allow_nan=False)})
    with_umask_permissions(tmp)
    tmp.replace(path)
    return path


def write_safetensors(tensors: dict, path, *, metadata: dict) -> None:
    """safetensors' ``save_file``, whose write errors become ``OSError`` with their errno and the file's name
    (the disk full: ``ENOSPC``), as every other write's do, so that the CLI says them in one line ("the disk is
    full writing ...") rather than as a ``SafetensorError`` traceback (review C3); a partly written file is
    removed."""
    import errno
    import os
    import re

    import safetensors.torch  # looked up at each call: tests put a failing writer there

    try:
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        Path(path).unlink(missing_ok=True)
        found = re.search(r"os error (\d+)", str(exc))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code) if code in errno.errorcode else str(exc), str(path)) from exc


def with_umask_permissions(path) -> None:
    """Give a file written by safetensors (which creates it owner-only, 0600) the permissions the user's umask
    gives every other output, so that colleagues can read a model as they read the run's other files (R11)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


MAX_PARAMETERS = 200_000_000


def read_metadata(path) -> dict:
    """The metadata of a model file, without loading its weights."""
    path = _check_file(Path(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("tomoseg")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise TomosegError(f"{path}: is not a readable safetensors model file ({exc})") from None
    if raw is None:
        if path.name.endswith(".state.safetensors"):  # training/checkpoints.py's STATE: optimizer and step
            raise TomosegError(f"{path}: is the training state (optimizer, step) that train --resume reads, not a "
                               f"model; use best.safetensors or last.safetensors from {path.parent}")
        raise TomosegError(f"{path}: is a safetensors file without tomoseg metadata; save models with "
                           "tomoseg.save_model")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise TomosegError(f"{path}: its tomoseg metadata are not valid JSON; the file is damaged or was not "
                           "written by tomoseg.save_model") from None
    if not isinstance(meta, dict):
        raise TomosegError(f"{path}: its tomoseg metadata are a {type(meta).__name__}, not a JSON object; the file "
                           "was not written by tomoseg.save_model")
    check_metadata(meta, path)
    return meta


def _expected_shapes(arch: dict) -> dict:
    """Tensor shapes of the architecture, from a model built on the meta device (no memory used)."""
    with torch.device("meta"):
        model = build_model(arch)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _expected_floats(arch: dict) -> set:
    """The tensors of the architecture that hold floating-point values (all but BatchNorm's step counters)."""
    with torch.device("meta"):
        model = build_model(arch)
    return {k for k, v in model.state_dict().items() if v.is_floating_point()}


FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names


def _file_shapes(path: Path, dtypes: dict | None = None) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if dtypes is not None:
                dtypes.update({k: f.get_slice(k).get_dtype() for k in f.keys()})
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise TomosegError(f"{path}: weights cannot be read ({exc})") from None


def _check_shapes(path: Path, arch: dict) -> None:
    expected = _expected_shapes(arch)
    n_params = sum(int(np.prod(s)) for s in expected.values())
    if n_params > MAX_PARAMETERS:
        raise TomosegError(f"{path}: architecture {arch} has {n_params:,} parameters, more than tomoseg builds "
                           f"({MAX_PARAMETERS:,}); the file is damaged or not a tomoseg U-Net")
    dtypes: dict = {}
    tensors = _file_shapes(path, dtypes)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = [f"{k}: file {tensors[k]}, model {v}" for k, v in expected.items() if k in tensors and tensors[k] != v]
    if missing or extra or wrong:
        details = "; ".join(filter(None, [f"missing {missing[:3]}" if missing else "",
                                           f"unexpected {extra[:3]}" if extra else "", "; ".join(wrong[:3])]))
        raise TomosegError(f"{path}: weights do not fit the architecture {arch}: {details}")
    # integer weights are loaded into the float network without a word and give a meaningless map
    wrong = sorted(k for k in _expected_floats(arch) if dtypes.get(k) not in FLOAT_DTYPES)
    if wrong:
        raise TomosegError(f"{path}: weight {wrong[0]} is {dtypes[wrong[0]]}, not floating point "
                           f"({len(wrong)} such tensors); the file is damaged or not a trained tomoseg U-Net: "
                           "save the model again with tomoseg.save_model")


def _check_weights(path: Path, tensors: dict) -> None:
    """NaN/infinite weights or negative BatchNorm variances give a blank map without any error: refuse them."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise TomosegError(f"{path}: weight {name} holds NaN or infinite values (a diverged training?); use an "
                               "earlier checkpoint (best.safetensors) or train again with a lower learning rate")
        if name.endswith("running_var") and bool((t < 0).any()):
            raise TomosegError(f"{path}: BatchNorm variance {name} is negative; the file is damaged")


def _file_kind(path: Path) -> str:
    """'safetensors', 'pickle' (a torch.save zip or a raw pickle), or 'other', by the file's structure."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "pickle"
    return "other"


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise TomosegError(f"{path}: model file not found")
    if path.is_dir():
        raise TomosegError(f"{path}: is a folder, not a model file (.safetensors)")
    kind = _file_kind(path)
    if kind == "pickle":
        raise TomosegError(f"{path}: is a pickled PyTorch checkpoint; tomoseg never unpickles files, since "
                           "loading a pickle can run arbitrary code. Load it yourself if you trust it, then "
                           "save it with tomoseg.save_model (safetensors)")
    if kind != "safetensors":
        raise TomosegError(f"{path}: is not a safetensors model file (empty, truncated or another format); "
                           "give a .safetensors file written by tomoseg")
    return path


def load_model(path=None, *, device: str | torch.device = "cpu") -> UNet3D:
    """Load a model file (the shipped default if ``path`` is None; ``"v2"`` and ``"v1"`` name the earlier defaults) in eval mode.

    Parameters
    ----------
    path : str or Path, optional
        A ``.safetensors`` model file (``tomoseg train`` writes them), or a shipped model's name.
    device : str or torch.device
        Where the weights go (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Returns
    -------
    UNet3D
        The network in eval mode (a ``torch.nn.Module``).

    The metadata is on ``model.metadata``, the file on ``model.path``; its SHA-256 on ``model.sha256``, and the
    digest of the weights as loaded on ``model.weights_sha256``
    (:func:`tomoseg.inference.model_file.model_identity` tells whether they still are the file's).

    Raises
    ------
    TomosegError
        For a pickle, a damaged file, an architecture out of limits, tensors that do not fit the
        architecture, or NaN weights.
    """
    named = names_shipped_model(path)
    path = model_path(path)
    if named and not path.exists():
        raise TomosegError(f"no shipped model {path.stem!r} is installed with this tomoseg; pass --model PATH")
    meta = read_metadata(path)
    _check_shapes(path, meta["architecture"])
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise TomosegError(f"{path}: weights cannot be read ({exc})") from None
    _check_weights(path, tensors)
    model = build_model(meta["architecture"])
    model.load_state_dict(tensors)
    model.metadata = meta
    model.path = path
    model.sha256 = file_sha256(path)
    model.weights_sha256 = weights_digest(model)
    return model.to(device).eval()

