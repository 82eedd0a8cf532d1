"""The run folder and what a fine-tune records (training review R3, R4, R7, R9, R10, R11, R12)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.table import read_csv
from tomoseg.training import config_from_dict, train
from tomoseg.training.checkpoints import changed_keys
from tomoseg.training.step import TrainStep


def tiny(tmp_path, name, **changes):
    cfg = {"output": str(tmp_path / name), "epochs": 2, "seed": 3, "model": {"levels": 2, "base_features": 2},
           "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5,
                                 "cache_dir": str(tmp_path / "cache")}},
           "sampling": {"patch_size": 16, "batch_size": 2, "steps_per_epoch": 2, "validation_patches": 2},
           "optim": {"learning_rate": 0.01}}
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="module")
def init_model(tmp_path_factory):
    """A tiny trained model to fine-tune from (a file of its own)."""
    tmp = tmp_path_factory.mktemp("init")
    run = train(tiny(tmp, "init", epochs=1), progress=False)
    shutil.copy(run / "best.safetensors", tmp / "mine.safetensors")
    return tmp / "mine.safetensors"


def _weights(path):
    return load_file(str(path))


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_a_fine_tune_scores_its_init_model_first_and_records_it(tmp_path, init_model, capsys):
    """R3: epoch 0 is the init model on the validation patches; R9: the init's identity is recorded and info
    shows it with the validation scores, and the metadata are JSON without NaN; R12: one line per epoch."""
    run = train(tiny(tmp_path, "tuned", init=str(init_model), optim={"learning_rate": 0.001}), progress=True)
    m = read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [0, 1, 2] and list(m["step"]) == [0, 2, 4] and np.isnan(m["train_loss"][0])
    init = tomoseg.load_model(init_model)
    meta = tomoseg.load_model(run / "last.safetensors").metadata
    assert meta["init"] == {"name": str(init_model), "path": str(init_model), "sha256": init.sha256,
                            "shipped": None, "tomoseg_version": tomoseg.__version__}
    err = capsys.readouterr().err
    assert f"epoch 0/2 (the init model, before training): val {m['val_loss'][0]:.4g} (best" in err
    assert f"epoch 2/2: train {m['train_loss'][2]:.4g}, val {m['val_loss'][2]:.4g} (best " in err
    log = (run / "train.log").read_text()
    assert "training data: 2 volumes" not in log and "training data: 1 volumes and 1 for validation" in log
    assert [line.split("  ", 1)[1].split(":")[0] for line in log.splitlines() if " epoch " in line] == [
        "epoch 0/2 (the init model, before training)", "epoch 1/2", "epoch 2/2"]
    # info: where it came from and how it scored; --json is strict JSON (best_threshold was NaN)
    assert main(["info", str(run / "best.safetensors")]) == 0
    out = capsys.readouterr().out
    best = int(np.argmin(m["val_loss"]))
    assert f"fine-tuned    from {init_model} ({init_model}, sha256 {init.sha256[:12]}…, tomoseg " in out
    assert (f"validation    epoch {best}" + (" (the init model: no epoch beat it)" if best == 0 else "")
            + f": loss {m['val_loss'][best]:.4g}, voxel recall") in out and "on validation phantoms" in out
    assert main(["info", str(run / "best.safetensors"), "--json"]) == 0

    def no_nan(token):
        raise AssertionError(f"{token} in the JSON")

    info = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    assert info["training"]["validation"]["best_threshold"] is None and info["init"]["sha256"] == init.sha256


def test_no_epoch_beating_the_init_model_keeps_it_as_best_and_warns(tmp_path, init_model):
    """R3: a learning rate far too high spoils the model; best.safetensors stays the init model's weights."""
    with pytest.warns(TomosegWarning, match=r"no epoch improved on the init model \(.*mine.safetensors\): validation "
                                            r"loss .* before training, .* at best after; best.safetensors holds "
                                            r"the init model's weights \(epoch 0\)"):
        run = train(tiny(tmp_path, "spoilt", init=str(init_model), optim={"learning_rate": 5.0}), progress=False)
    assert _same(_weights(init_model), _weights(run / "best.safetensors"))
    assert tomoseg.load_model(run / "best.safetensors").metadata["training"]["epoch"] == 0
    assert "warning: no epoch improved on the init model" in (run / "train.log").read_text()


