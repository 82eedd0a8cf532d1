"""Validation data of the training review (2026-11-27, findings T1, T2, T8, T16): validation never silently uses
training data, and validation inputs are normalized as training inputs are."""

import re
import warnings

import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.io import write_volume
from tomoseg.training import config_from_dict, prepare_data, train
from tomoseg.training.data import TrainingVolume
from tomoseg.training.validation import validation_patches


def _pair(tmp_path, image, labels, name="p"):
    write_volume(str(tmp_path / f"{name}_img.npy"), image)
    write_volume(str(tmp_path / f"{name}_lab.npy"), labels)
    return {"image": str(tmp_path / f"{name}_img.npy"), "labels": str(tmp_path / f"{name}_lab.npy")}


def _z_volume(depth=80, side=64):
    """A volume whose gray value is its slice index, with a few object voxels in every slice."""
    image = np.broadcast_to(np.arange(depth, dtype=np.float32)[:, None, None], (depth, side, side)).copy()
    labels = np.zeros(image.shape, np.uint8)
    labels[:, 30:34, 30:34] = 1
    return image, labels


def _tiny(tmp_path, data, **sampling):
    return {"output": str(tmp_path / "run"), "epochs": 1, "seed": 3, "model": {"levels": 2, "base_features": 2},
            "data": data, "optim": {"learning_rate": 0.01},
            "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 2,
                         **sampling}}


def test_paper_mode_validates_only_on_the_validation_slices_even_when_they_are_thinner_than_a_patch(tmp_path):
    image, labels = _z_volume()  # split of 80 slices: training 0..47, validation 48..71, test 72..79
    cfg = config_from_dict(_tiny(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]}, mode="paper",
                                 patch_size=32, validation_patches=16))
    train_vols, val_vols = prepare_data(cfg)
    assert [v.shape for v in val_vols] == [(24, 64, 64)]  # what sampling.validation: volumes scores, too
    x, _ = validation_patches(cfg, val_vols, train_vols, "cpu")
    assert tuple(x.shape) == (4, 1, 24, 32, 32)  # 24 slices thick (a multiple of the divisor), 4 cells in y, x
    z_of = {float(v): z for z, v in enumerate(train_vols[0].image[:, 0, 0])}  # z-scored value -> slice index
    seen = sorted({z_of[float(v)] for v in x[:, 0, :, 0, 0].ravel()})
    assert seen == list(range(48, 72))


def test_validation_thinner_than_the_network_divisor_is_refused(tmp_path):
    image, labels = _z_volume(depth=30)  # validation slices 18..26: 9, below the 16 of 5 levels
    cfg = _tiny(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]}, mode="paper")
    cfg["model"] = {"levels": 5, "base_features": 2}
    with pytest.raises(TomosegError, match=r"validation slices 18\.\.26\]: the validation part \(9, 64, 64\) is "
                                           r"thinner than the 16 voxels the network needs \(model.levels 5\)"):
        train(cfg, progress=False)


def test_paper_grid_validation_patches_come_from_every_volume_not_the_first_cells():
    vols = []
    for k in range(2):
        image = np.broadcast_to((1000 * k + np.arange(32, dtype=np.float32))[:, None, None], (32, 64, 64)).copy()
        vols.append(TrainingVolume(f"v{k}", image, np.zeros(image.shape, np.uint8), np.zeros((0, 3), np.int32)))
    cfg = config_from_dict({"data": {"volumes": [{"image": "a", "labels": "b"}]}, "model": {"levels": 2},
                            "sampling": {"mode": "paper", "patch_size": 16, "validation_patches": 6}})
    x, _ = validation_patches(cfg, vols, vols, "cpu")
    first = x[:, 0, 0, 0, 0].numpy()
    assert len(first) == 6
    assert {int(v) // 1000 for v in first} == {0, 1} and {int(v) % 1000 for v in first} == {0, 16}
    again, _ = validation_patches(cfg, vols, vols, "cpu")
    assert torch.equal(x, again)  # the same patches every time: seeded


def test_validation_on_the_training_volumes_is_warned_and_recorded(tmp_path):
    ph = tomoseg.make_phantom((32, 64, 64), rng=1)
    pair = _pair(tmp_path, ph.image, ph.labels)
    with pytest.warns(TomosegWarning, match="no held-out data .data.validation_volumes is empty.: the validation "
                                            "scores and the choice of best.safetensors are computed on the training"):
        run = train({**_tiny(tmp_path, {"volumes": [pair], "hold_out": 0}), "voxel_size_nm": [30, 30, 30]},
                    progress=False)
    assert tomoseg.load_model(run / "best.safetensors").metadata["setup"]["validation_source"] == "training volumes"
    held = _pair(tmp_path, ph.image, ph.labels, "v")
    cfg = _tiny(tmp_path, {"volumes": [pair], "validation_volumes": [held]})
    cfg.update(output=str(tmp_path / "run2"), voxel_size_nm=[30, 30, 30])  # .npy files record none
    with warnings.catch_warnings():
        warnings.simplefilter("error", TomosegWarning)
        run = train(cfg, progress=False)
    assert tomoseg.load_model(run / "best.safetensors").metadata["setup"]["validation_source"] == "validation volumes"


def test_whole_volume_validation_of_a_per_patch_model_normalizes_per_sub_volume(tmp_path, monkeypatch):
    import tomoseg.inference as inference

    seen, original = [], inference.predict

    def spy(image, model=None, *, stats=None, **kw):
        x = (np.asarray(image, np.float64) - stats.mean) / stats.std
        seen.append((x.mean(), x.std()))
        return original(image, model, stats=stats, **kw)

    monkeypatch.setattr(inference, "predict", spy)
    cfg = _tiny(tmp_path, {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5,
                                        "cache_dir": None}, "normalization": "patch"}, validation="volumes")
    train(cfg, progress=False)
    assert len(seen) == 2 * 4 * 4  # 2 x 4 x 4 sub-volumes of 16^3, each z-scored on its own
    assert all(abs(m) < 1e-5 and abs(s - 1) < 1e-4 for m, s in seen)


