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
from .model import ModelConfig, UNet3D, build_model, weights_digest
from .shipped import default_model_path, file_sha256, model_path, names_shipped_model, shipped_name  # noqa: F401 (re-exported)

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

    Raises
    ------
    TomosegError
        For metadata that :func:`load_model` would refuse (a threshold outside 0-254, a voxel size that is not
        three positive numbers, an unknown normalization scope or objects), before anything is written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise TomosegError(f"{path}: already exists; pass overwrite=True to replace it")
    meta = {**DEFAULT_METADATA, **(metadata or {})}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, architecture=model.config.to_dict(),
                tomoseg_version=__version__)
    from .io.result_folders import json_safe

    meta = json_safe(meta)
    check_metadata(meta, path)  # a file that load_model would refuse is not written (review MF1)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".partial")
    write_safetensors(tensors, tmp, metadata={"tomoseg": json.dumps(meta, sort_keys=True, allow_nan=False)})
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
        raise TomosegError(_bare_weights_message(path))
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


def _bare_weights_message(path: Path) -> str:
    """What to do with a safetensors file without tomoseg's metadata (review MF9): where its tensors are those of a
    tomoseg UNet3D (``save_file(model.state_dict(), ...)``), the architecture they fit and how to save them with
    the metadata."""
    try:
        shapes = _file_shapes(path)
        levels = sum(1 for key in shapes if key.startswith("down.") and key.endswith(".0.weight"))
        first, head = shapes["down.0.0.weight"], shapes["head.weight"]
        arch = {"levels": levels, "base_features": first[0], "in_channels": first[1], "out_channels": head[0]}
        check_architecture(arch, path)
        fits = _expected_shapes(arch) == shapes
    except (TomosegError, KeyError, IndexError, TypeError):
        fits = False
    if not fits:
        return (f"{path}: is a safetensors file without tomoseg metadata, and its tensors are not those of a "
                "tomoseg UNet3D; save models with tomoseg.save_model")
    out = path.with_name(path.stem + "-tomoseg.safetensors").name
    build = ", ".join(f"{k}={v}" for k, v in arch.items() if k in ("levels", "base_features")
                      or v != getattr(ModelConfig, k))
    return (f"{path}: holds the weights of a tomoseg UNet3D ({build}) without the metadata a model file carries "
            "(architecture, voxel size, normalization); save them with it once: python -c \"import tomoseg; from "
            f"safetensors.torch import load_file; m = tomoseg.UNet3D({build}); m.load_state_dict(load_file("
            f"{str(path)!r})); tomoseg.save_model(m, {out!r}, {{'voxel_size_nm': [Z, Y, X]}})\"")


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


PROBE_SIDE = 16       # the output check's window: this many voxels a side, or the divisor where it is larger,
PROBE_VOXELS = 2**22  # ... up to this many voxels x features (a larger network is not checked so)


