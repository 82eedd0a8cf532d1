"""segment and a model trained with per-patch normalization (training review of 2026-11-27, T4)."""

import warnings

import numpy as np
import pytest

import tomoseg
from tomoseg.checkpoint import save_model
from tomoseg.errors import TomosegWarning
from tomoseg.inference import BackendConfig, SegmentOptions
from tomoseg.io import write_volume
from tomoseg.model import build_model


@pytest.mark.parametrize("scope", ["patch", "whole-volume"])
def test_segment_warns_that_a_per_patch_model_is_used_with_whole_volume_z_scores(tmp_path, scope):
    model = save_model(build_model({"levels": 2, "base_features": 2}), tmp_path / "m.safetensors",
                       {"normalization": {"method": "zscore", "scope": scope}})
    image = np.random.default_rng(0).integers(0, 255, (16, 32, 32)).astype(np.uint8)
    write_volume(str(tmp_path / "in.npy"), image)
    options = SegmentOptions(backend=BackendConfig(backend="torch", device="cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TomosegWarning)
        tomoseg.segment(tmp_path / "in.npy", tmp_path / f"out-{scope}.npy", model=model, options=options,
                        progress=False)
    said = [str(w.message) for w in caught if "per-patch" in str(w.message)]
    if scope == "patch":
        assert said == ["the model was trained on per-patch z-scored patches (data.normalization: patch), and "
                        "segment z-scores the whole volume, so its results differ from the model's validation "
                        "scores; train with data.normalization: volume for segment"]
    else:
        assert said == []
