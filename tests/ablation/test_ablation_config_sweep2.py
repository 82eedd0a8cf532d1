"""ablation configs of the second bad-input sweep (2026-11-26, findings S19, S28, S29, S13): one line naming the
key or option, before any work."""

import pytest
import yaml

from tomoseg.ablation import ablation_from_dict
from tomoseg.cli import main
from tomoseg.errors import TomosegError

TRAIN = {"epochs": 1, "device": "cpu",
         "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "cache_dir": None}},
         "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 1}}


def study(tmp_path, **changes):
    values = {"output": str(tmp_path / "study"), "configurations": ["2/2"], "reference": "2/2", "variants": [],
              "baselines": ["otsu"], "train": TRAIN,
              "evaluation": {"count": 1, "shape": [32, 64, 64], "subvolume": 32, "presets": ["default"]}}
    values.update(changes)
    return values


def run_cli(tmp_path, capsys, values, *extra):
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(values))
    rc = main(["ablation", str(path), *extra])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("tomoseg: error: "), lines
    return lines[0]


def test_train_given_as_a_list_is_refused_naming_the_section(tmp_path, capsys):
    line = run_cli(tmp_path, capsys, study(tmp_path, train=[1, 2]))
    assert line == ("tomoseg: error: config section 'train' must be a mapping of keys to values (the keys of "
                    "tomoseg train), not a list")


@pytest.mark.parametrize("value", ["2/2", 4])
def test_configurations_not_a_list_says_so(tmp_path, value):
    with pytest.raises(TomosegError, match=r"configurations .* must be a list, e\.g\. \[\"4/8\", \"3/6\"\]"):
        ablation_from_dict(study(tmp_path, configurations=value))


def test_baselines_not_a_list_says_so(tmp_path):
    with pytest.raises(TomosegError, match=r"baselines 'otsu' must be a list"):
        ablation_from_dict(study(tmp_path, baselines="otsu"))


def test_output_that_is_a_file_names_the_option(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text("x")
    line = run_cli(tmp_path, capsys, study(tmp_path), "--output", str(tmp_path / "good.yaml"))
    assert line == (f"tomoseg: error: {tmp_path / 'good.yaml'}: is a file, not a folder; give a folder for the study "
                    "(--output or the config's output)")


def test_empty_output_option_is_refused_not_ignored(tmp_path, capsys):
    line = run_cli(tmp_path, capsys, study(tmp_path), "--output", "")
    assert line == "tomoseg: error: --output '': give a folder for the study"
    assert not (tmp_path / "study").exists()


def test_a_huge_phantom_pool_is_refused_before_the_study_starts(tmp_path, capsys):
    train = {**TRAIN, "data": {"phantoms": {**TRAIN["data"]["phantoms"], "count": 1_000_000}}}
    line = run_cli(tmp_path, capsys, study(tmp_path, train=train))
    assert "data.phantoms.count 1000000 is more than 100,000 phantoms" in line
    assert not (tmp_path / "study").exists()


def test_a_pool_too_large_for_the_disk_is_refused_before_the_held_out_set(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    from tomoseg.ablation import study as study_module

    def refuse(*args, **kwargs):
        raise AssertionError("the held-out set was generated")

    monkeypatch.setattr(study_module, "held_out", refuse)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 9 << 30, 1 << 30))
    train = {**TRAIN, "data": {"phantoms": {**TRAIN["data"]["phantoms"], "count": 5000,
                                            "cache_dir": str(tmp_path / "cache")}}}
    line = run_cli(tmp_path, capsys, study(tmp_path, train=train))
    assert "5001 phantoms" in line and "1.00 GiB are free on its disk" in line
    assert not (tmp_path / "study").exists()


def test_held_out_set_checked_before_any_work(tmp_path, capsys, monkeypatch):
    """The held-out phantoms had no size check: a shape too small for a preset failed after the training
    pool's check, a count or shape past memory failed while they were generated (all held in memory)."""
    with pytest.raises(TomosegError, match=r"evaluation.shape \[16, 64, 64\] \(preset default\): .*too small"):
        ablation_from_dict(study(tmp_path, evaluation={"count": 1, "shape": [16, 64, 64], "presets": ["default"]}))
    with pytest.raises(TomosegError, match=r"evaluation.count 5000 must be a whole number up to 1,000"):
        ablation_from_dict(study(tmp_path, evaluation={"count": 5000, "shape": [32, 64, 64]}))
    import tomoseg.ablation.study as ablation_study

    def refuse(*args, **kwargs):
        raise AssertionError("the held-out set was generated")

    monkeypatch.setattr(ablation_study, "held_out", refuse)
    line = run_cli(tmp_path, capsys, study(tmp_path, evaluation={"count": 1000, "shape": [2048, 2048, 2048]}))
    assert "1000 held-out phantoms of [2048, 2048, 2048] take about" in line and "lower evaluation.count" in line
    assert not (tmp_path / "study").exists()


def test_held_out_sample_mask_with_nan_refused(tmp_path):
    import numpy as np

    from tomoseg.ablation.study import held_out
    from tomoseg.ablation.config import EvaluationPhantoms

    for name, a in (("i.npy", np.zeros((16, 16, 16), np.uint8)), ("l.npy", np.zeros((16, 16, 16), np.uint8)),
                    ("s.npy", np.full((16, 16, 16), np.nan, np.float32))):
        np.save(tmp_path / name, a)
    ev = EvaluationPhantoms(count=0, volumes=[{"image": str(tmp_path / "i.npy"), "labels": str(tmp_path / "l.npy"),
                                               "sample": str(tmp_path / "s.npy")}])
    with pytest.raises(TomosegError, match="the sample mask holds NaN"):
        held_out(ev)
