"""The models shipped inside the package, and what a ``--model`` value names (no PyTorch import here)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

SHIPPED_MODELS = {"default": "v3, trained 7 minutes on one H100 (tomoseg info default; docs/model-card.md)",
                  "v2": "the second default model, 6 minutes on one H200 (kept for comparison and continuity)",
                  "v1": "the first default model, 75 CPU minutes (kept for comparison and continuity)"}


#: What the shipped models are for, and what not (``tomoseg info``; the model card's 'Intended use',
#: :func:`model_card_path`): the same for all three, which differ in their training recipe only.
INTENDED_USE = ("dark pores and precipitates, about 1-8 voxels in radius, in X-ray tomograms like its training "
                "data (synthetic TXM phantoms of a steel micropillar at 29.33 nm; no real scan was used); "
                "bright objects with segment --objects bright; larger objects are found in pieces, "
                "and counts on other materials need a look at the overlays (or fine-tuning: tomoseg train "
                "--example finetune-default)")


def model_card_path() -> Path | None:
    """The model card of the shipped models (docs/model-card.md, installed beside them as
    ``weights/model-card.md``), or None where this installation lacks it."""
    card = default_model_path().with_name("model-card.md")
    return card if card.is_file() else None


def default_model_path() -> Path:
    """Path of the default model shipped inside the package."""
    return Path(str(resources.files("tomoseg") / "weights" / "default.safetensors"))


def names_shipped_model(model) -> bool:
    """Whether a ``--model`` value names a shipped model (None, ``default``, ``v1``, ``v2``) rather than a file: a file of
    the same name in the working folder wins over the name; a folder of that name (a results folder ``v1``) does not,
    since no folder is a model (review MF5)."""
    return model is None or (str(model) in SHIPPED_MODELS and not Path(model).is_file())


def looks_like_a_name(model) -> bool:
    """Whether a ``--model`` value that names no file looks like a shipped model's name (``v3``, ``V2``,
    ``Default``) rather than a path: no folder, no suffix."""
    import re

    text = str(model)
    return re.fullmatch(r"(?i)v\d+|default", text) is not None and not Path(text).exists()


def shipped_names() -> str:
    """The shipped models' names for a message: ``default (v3), v2, v1``."""
    return ", ".join(f"{name} ({SHIPPED_MODELS[name].split(',')[0]})" if name == "default" else name
                     for name in SHIPPED_MODELS)


def model_path(model=None) -> Path:
    """The file a ``--model`` value names: None or ``default`` is the shipped default, another name of
    :data:`SHIPPED_MODELS` (``v1``, ``v2``) a model shipped beside it, anything else a path. A file of the same name
    in the working folder wins over a shipped name."""
    if not names_shipped_model(model):
        return Path(model)
    return default_model_path().with_name(f"{model or 'default'}.safetensors")


def file_sha256(path) -> str:
    """SHA-256 of a file, read in blocks (a model's identity in provenance and caches)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def _shipped_sha256(name: str) -> str | None:
    try:
        return file_sha256(default_model_path().with_name(f"{name}.safetensors"))
    except OSError:
        return None


def shipped_name(sha256: str) -> str | None:
    """The name of the shipped model whose file has this SHA-256 (``default``, ``v1``, ``v2``), else None."""
    return next((name for name in SHIPPED_MODELS if _shipped_sha256(name) == sha256), None)
