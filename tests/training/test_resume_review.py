"""Resume from a consistent checkpoint (training review of 2026-11-27, T7, T11)."""

import pytest
import safetensors.torch as st
import torch
from safetensors.torch import load_file

from tomoseg.table import read_csv
from tomoseg.training import train


def tiny(tmp_path, name, **changes):
    cfg = {"output": str(tmp_path / name), "epochs": 3, "seed": 3, "model": {"levels": 2, "base_features": 2},
           "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5,
                                 "cache_dir": None}},
           "sampling": {"patch_size": 16, "batch_size": 2, "steps_per_epoch": 2, "validation_patches": 2},
           "optim": {"learning_rate": 0.01}}
    cfg.update(changes)
    return cfg


def _same_weights(a, b):
    ta, tb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    return all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_stop_between_the_files_of_a_save_resumes_from_a_consistent_epoch(tmp_path, monkeypatch):
    straight = train(tiny(tmp_path, "a"), progress=False)
    real, saves = st.save_file, []

    def save_file(tensors, path, metadata=None):
        if path.endswith("last.state.safetensors.partial"):
            saves.append(path)
            if len(saves) == 2:  # epoch 2: last.safetensors is written, its state not yet
                raise KeyboardInterrupt
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(st, "save_file", save_file)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, "b"), progress=False)
    monkeypatch.setattr(st, "save_file", real)
    resumed = train(tiny(tmp_path, "b"), resume=True, progress=False)
    assert _same_weights(straight, resumed)
    a, b = read_csv(straight / "metrics.csv"), read_csv(resumed / "metrics.csv")
    assert list(b["epoch"]) == [1, 2, 3] and list(b["train_loss"]) == list(a["train_loss"])


def test_paper_mode_resume_continues_the_shuffled_pass(tmp_path):
    sampling = {"mode": "paper", "patch_size": 16, "batch_size": 2, "steps_per_epoch": 2, "validation_patches": 2}
    straight = train(tiny(tmp_path, "a", epochs=2, sampling=sampling), progress=False)
    train(tiny(tmp_path, "b", epochs=1, sampling=sampling), progress=False)
    resumed = train(tiny(tmp_path, "b", epochs=2, sampling=sampling), resume=True, progress=False)
    assert _same_weights(straight, resumed)


def test_the_state_header_is_strict_json_and_a_resume_reads_its_nulls_back_as_nan(tmp_path):
    """The state file's JSON header held NaN (best_threshold of every epoch under sampling.validation: patches):
    only Python's json reads that. It holds null, and the resumed run's metrics equal the straight run's."""
    import json
    import math

    from safetensors import safe_open

    from tomoseg.training.checkpoints import STATE

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the state header"))

    straight = train(tiny(tmp_path, "a"), progress=False)
    first = train(tiny(tmp_path, "b", epochs=1), progress=False)
    with safe_open(str(first / STATE), framework="pt") as f:
        header = strict(f.metadata()["tomoseg_train_state"])
    assert header["rows"]["best_threshold"] == [None] and math.isfinite(header["best_val_loss"])
    resumed = train(tiny(tmp_path, "b"), resume=True, progress=False)
    assert _same_weights(straight, resumed)
    with safe_open(str(resumed / STATE), framework="pt") as f:
        assert strict(f.metadata()["tomoseg_train_state"])["rows"]["best_threshold"] == [None] * 3
    a, b = read_csv(straight / "metrics.csv"), read_csv(resumed / "metrics.csv")
    assert all(math.isnan(v) for v in b["best_threshold"]) and list(a["val_loss"]) == list(b["val_loss"])
