"""A model file that OpenVINO has converted before: enough to segment with it without importing PyTorch.

Importing PyTorch costs 1.5–2 s of every ``tomoseg segment`` on a quiet 2-core machine (more when it is busy).
The OpenVINO backend keeps each model it converts as IR in the cache folder, named by :func:`cache_key`
(the file's SHA-256, its architecture and the tomoseg version). When that IR exists, the model file was loaded,
checked against its architecture and converted by an earlier run, so :func:`open_model` can hand out a
:class:`ModelFile` (architecture, metadata, SHA-256 read from the safetensors header, no tensors) instead of
building the PyTorch module. Anything that needs the module calls :meth:`ModelFile.load`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from ..architecture import INFERENCE_GRAPH, ModelConfig, check_metadata
from ..errors import TomosegError
from ..shipped import file_sha256, model_path


def cache_key(sha256: str, architecture: dict) -> str:
    """Names the converted model of a model file in the cache."""
    from .._version import __version__

    text = f"file {sha256} {json.dumps(architecture, sort_keys=True)} tomoseg {__version__}"
    return "file-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def model_identity(model) -> str:
    """What names a model in a run's fingerprint, its provenance and the workers' backend cache: the SHA-256 of
    the file it was loaded from while its weights are those loaded (:func:`tomoseg.load_model` records their
    digest), else the digest of the weights it holds now (:func:`tomoseg.model.weights_digest`): a model made in memory,
    or one loaded and then changed (trained, edited), is never taken for its file or for another model.
    A :class:`ModelFile` (a file not loaded) is its file's SHA-256, and imports no PyTorch."""
    if not hasattr(model, "state_dict"):
        return model.sha256
    from ..model import weights_digest

    digest = weights_digest(model)
    if getattr(model, "sha256", None) and getattr(model, "weights_sha256", None) == digest:
        return model.sha256
    return digest


class ModelFile:
    """A model file's architecture, metadata and SHA-256, without its weights in memory."""

    def __init__(self, path: Path, metadata: dict, sha256: str):
        self.path = Path(path)
        self.metadata = metadata
        self.sha256 = sha256
        self.config = ModelConfig(**metadata["architecture"])
        self.cache_key = cache_key(sha256, metadata["architecture"])

    def load(self):
        """The PyTorch model (imports PyTorch)."""
        from ..checkpoint import load_model

        model = load_model(self.path)
        model.cache_key = self.cache_key
        return model


def _header_metadata(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                return None
            header = json.loads(fh.read(n))
        meta = json.loads(header.get("__metadata__", {}).get("tomoseg", "null"))
    except (OSError, ValueError, struct.error):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("architecture"), dict) else None


def ir_stem(cache_key: str) -> str:
    """The file name, less its suffix, of a model's converted OpenVINO copy: the weights' key and the form of the
    network converted (:data:`tomoseg.architecture.INFERENCE_GRAPH`)."""
    return f"unet-{cache_key}-{INFERENCE_GRAPH}"


def ir_record(xml: Path) -> Path:
    """Where the SHA-256 digests of a converted model's ``.xml`` and ``.bin`` are recorded when they are written
    (checked before the copy is used: :meth:`~.backends.OpenVINOBackend`)."""
    return xml.with_suffix(".sha256")


def open_model(path, ir_folder: Path | None):
    """A :class:`ModelFile` where ``ir_folder`` holds this file's converted model, else the loaded PyTorch model
    (checked against its architecture; errors as :func:`tomoseg.load_model`)."""
    file = model_path(path)
    if ir_folder is not None and file.is_file():
        meta = _header_metadata(file)
        if meta is not None and meta.get("format") == "tomoseg-model":
            check_metadata(meta, file)  # as load_model does: a clear error, never a TypeError of ModelConfig
            sha = file_sha256(file)
            handle = ModelFile(file, meta, sha)
            xml = ir_folder / f"{ir_stem(handle.cache_key)}.xml"
            if xml.exists() and xml.with_suffix(".bin").exists() and ir_record(xml).exists():
                return handle  # (the backend checks the copy against its record)
            return handle.load()
    from ..checkpoint import load_model

    return load_model(path)


def check_runnable(model) -> None:
    """Refuse a model that ``predict`` and ``segment`` would run wrongly: other than one input channel (the gray
    value) and one output channel (the object probability), or asking for a normalization other than the
    z-score they apply. ``model``: a module or a :class:`ModelFile`."""
    where = getattr(model, "path", None) or "the model given"
    config = model.config
    if (config.in_channels, config.out_channels) != (1, 1):
        raise TomosegError(f"{where}: the model has {config.in_channels} input and {config.out_channels} output "
                           "channels; predict and segment run models of 1 input channel (the gray value) and 1 "
                           "output channel (the object probability): give such a model (tomoseg train makes them)")
    meta = getattr(model, "metadata", None) or {}
    normalization = meta.get("normalization", {"method": "zscore"})
    method = normalization.get("method", "zscore") if isinstance(normalization, dict) else normalization
    if method != "zscore":
        raise TomosegError(f"{where}: the model expects its input normalized by {method!r}; predict and segment "
                           "apply 'zscore' (mean and s.d. of the volume) only, so its results would be wrong: "
                           "use a model trained with tomoseg train (zscore)")
