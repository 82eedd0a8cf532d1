"""train and ablation configs of the second bad-input sweep (2026-11-26, findings S13, S17-S19, S26-S29, S35):
each bad input is refused with one line naming the key or option, before any phantom is generated."""


import pytest
import yaml

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.training import config_from_dict
from tomoseg.training import data as training_data


def tiny(tmp_path, name="run", **changes):
    cfg = {
        "output": str(tmp_path / name), "epochs": 1, "device": "cpu",
        "model": {"levels": 2, "base_features": 2},
        "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5,
                              "cache_dir": str(tmp_path / "cache")}},
        "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 1},
    }
    cfg.update(changes)
    return cfg


def phantoms(tmp_path, **changes):
    return tiny(tmp_path, data={"phantoms": {**tiny(tmp_path)["data"]["phantoms"], **changes}})


def run_cli(tmp_path, capsys, cfg, *extra, command="train"):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main([command, str(path), *extra])
    err = capsys.readouterr().err
    return rc, err


def one_error(rc, err) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("tomoseg: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_generation(monkeypatch):
    """Fails the test if any phantom is generated."""
    def refuse(item):
        raise AssertionError(f"a phantom was generated: {item}")

    monkeypatch.setattr(training_data, "generate_item", refuse)


# S17: augment.zoom
@pytest.mark.parametrize("zoom", [[0, 0], [1.3, 1.0], [-1, 1], [1.0], [1.0, 100.0], ["a", 1]])
def test_bad_zoom_is_refused_naming_the_key(tmp_path, capsys, zoom, no_generation):
    line = one_error(*run_cli(tmp_path, capsys, tiny(tmp_path, augment={"zoom": zoom})))
    assert f"augment.zoom {zoom!r} must be two zoom factors [low, high], low <= high" in line


def test_zoom_one_one_still_means_no_zoom(tmp_path):
    assert config_from_dict(tiny(tmp_path, augment={"zoom": [1.0, 1.0]})).augment.zoom == [1.0, 1.0]


@pytest.mark.parametrize("key, value, expected", [
    ("zoom_probability", 1.5, "augment.zoom_probability 1.5 must be between 0 and 1"),
    ("intensity_scale", 1.0, "augment.intensity_scale 1.0 must be at least 0 and below 1"),
    ("noise", -0.1, "augment.noise -0.1 must be at least 0"),
])
def test_other_augment_values_are_checked(tmp_path, key, value, expected):
    with pytest.raises(TomosegError, match=expected.replace(".", r"\.")):
        config_from_dict(tiny(tmp_path, augment={key: value}))


# S18: phantom counts and the rest of data.phantoms
@pytest.mark.parametrize("key, value, expected", [
    ("count", -2, "data.phantoms.count -2 must be a whole number >= 0"),
    ("validation_count", -1, "data.phantoms.validation_count -1 must be a whole number >= 0"),
    ("seed", -1, "data.phantoms.seed -1 must be a whole number >= 0"),
    ("workers", -3, "data.phantoms.workers -3 must be a whole number >= 0"),
    ("shape", [32, 64], "data.phantoms.shape [32, 64] must be three whole sizes"),
    ("shape", [0, 64, 64], "data.phantoms.shape [0, 64, 64] must be three whole sizes"),
    ("presets", [], "data.phantoms.presets [] must list at least one preset"),
    ("presets", ["nosiy"], "data.phantoms.presets: unknown ['nosiy']"),
    ("faded_ends", 2.0, "data.phantoms.faded_ends 2.0 must be a share between 0 and 1"),
    ("cache_dir", "", "data.phantoms.cache_dir '': give a folder"),
])
def test_bad_phantom_values_are_refused_naming_the_key(tmp_path, capsys, key, value, expected, no_generation):
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, **{key: value})))
    assert expected in line


# S13: the pool's size checked before anything is generated
def test_a_huge_count_is_refused_with_the_bound(tmp_path, capsys, no_generation):
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, count=1_000_000, shape=[64, 192, 192])))
    assert "data.phantoms.count 1000000 is more than 100,000 phantoms" in line
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_physics_counts_have_the_same_bound(tmp_path):
    with pytest.raises(TomosegError, match=r"data\.phantoms\.physics\.validation_count 200000 is more than"):
        config_from_dict(phantoms(tmp_path, physics={"validation_count": 200_000}))


def test_a_pool_larger_than_the_free_disk_is_refused_with_the_numbers(tmp_path, capsys, monkeypatch, no_generation):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 9 << 30, 1 << 30))  # 1 GiB free
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, count=500, shape=[64, 192, 192])))
    assert "501 phantoms (data.phantoms count 500 and validation_count 1)" in line
    assert "need about 2.20 GiB in the cache" in line and "1.00 GiB are free on its disk" in line
    assert "data.phantoms.cache_dir" in line


def test_a_pool_larger_than_the_memory_is_refused(tmp_path, capsys, monkeypatch, no_generation):
    import psutil
    from collections import namedtuple

    memory = namedtuple("memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(1 << 30))
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, count=100, shape=[64, 192, 192], cache_dir=None)))
    assert "held in memory while training" in line and "1.00 GiB are available" in line


def test_the_cost_counts_only_phantoms_not_cached(tmp_path):
    spec = config_from_dict(tiny(tmp_path)).data.phantoms
    cost = training_data.pool_cost(spec)
    assert (cost["count"], cost["generate"]) == (2, 2)
    assert cost["cache_bytes"] == 2 * 32 * 64 * 64 * training_data.POOL_CACHE_BYTES_PER_VOXEL
    items = training_data.phantom_specs(spec, validation=False)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{training_data._cache_key(items[0])}.npz").write_bytes(b"x")
    cost = training_data.pool_cost(spec)
    assert (cost["count"], cost["generate"]) == (2, 1)