def test_the_model_records_the_voxel_size_of_its_training_files_not_of_its_init_model(tmp_path):
    """Training review T12: with data.volumes and no voxel_size_nm, the model recorded none. Review R2: files that
    record none no longer get the init model's (29.33 nm, not the data's): None, with a warning."""
    ph = tomoseg.make_phantom((32, 64, 64), rng=1)
    for name, size in (("a", 20.0), ("b", 20.0), ("c", 25.0)):
        write_volume(str(tmp_path / f"{name}.tif"), ph.image, voxel_size=(size,) * 3)
    write_volume(str(tmp_path / "l.tif"), ph.labels)
    entry = {k: {"image": str(tmp_path / f"{k}.tif"), "labels": str(tmp_path / "l.tif")} for k in "abc"}
    cfg = _tiny(tmp_path, {"volumes": [entry["a"]], "validation_volumes": [entry["b"]]})
    run = train(cfg, progress=False)
    assert tomoseg.load_model(run / "last.safetensors").metadata["voxel_size_nm"] == [20.0, 20.0, 20.0]
    cfg = _tiny(tmp_path, {"volumes": [entry["a"], entry["c"]], "validation_volumes": [entry["b"]]})
    cfg["output"] = str(tmp_path / "mixed")
    with pytest.warns(TomosegWarning, match=r"record different voxel sizes \(20 × 20 × 20 nm; 25 × 25 × 25 nm\)"):
        run = train(cfg, progress=False)
    assert tomoseg.load_model(run / "last.safetensors").metadata["voxel_size_nm"] is None
    pair = _pair(tmp_path, ph.image, ph.labels)  # .npy: no voxel size in the file
    cfg = _tiny(tmp_path, {"volumes": [pair], "validation_volumes": [pair]}, patch_size=16)
    cfg.update(output=str(tmp_path / "tuned"), init="default", model={"levels": 4, "base_features": 8})
    with pytest.warns(TomosegWarning) as record:  # lr 0.01 spoils the default model: that is warned about too
        run = train(cfg, progress=False)
    assert any(re.search(r"the training scan .*p_img.npy records no voxel size, so the model records none .*; set "
                         r"voxel_size_nm \[z, y, x\] in the config", str(w.message)) for w in record)
    assert tomoseg.load_model(run / "last.safetensors").metadata["voxel_size_nm"] is None
    # the config's size where the files record another: recorded, with a warning naming both (review R2)
    cfg = _tiny(tmp_path, {"volumes": [entry["c"]], "validation_volumes": [entry["c"]]})
    cfg.update(output=str(tmp_path / "given"), voxel_size_nm=[29.33, 29.33, 29.33])
    with pytest.warns(TomosegWarning) as record:
        run = train(cfg, progress=False)
    assert ("voxel_size_nm 29.33 × 29.33 × 29.33 nm in the config differs from the 25 × 25 × 25 nm that "
            f"{entry['c']['image']} records; the model records the config's") in str(record[0].message)
    assert tomoseg.load_model(run / "last.safetensors").metadata["voxel_size_nm"] == [29.33, 29.33, 29.33]
    cfg.update(output=str(tmp_path / "close"), voxel_size_nm=[25.2, 25.2, 25.2])  # within 3 %: the same size
    with warnings.catch_warnings():
        warnings.simplefilter("error", TomosegWarning)
        train(cfg, progress=False)
