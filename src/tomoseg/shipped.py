"""The models shipped inside the package, and what a ``--model`` value names (no PyTorch import here)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

SHIPPED_MODELS = {"default": "v2, trained on a GPU (docs/model-card.md)",
                  "v1": "the first default model, 75 CPU minutes (kept for comparison and continuity)"}


def default_model_path() -> Path:
    """Path of the default model shipped inside the package."""
    return Path(str(resources.files("tomoseg") / "weights" / "default.safetensors"))


def names_shipped_model(model) -> bool:
    """Whether a ``--model`` value names a shipped model (None, ``default``, ``v1``) rather than a file: a file of
    the same name in the working folder wins over the name."""
    return model is None or (str(model) in SHIPPED_MODELS and not Path(model).exists())


def model_path(model=None) -> Path:
    """The file a ``--model`` value names: None or ``default`` is the shipped default, another name of
    :data:`SHIPPED_MODELS` (``v1``) a model shipped beside it, anything else a path. A file of the same name
    in the working folder wins over a shipped name."""
    if not names_shipped_model(model):
        return Path(model)
    return default_model_path().with_name(f"{model or 'default'}.safetensors")


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def shipped_name(sha256: str) -> str | None:
    """The name of the shipped model whose file has this SHA-256 (``default``, ``v1``), else None."""
    for name in SHIPPED_MODELS:
        if _sha256(default_model_path().with_name(f"{name}.safetensors")) == sha256:
            return name
    return None