def test_a_fine_tune_stopped_in_its_first_epoch_resumes_exactly_and_runs_without_the_init_file(
        tmp_path, init_model, monkeypatch, capsys):
    """R4: the init model's epoch 0 is a state to resume from; R10: the resume needs no init file; R11: the model
    files get the permissions of the umask, as the run's other files."""
    straight = train(tiny(tmp_path, "straight", init=str(init_model)), progress=False)
    moved = tmp_path / "moved.safetensors"
    shutil.copy(init_model, moved)
    real = TrainStep.__call__

    def stop(self, *args):  # Ctrl-C in the first step
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainStep, "__call__", stop)
    old = os.umask(0o027)
    try:
        cfg = tiny(tmp_path, "stopped", init=str(moved))
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["-q", "train", str(tmp_path / "c.yaml")]) == 130
        assert "interrupted; the same command with --resume continues from the last finished epoch" in \
            capsys.readouterr().err
        monkeypatch.setattr(TrainStep, "__call__", real)
        moved.unlink()  # R10: the init file moved away since
        resumed = train(cfg, resume=True, progress=False)
    finally:
        os.umask(old)
    assert _same(_weights(straight / "last.safetensors"), _weights(resumed / "last.safetensors"))
    assert list(read_csv(resumed / "metrics.csv")["epoch"]) == [0, 1, 2]
    assert tomoseg.load_model(resumed / "last.safetensors").metadata["init"]["name"] == str(moved)
    modes = {p.name: p.stat().st_mode & 0o777 for p in resumed.iterdir()}
    assert set(modes.values()) == {0o640}, modes  # safetensors wrote 0600


def test_a_stop_before_any_epoch_leaves_a_folder_that_starts_again(tmp_path, monkeypatch, capsys):
    """R4: no resume hint where nothing can be resumed, and the folder (config.yaml, train.log) is no obstacle."""
    cfg = tiny(tmp_path, "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    real = TrainStep.__call__

    def stop(self, *args):  # Ctrl-C in the first step
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainStep, "__call__", stop)
    assert main(["-q", "train", str(tmp_path / "c.yaml")]) == 130
    err = capsys.readouterr().err
    assert ("tomoseg: interrupted; no epoch had finished, so there is nothing to resume: the same command (without "
            "--resume) starts again") in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml", "train.log"]
    monkeypatch.setattr(TrainStep, "__call__", real)
    for resume in ([], ["--resume"]):  # either way: a new run
        assert main(["-q", "train", str(tmp_path / "c.yaml"), "--epochs", "1", *resume]) == 0
        assert list(read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1]
        shutil.rmtree(tmp_path / "run" / "last.state.safetensors", ignore_errors=True)
        for p in (tmp_path / "run").iterdir():
            if p.name not in ("config.yaml", "train.log"):
                p.unlink()


def test_a_finished_run_says_so_before_reading_its_data(tmp_path, monkeypatch):
    """R10: resuming a finished run was a full data load and a 100 % bar."""
    import tomoseg.training.data as training_data

    cfg = tiny(tmp_path, "run", epochs=1)
    train(cfg, progress=False)
    shutil.rmtree(tmp_path / "cache")

    def refuse(item):
        raise AssertionError(f"a phantom was generated: {item}")

    monkeypatch.setattr(training_data, "generate_item", refuse)
    with pytest.raises(TomosegError, match=r"run: this run already finished 1 of 1 epochs; its model is "
                                           r".*best.safetensors. To train longer, resume with more epochs "
                                           r"\(--epochs 2\)"):
        train(cfg, resume=True, progress=False)


def test_the_same_files_named_from_another_folder_are_the_same_config(tmp_path, monkeypatch):
    """R10: config.yaml holds the paths found beside the config (absolute); a resume from the data's folder names
    them relative."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    saved = {"init": str(tmp_path / "data" / "m.safetensors"),
             "data": {"volumes": [{"image": str(tmp_path / "data" / "a.h5") + ":/x", "labels": str(tmp_path / "data"
                                                                                                 / "l.tif")}]}}
    current = {"init": "m.safetensors", "data": {"volumes": [{"image": "a.h5:/x", "labels": "./l.tif"}],
                                                 "hold_out": 0.0}}
    assert changed_keys(saved, current) == []
    current["data"]["volumes"][0]["labels"] = "other.tif"
    assert changed_keys(saved, current) == ["data.volumes"]


@pytest.mark.parametrize("changes, message", [
    ({"seed": -1}, "seed -1 must be a whole number >= 0"),
    ({"optim": {"weight_decay": -1}}, "optim.weight_decay -1.0 must be at least 0"),
    ({"sampling": {"patch_size": 16, "validation_patches": 0}}, "sampling.validation_patches 0 must be at least 1"),
    ({"sampling": {"patch_size": 16, "validation_patches": -3}}, "sampling.validation_patches -3 must be at least 1"),
    ({"model": {"levels": 7}, "sampling": {"patch_size": 32}},
     "sampling.patch_size 32 must be a multiple of 64 for model.levels 7 (the network halves a patch 6 times); e.g. "
     "patch_size 64"),
])
def test_values_out_of_range_are_refused_by_the_config_check(tmp_path, changes, message):
    """R7, R4: these passed the check and crashed with a traceback (seed, weight_decay), were silently replaced
    (validation_patches) or failed on the first step after the run folder was made (patch_size)."""
    with pytest.raises(TomosegError) as err:
        config_from_dict(tiny(tmp_path, "run", **changes))
    assert message in str(err.value)