def _check_output(path: Path, model: UNet3D) -> None:
    """Finite weights can still overflow float32 (huge weights of a diverged training): the network's output is then
    NaN, which the map's uint8 turns into 0, an empty map without a word (review MF13), on every backend. One
    small window of z-scored noise through the network shows it before any work."""
    d = max(model.config.divisor, PROBE_SIDE)  # (the divisor is a power of 2, and so is PROBE_SIDE)
    if d**3 * model.config.base_features > PROBE_VOXELS:
        return
    noise = torch.randn(1, model.config.in_channels, d, d, d, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        finite = bool(torch.isfinite(model(noise)).all())
    if not finite:
        raise TomosegError(f"{path}: the network's output on z-scored noise is not finite (NaN or infinite): its "
                           "weights overflow float32 (a diverged training?); use an earlier checkpoint "
                           "(best.safetensors) or train again with a lower learning rate")


def _file_kind(path: Path) -> str:
    """'safetensors', 'pickle' (a torch.save zip or a raw pickle), 'zip' (another zip archive), or 'other', by the
    file's structure."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "pickle" if _holds_pickle(path) else "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return "other"


def _holds_pickle(path: Path) -> bool:
    """Whether a zip archive is ``torch.save``'s: it holds ``data.pkl`` (its names are listed, nothing is read)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def pickle_message(path: Path) -> str:
    """What to do with a pickled PyTorch file (review MF6): the one safe conversion of a state dict."""
    out = path.with_suffix(".safetensors").name
    return (f"{path}: is a pickled PyTorch file; tomoseg never unpickles files, since loading a pickle can run "
            "arbitrary code. If it holds the state dict of tomoseg's UNet3D (torch.save(model.state_dict(), ...)), "
            "convert it once, with the levels and base_features it was built with: python -c \"import torch, "
            "tomoseg; m = tomoseg.UNet3D(levels=4, base_features=8); "
            f"m.load_state_dict(torch.load({str(path)!r}, weights_only=True)); "
            f"tomoseg.save_model(m, {out!r}, {{'voxel_size_nm': [Z, Y, X]}})\" "
            "(docs/training.md, 'Models from plain PyTorch')")


def _check_file(path: Path) -> Path:
    if not path.exists():
        from .shipped import looks_like_a_name, shipped_names

        raise TomosegError(f"{path}: model file not found" + (  # a shipped name mistyped (review MF15)
            f"; the shipped models are {shipped_names()}: give one of these names" if looks_like_a_name(path)
            else ""))
    if path.is_dir():
        models = [name for name in ("best.safetensors", "last.safetensors") if (path / name).is_file()]
        raise TomosegError(f"{path}: is a folder, not a model file (.safetensors)" + (
            f"; it holds the models of a training run: give {path / models[0]}" if models else ""))
    if not path.is_file():  # a pipe would block the read for ever, a device read without end
        raise TomosegError(f"{path}: is not a regular file (a pipe or a device?); give a .safetensors model file")
    kind = _file_kind(path)
    if kind == "pickle":
        raise TomosegError(pickle_message(path))
    if kind == "zip":
        raise TomosegError(f"{path}: is a zip archive, not a model file (nor a PyTorch checkpoint); give a "
                           ".safetensors file written by tomoseg")
    if kind != "safetensors" and path.suffix.lower() == ".onnx":
        from .io.onnx_marker import read_marker

        record = read_marker(path) or {}
        sha = record.get("model_sha256") if record.get("tool") == "tomoseg export-onnx" else None
        shipped = shipped_name(str(sha)) if sha else None
        raise TomosegError(f"{path}: is an ONNX file, for other runtimes; tomoseg runs .safetensors models" + (
            f": give --model {shipped}, the shipped model it was exported from" if shipped else
            f": give the model it was exported from ({record.get('model_file') or 'a .safetensors file'}, sha256 "
            f"{sha}; tomoseg info {path} says more)" if sha else
            " (tomoseg train and tomoseg.save_model write them)"))
    if kind != "safetensors":
        raise TomosegError(f"{path}: is not a safetensors model file (empty, truncated or another format); "
                           "give a .safetensors file written by tomoseg")
    return path


def _checked_device(device) -> torch.device:
    """``device`` as a ``torch.device`` that this machine has, else a TomosegError saying which it has (review
    MF16: an AssertionError of PyTorch's on a machine without CUDA, after the file was read and checked)."""
    try:
        checked = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TomosegError(f"device {device!r}: not a PyTorch device; give 'cpu', 'cuda' or 'cuda:N'") from None
    if checked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TomosegError(f"device {device!r}: no CUDA GPU is visible to PyTorch here; use device='cpu'")
        if checked.index is not None and checked.index >= count:
            raise TomosegError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return checked


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
        For a pickle, a damaged file, an architecture out of limits, metadata segment cannot act on (threshold,
        voxel size, normalization: :func:`tomoseg.architecture.check_expectations`), tensors that do not fit the
        architecture, or NaN weights.
    """
    device = _checked_device(device)
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
    _check_output(path, model.eval())
    model.metadata = meta
    model.path = path
    model.sha256 = file_sha256(path)
    model.weights_sha256 = weights_digest(model)
    return model.to(device).eval()

