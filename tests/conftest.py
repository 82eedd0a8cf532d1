import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _caches_in_tmp(tmp_path_factory, monkeypatch):
    """Training phantoms and compiled models are cached: keep the tests' caches out of the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # compiled models
