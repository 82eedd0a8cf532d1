"""What a model file says about the data it expects is checked when it is loaded or saved, and ``tomoseg info``
describes a model whose descriptive fields it cannot read without a traceback (review MF1)."""

import json

import pytest
from safetensors.torch import save_file

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError

BASE = {"format": "tomoseg-model", "format_version": 1, "architecture": {"levels": 2, "base_features": 2}}


def _model_file(path, **meta):
    model = tomoseg.UNet3D(levels=2, base_features=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"tomoseg": json.dumps({**BASE, **meta})})
    return path


@pytest.mark.parametrize("field, value, message", [
    ("threshold", 300, r"its threshold 300 is not an integer from 0 to 254"),
    ("threshold", "x", r"its threshold 'x' is not an integer from 0 to 254"),
    ("threshold", 0.5, r"its threshold 0\.5 is not an integer"),
    ("threshold", True, r"its threshold True is not an integer"),
    ("voxel_size_nm", "abc", r"its voxel_size_nm 'abc' is not three positive numbers"),
    ("voxel_size_nm", [1, 2], r"its voxel_size_nm \[1, 2\] is not three positive numbers"),
    ("voxel_size_nm", [-1, 0, 1], r"its voxel_size_nm \[-1, 0, 1\] is not three positive numbers"),
    ("normalization", None, r"its normalization None is not an object"),
    ("normalization", [], r"its normalization \[\] is not an object"),
    ("normalization", {"method": 5}, r"its normalization method 5 is not a name"),
    ("normalization", {"objects": "purple"}, r"its normalization objects 'purple' is none of \['dark', 'bright'\]"),
    ("normalization", {"scope": "slice"}, r"its normalization scope 'slice' is none of"),
    ("training", "x", r"its training record 'x' is not an object"),
])
def test_expectations_segment_cannot_act_on_are_refused_on_loading(tmp_path, field, value, message):
    path = _model_file(tmp_path / "m.safetensors", **{field: value})
    with pytest.raises(TomosegError, match=r"m\.safetensors: " + message):
        tomoseg.load_model(path)


def test_a_model_without_the_optional_fields_loads_with_the_defaults(tmp_path, capsys):
    path = _model_file(tmp_path / "minimal.safetensors")
    assert tomoseg.load_model(path).config.levels == 2
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "whole-volume z-scored gray values; voxel size unknown" in out and "threshold     127 (of 255)" in out


def test_save_model_refuses_metadata_that_load_model_would_refuse(tmp_path):
    with pytest.raises(TomosegError, match="its threshold 300 is not an integer from 0 to 254"):
        tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "m.safetensors", {"threshold": 300})
    assert not list(tmp_path.iterdir())
    import numpy as np

    path = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "ok.safetensors",
                              {"voxel_size_nm": tuple(np.float32([30, 30, 30]))})
    assert tomoseg.load_model(path).metadata["voxel_size_nm"] == [30, 30, 30]


@pytest.mark.parametrize("meta, shown", [
    ({"init": "x"}, "fine-tuned    from (not readable in this file)"),
    ({"trained_on": "x", "training": {"step": 3}}, "trained       3 steps"),
    ({"held_out": {"mean": "x"}}, None),
    ({"held_out": {"mean": {"recall": "x"}}}, "held-out      voxel recall (not readable in this file), precision n/a"),
    ({"training": {"validation": "x"}}, None),
    ({"training": {"validation": {"val_loss": "x"}}}, "loss (not readable in this file), voxel recall n/a"),
])
def test_info_shows_descriptive_fields_it_cannot_read_without_a_traceback(tmp_path, capsys, meta, shown):
    path = _model_file(tmp_path / "m.safetensors", **meta)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3D U-Net, 2 levels, base 2 features" in out
    if shown:
        assert shown in out


@pytest.mark.parametrize("training", [{"config": "x"}, {"config": {"data": "x"}}, {"config": {"data": []}}])
def test_segment_runs_a_model_whose_training_config_it_cannot_read(tmp_path, training):
    import numpy as np

    from tomoseg.inference import segment
    from tomoseg.io import write_volume

    path = _model_file(tmp_path / "m.safetensors", training=training, voxel_size_nm=[30, 30, 30])
    write_volume(str(tmp_path / "in.tif"), np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32),
                 voxel_size=(60.0,) * 3)  # unlike the model's: the voxel-size check reads the training data
    with pytest.warns(tomoseg.errors.TomosegWarning, match="voxel size 60 × 60 × 60 nm is 2x larger"):
        segment(tmp_path / "in.tif", tmp_path / "p.tif", model=path, progress=False)


def test_segment_warns_where_it_cuts_a_model_elsewhere_than_the_threshold_it_records(tmp_path):
    """Review MF8: the threshold a model file records was ignored without a word."""
    import warnings

    import numpy as np

    from tomoseg.inference import SegmentOptions, segment
    from tomoseg.io import write_volume

    write_volume(str(tmp_path / "in.tif"), np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32))
    own = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "own.safetensors", {"threshold": 100})
    with pytest.warns(tomoseg.errors.TomosegWarning, match=r"own\.safetensors: records threshold 100, and this "
                                                           "run's mask and objects use 127; pass --threshold 100"):
        segment(tmp_path / "in.tif", tmp_path / "a.tif", model=own, progress=False)
    paper = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "paper.safetensors")  # records 127
    with warnings.catch_warnings():
        warnings.simplefilter("error", tomoseg.errors.TomosegWarning)
        segment(tmp_path / "in.tif", tmp_path / "b.tif", model=own, progress=False,
                options=SegmentOptions(threshold=100))
        segment(tmp_path / "in.tif", tmp_path / "c.tif", model=paper, progress=False,
                options=SegmentOptions(threshold=90))  # the user's choice for a model of 127: no warning