def test_the_pool_cost_is_said_before_generating(tmp_path, capsys):
    from tomoseg.training import prepare_data

    cfg = config_from_dict(tiny(tmp_path))
    prepare_data(cfg)
    err = capsys.readouterr().err
    assert "tomoseg: generating 2 of 2 phantoms (data.phantoms count 1 and validation_count 1)" in err
    assert "in the cache" in err
    prepare_data(cfg)  # all cached now: nothing said
    assert "generating" not in capsys.readouterr().err


# S28: the cache folder
def test_a_cache_dir_that_cannot_be_created_names_the_key(tmp_path, capsys, no_generation):
    (tmp_path / "afile").write_text("x")
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, cache_dir=str(tmp_path / "afile" / "sub"))))
    assert f"data.phantoms.cache_dir {tmp_path / 'afile' / 'sub'}: cannot create the phantom cache" in line
    assert "Errno" not in line


# S27: the example fits the key
@pytest.mark.parametrize("section, key, value, example", [
    ("phantoms", "presets", "noisy", "[default, noisy]"),
    (None, "voxel_size_nm", 29.33, "[29.33, 29.33, 29.33]"),
    (None, "augment.zoom", 1.2, "[1.0, 1.25]"),
    ("phantoms", "shape", 64, "[64, 192, 192]"),
])
def test_list_errors_give_an_example_that_fits_the_key(tmp_path, section, key, value, example):
    if section == "phantoms":
        cfg, name = phantoms(tmp_path, **{key: value}), f"data.phantoms.{key}"
    elif key == "augment.zoom":
        cfg, name = tiny(tmp_path, augment={"zoom": value}), key
    else:
        cfg, name = tiny(tmp_path, **{key: value}), key
    with pytest.raises(TomosegError) as info:
        config_from_dict(cfg)
    assert str(info.value) == f"{name}: {value!r} must be a list, e.g. {example}"


# S26: options given are applied or refused, never dropped
@pytest.mark.parametrize("extra, expected", [
    (["--epochs", "0"], "--epochs 0: give at least 1"),
    (["--output", ""], "--output '': give a value or leave the option out"),
    (["--device", ""], "--device '': give a value or leave the option out"),
])
def test_train_options_zero_or_empty_are_refused_not_ignored(tmp_path, capsys, extra, expected, no_generation):
    line = one_error(*run_cli(tmp_path, capsys, tiny(tmp_path), *extra))
    assert line == f"tomoseg: error: {expected}"
    assert not (tmp_path / "run").exists()


# S35: a folder of other files
def test_a_folder_of_other_files_gets_one_answer_with_and_without_resume(tmp_path, capsys, no_generation):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("user,metrics\n")
    expected = (f"tomoseg: error: {tmp_path / 'run'}: a folder of other files, not a tomoseg run; choose a new "
                "folder (--output or the config's output)")
    assert one_error(*run_cli(tmp_path, capsys, tiny(tmp_path))) == expected
    assert one_error(*run_cli(tmp_path, capsys, tiny(tmp_path), "--resume")) == expected
    assert (tmp_path / "run" / "metrics.csv").read_text(encoding="utf-8") == "user,metrics\n"


def test_a_run_stopped_before_its_first_checkpoint_says_so(tmp_path, capsys, no_generation):
    """A folder of a run's files without its state cannot be resumed. (One holding only config.yaml is the start
    of a run that saved nothing: it starts again as new, review R4, test_run_folder_review.py.)"""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(tiny(tmp_path)))
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n1\n")
    for extra in ([], ["--resume"]):
        line = one_error(*run_cli(tmp_path, capsys, tiny(tmp_path), *extra))
        assert "a run that stopped before its first epoch ended" in line and "nothing to resume" in line


@pytest.mark.parametrize("shape,words", [([12, 64, 64], "too small for objects of radius"),
                                         ([32, 16, 16], "the pillar would be")])
def test_phantom_shape_too_small_refused_before_any_generation(tmp_path, capsys, shape, words, no_generation):
    """A shape that cannot hold the preset's pillar or largest objects was refused only inside the pool's
    generation (after others were made, in a worker process); now by the config check, naming the key."""
    line = one_error(*run_cli(tmp_path, capsys, phantoms(tmp_path, shape=shape)))
    assert f"data.phantoms.shape {shape} (preset default, seed 5)" in line and words in line, line
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_users_project_folder_is_never_called_a_run_to_delete(tmp_path, capsys, no_generation):
    """Review D6: a project folder holding the user's config.yaml and training volumes, given as the run's output
    (`output: .`), was called "a run that stopped before its first epoch ended ... delete the folder". It holds
    other files: a folder of other files, not a tomoseg run, and nothing is advised to be deleted."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(tiny(tmp_path)))
    (tmp_path / "run" / "scan.tif").write_bytes(b"II*\x00 the user's scan")
    for extra in ([], ["--resume"]):
        line = one_error(*run_cli(tmp_path, capsys, tiny(tmp_path), *extra))
        assert "a folder of other files, not a tomoseg run" in line and "delete" not in line, line
    assert (tmp_path / "run" / "scan.tif").read_bytes() == b"II*\x00 the user's scan"
