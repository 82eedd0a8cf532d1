import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.synthetic import make_phantom


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory):
    """A seeded model with non-trivial BatchNorm statistics (random weights)."""
    torch.manual_seed(0)
    model = tomoseg.UNet3D()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(1, 1, 32, 32, 32) * 2)
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    tomoseg.save_model(model.eval(), path)
    return path


@pytest.fixture(scope="session")
def small_phantom():
    return make_phantom((40, 100, 92), rng=11)
