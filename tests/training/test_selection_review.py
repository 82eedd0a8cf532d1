"""The choice of best.safetensors and the run's schedules (training review of 2026-11-27, T3, T10)."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.table import read_csv
from tomoseg.training import train


def tiny(tmp_path, name="run", **changes):
    cfg = {"output": str(tmp_path / name), "epochs": 4, "seed": 3, "model": {"levels": 2, "base_features": 2},
           "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5,
                                 "cache_dir": None}},
           "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 2},
           "optim": {"learning_rate": 0.01, "loss": "bce", "loss_after": "dice_bce", "switch_at": 0.5}}
    cfg.update(changes)
    return cfg


def test_best_model_is_chosen_on_one_loss_across_a_loss_switch(tmp_path):
    run = train(tiny(tmp_path), progress=False)
    m = read_csv(run / "metrics.csv")
    assert list(m["loss_kind"]) == ["bce", "dice_bce", "dice_bce", "dice_bce"]
    # val_loss is the validation BCE every epoch (the same quantity before and after the switch) ...
    assert (np.asarray(m["val_loss"], float) < 0.8).all()
    # ... and the loss being trained is logged beside it: Dice + BCE after the switch, about 1 higher
    trained = np.asarray(m["val_loss_trained"], float)
    assert trained[0] == m["val_loss"][0] and (trained[1:] > np.asarray(m["val_loss"][1:], float) + 0.5).all()
    best = tomoseg.load_model(run / "best.safetensors").metadata["training"]["epoch"]
    assert best == int(np.argmin(m["val_loss"])) + 1


def test_a_resume_with_another_budget_says_that_the_schedules_follow_it(tmp_path, capsys):
    cfg = tiny(tmp_path, epochs=1, optim={"learning_rate": 0.01, "schedule": "cosine", "loss_after": "dice_bce",
                                          "switch_at": 0.5})
    train(cfg, progress=False)
    capsys.readouterr()
    train({**cfg, "epochs": 4}, resume=True, progress=False)
    err = capsys.readouterr().err
    assert ("tomoseg: note: the budget changed (epochs 1 -> 4): the learning-rate and loss schedules follow the new "
            "budget from step 1 on: learning rate 0.0005 -> 0.00861, loss dice_bce -> bce\n") in err
    # the same budget again: the run has finished it, and says so before reading any data (review R10)
    with pytest.raises(TomosegError, match=r"this run already finished 4 of 4 epochs; its model is .*best.safetensors. "
                                           r"To train longer, resume with more epochs \(--epochs 6\)"):
        train({**cfg, "epochs": 4}, resume=True, progress=False)
    assert "budget changed" not in capsys.readouterr().err


def test_the_recorded_v2_experiments_start_from_v2():
    """Training review T14: `init: default` no longer names v2."""
    from pathlib import Path

    from tomoseg.training import load_config

    files = sorted(Path("configs/experiments").glob("finetune-v2-*.yaml"))
    assert len(files) == 5 and all(load_config(f).init == "v2" for f in files)
