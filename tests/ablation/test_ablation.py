"""The ablation study end to end at a tiny budget, and its input checks."""

import numpy as np
import pytest

from tomoseg.ablation import ablation_from_dict, run_ablation
from tomoseg.ablation.baselines import best_threshold_mask, otsu_mask
from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.table import read_csv

PAPER_PARAMETERS = {"4-8": 366_593, "3-8": 89_153, "4-6": 206_581, "3-6": 50_341, "4-4": 92_145, "3-4": 22_545}

TINY_TRAIN = {
    "epochs": 1, "seed": 3,
    "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "seed": 50, "validation_count": 1}},
    "sampling": {"patch_size": 32, "batch_size": 1, "steps_per_epoch": 2, "validation_patches": 1},
}


def tiny(tmp_path, **changes):
    values = {"output": str(tmp_path / "study"), "train": TINY_TRAIN,
              "evaluation": {"count": 1, "shape": [32, 64, 64], "subvolume": 32, "presets": ["default"]}}
    values.update(changes)
    return values


@pytest.mark.slow
def test_ablation_end_to_end_tiny_budget(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "ablation.yaml"
    cfg.write_text(yaml.safe_dump(tiny(tmp_path)))
    assert main(["-q", "ablation", str(cfg)]) == 0
    out = tmp_path / "study"
    table = read_csv(out / "results.csv")
    rows = list(table["row"])
    assert rows == ["4-8", "4-6", "4-4", "3-8", "3-6", "3-4", "4-8-patch-normalization",
                    "4-8-patch-normalization-volume-inference", "4-8-dice-bce", "otsu", "best-threshold",
                    "random-forest"]
    for name, count in PAPER_PARAMETERS.items():
        i = rows.index(name)
        assert int(table["parameters"][i]) == count
        assert int(table["train_steps"][i]) == 2
        assert table["seconds_per_1000_steps"][i] > 0
    for col in ("accuracy", "recall", "precision", "f1", "object_recall", "object_precision", "object_f1"):
        assert col in table
    acc = np.asarray(table["accuracy"], float)
    assert np.all((acc >= 0) & (acc <= 1))
    # the oracle threshold is at least as good in voxel F1 as Otsu's
    f1 = dict(zip(rows, np.asarray(table["f1"], float)))
    assert f1["best-threshold"] >= f1["otsu"]
    # each variant trains its own model
    for name in ("4-8-patch-normalization", "4-8-dice-bce"):
        assert (out / "models" / name / "best.safetensors").exists()
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "366,593 (365,889)" in md and "| otsu |" in md
    assert (out / "f1_vs_parameters.png").stat().st_size > 1000
    # a second run resumes: every row is read back, nothing retrained
    before = (out / "models" / "4-8" / "best.safetensors").stat().st_mtime_ns
    assert main(["-q", "ablation", str(cfg)]) == 0
    assert (out / "models" / "4-8" / "best.safetensors").stat().st_mtime_ns == before
    assert list(read_csv(out / "results.csv")["row"]) == rows


@pytest.mark.parametrize("changes, message", [
    ({"configurations": ["4/8", "big"]}, "unknown configuration 'big'"),
    ({"configurations": ["4/8", "9/8"]}, "unknown configuration '9/8'"),
    ({"configurations": []}, "configurations is empty"),
    ({"configurations": None}, "configurations is empty"),
    ({"configurations": ["4/8", "4/8"]}, "lists one twice"),
    ({"variants": ["mixup"]}, "unknown variants ['mixup']"),
    ({"baselines": ["watershed"]}, "unknown baselines ['watershed']"),
    ({"reference": "3/4", "configurations": ["4/8"]}, "reference '3/4'"),
    ({"learning_rate": 1}, "unknown ablation config key(s) ['learning_rate']"),
    ({"train": {**TINY_TRAIN, "model": {"levels": 3}}}, "train.model is set by the ablation"),
    ({"train": {**TINY_TRAIN, "optim": {"loss": "hinge"}}}, "optim.loss 'hinge'"),
])
def test_bad_config_fails_before_training(tmp_path, changes, message):
    with pytest.raises(TomosegError, match=None) as err:
        run_ablation(tiny(tmp_path, **changes), progress=False)
    assert message in str(err.value)
    assert not (tmp_path / "study").exists()  # nothing trained, nothing written


def test_cli_reports_bad_config(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(tiny(tmp_path, configurations=[])))
    assert main(["ablation", str(cfg)]) == 1
    assert "configurations is empty" in capsys.readouterr().err


def test_other_study_in_output_is_not_overwritten(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "mine.txt").write_text("x")
    with pytest.raises(TomosegError, match="holds no ablation study"):
        run_ablation(tiny(tmp_path, configurations=["3/4"], variants=[], baselines=[]), progress=False)


def test_threshold_baselines_on_a_known_volume():
    rng = np.random.default_rng(0)
    image = rng.normal(180, 5, (16, 32, 32)).astype(np.float32)
    sample = np.zeros(image.shape, bool)
    sample[:, 4:28, 4:28] = True
    labels = np.zeros(image.shape, bool)
    labels[6:10, 10:14, 10:14] = True
    image[labels] = 60
    assert np.array_equal(best_threshold_mask(image, sample, labels), labels)
    assert np.array_equal(otsu_mask(image, sample), labels)  # two well-separated classes
    image[~sample] = 0  # dark surroundings are outside the sample, never objects
    assert not otsu_mask(image, sample)[~sample].any()


def test_ablation_config_round_trip(tmp_path):
    cfg = ablation_from_dict(tiny(tmp_path))
    assert cfg.configurations == ["4/8", "4/6", "4/4", "3/8", "3/6", "3/4"]
    tc = cfg.train_config("3/6", **{"data.normalization": "patch"})
    assert (tc.model.levels, tc.model.base_features, tc.data.normalization) == (3, 6, "patch")
    assert tc.output.endswith("models/3-6")


def test_held_out_set_from_the_users_labelled_volumes(tmp_path):
    import tomoseg

    ph = tomoseg.make_phantom((32, 64, 64), rng=77)
    tomoseg.write_volume(str(tmp_path / "img.tif"), ph.image)
    tomoseg.write_volume(str(tmp_path / "lab.tif"), ph.labels)
    tomoseg.write_volume(str(tmp_path / "sample.tif"), ph.pillar.astype(np.uint8))
    vols = [{"image": str(tmp_path / "img.tif"), "labels": str(tmp_path / "lab.tif"),
             "sample": str(tmp_path / "sample.tif")}]
    out = run_ablation(tiny(tmp_path, configurations=["3/4"], variants=[], baselines=["best-threshold"],
                            evaluation={"count": 0, "volumes": vols}), progress=False)
    table = read_csv(out / "results.csv")
    assert list(table["row"]) == ["3-4", "best-threshold"]
    expected = tomoseg.metrics.best_threshold(ph.image, ph.labels, mask=ph.pillar)["f1"]
    assert float(table["f1"][1]) == pytest.approx(expected, rel=1e-5)  # the CSV keeps 6 digits
    with pytest.raises(TomosegError, match="file not found"):
        ablation_from_dict(tiny(tmp_path, evaluation={"count": 0, "volumes": [{"image": "nope.tif",
                                                                               "labels": "x.tif"}]}))
    with pytest.raises(TomosegError, match="held-out set is empty"):
        ablation_from_dict(tiny(tmp_path, evaluation={"count": 0}))
