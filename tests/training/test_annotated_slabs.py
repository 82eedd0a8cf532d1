"""Review R5: a scan annotated on a few slices spread through it keeps one slab per run of annotated slices (not
one box over all of them), and the patches not centred on an object are centred on annotated voxels, so that
none is spent on a patch whose loss is fully masked. Runs started before (sampling.patches_from: box) resume as
they were."""

import numpy as np
import pytest

from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.io import write_volume
from tomoseg.training import config_from_dict, prepare_data
from tomoseg.training.checkpoints import adopt_old_values, changed_keys
from tomoseg.training.config import DataConfig, SamplingConfig
from tomoseg.training.data import TrainingVolume, load_pairs
from tomoseg.training.sampling import RandomPlaces

ANNOTATED = (20, 100, 170)  # three slices of a 192-slice scan


def _spread(tmp_path, shape=(192, 48, 48), annotated=ANNOTATED):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, shape).astype(np.float32)
    labels = np.full(shape, 255, np.uint8)
    for z in annotated:
        labels[z] = 0
        labels[z, 10:14, 10:14] = 1
    write_volume(tmp_path / "scan.tif", image)
    write_volume(tmp_path / "labels.h5", labels, chunks=(16, 16, 16))
    return image, labels, {"image": str(tmp_path / "scan.tif"), "labels": str(tmp_path / "labels.h5")}


def test_one_slab_per_annotated_run_of_slices_each_with_its_context(tmp_path):
    image, labels, entry = _spread(tmp_path)
    vols = load_pairs([entry], DataConfig(), context=8)
    assert [v.origin for v in vols] == [(12, 0, 0), (92, 0, 0), (162, 0, 0)]
    assert [v.shape for v in vols] == [(17, 48, 48)] * 3  # the slice and 8 slices each side
    assert [v.name for v in vols] == [f"{entry['image']} [annotated region {z - 8}:{z + 9},0:48,0:48]"
                                      for z in ANNOTATED]
    assert {v.source for v in vols} == {entry["image"]}  # the slabs of one file
    for v, z in zip(vols, ANNOTATED):
        np.testing.assert_array_equal(v.labels, labels[z - 8:z + 9])
    # 51 of 192 slices kept; the box of runs before the change kept 12..179: 167 slices
    (box,) = load_pairs([entry], DataConfig(), context=8, slabs=False)
    assert box.origin == (12, 0, 0) and box.shape == (167, 48, 48)
    # slices closer than twice the context share a slab
    write_volume(tmp_path / "near.h5", np.where(np.isin(np.arange(192), [20, 30])[:, None, None], labels[20], 255)
                 .astype(np.uint8))
    (near,) = load_pairs([{**entry, "labels": str(tmp_path / "near.h5")}], DataConfig(), context=8)
    assert near.origin == (12, 0, 0) and near.shape == (27, 48, 48)


def test_the_memory_refusal_of_an_annotation_already_sparse_says_what_else_to_do(tmp_path, monkeypatch):
    import psutil

    _, _, entry = _spread(tmp_path)

    class Little:
        available = 100_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    with pytest.raises(TomosegError) as err:
        load_pairs([entry], DataConfig(), context=8)
    message = str(err.value)
    assert "keeps only its annotated regions (17 x 48 x 48; 17 x 48 x 48; 17 x 48 x 48 voxels, with the 8 voxels " \
           "of context each side that patches need), 27% of it: the annotation is sparse already" in message
    assert "Mark the voxels" not in message and "lower sampling.patch_size" in message
    # labels that mark nothing as unannotated keep the whole volume: marking is the advice
    write_volume(tmp_path / "full.h5", np.zeros((192, 48, 48), np.uint8))
    with pytest.raises(TomosegError, match=r"keeps the volume\. Mark the voxels you did not annotate with 255"):
        load_pairs([{**entry, "labels": str(tmp_path / "full.h5")}], DataConfig(), context=8)


def _cfg(entry, **sampling):
    return config_from_dict({"model": {"levels": 2, "base_features": 2}, "voxel_size_nm": [30, 30, 30],
                             "data": {"volumes": [entry], "hold_out": 0}, "augment": {"zoom": [1.0, 1.0]},
                             "sampling": {"patch_size": 16, "foreground_fraction": 0.0, **sampling}})


def _empty_share(cfg, draws=400):
    vols, _ = prepare_data(cfg, progress=False)
    places, rng = RandomPlaces(vols, cfg.sampling, 255), np.random.default_rng(1)
    empty = 0
    for _ in range(draws):
        i, starts, size = places(rng, 16)
        patch = vols[i].labels[tuple(slice(s, s + size) for s in starts)]
        empty += not np.any(patch != 255)
    return empty / draws


def test_non_object_patches_hold_annotated_voxels(tmp_path):
    _, _, entry = _spread(tmp_path, shape=(192, 64, 64), annotated=(20, 60, 100, 140, 170))
    assert _empty_share(_cfg(entry)) == 0.0
    # the box of runs before the change: patches anywhere in slices 12..179, most with nothing annotated
    assert _empty_share(_cfg(entry, patches_from="box")) > 0.5


def test_non_object_patches_are_centred_on_annotated_voxels_within_a_slab():
    labels = np.full((40, 40, 40), 255, np.uint8)
    labels[12:14, 30:34, 30:34] = 0  # a small annotated patch in a corner of one region
    vol = TrainingVolume("t", np.zeros(labels.shape, np.float32), labels, np.zeros((0, 3), np.int32))
    empty = {}
    for mode in ("annotation", "box"):
        places, rng = RandomPlaces([vol], SamplingConfig(patch_size=16, patches_from=mode), 255), \
            np.random.default_rng(0)
        cuts = [places(rng, 16) for _ in range(300)]
        empty[mode] = sum(not np.any(labels[tuple(slice(s, s + n) for s in st)] != 255) for _, st, n in cuts)
    assert empty["annotation"] == 0 and empty["box"] > 200


def test_slabs_are_drawn_by_their_annotated_voxels_and_a_file_as_one(tmp_path):
    labels = np.full((60, 16, 16), 255, np.uint8)
    labels[10, :, :] = 0       # 256 annotated voxels
    labels[50, :, :4] = 0      # 64
    vols = [TrainingVolume("a", np.zeros((20, 16, 16), np.float32), labels[z - 10:z + 10].copy(),
                           np.zeros((0, 3), np.int32), origin=(z - 10, 0, 0), source="scan")
            for z in (10, 50)]
    other = np.zeros((20, 16, 16), np.uint8)  # a second file, fully annotated
    vols.append(TrainingVolume("b", np.zeros(other.shape, np.float32), other, np.zeros((0, 3), np.int32)))
    places, rng = RandomPlaces(vols, SamplingConfig(patch_size=8, foreground_fraction=0.0)), np.random.default_rng(0)
    picked = np.bincount([places(rng, 8)[0] for _ in range(4000)], minlength=3) / 4000
    assert picked[2] == pytest.approx(0.5, abs=0.03)        # each file alike
    assert picked[0] == pytest.approx(0.5 * 0.8, abs=0.03)  # its slabs by their annotated voxels: 256 : 64
    assert picked[1] == pytest.approx(0.5 * 0.2, abs=0.03)


def test_a_fully_annotated_volume_draws_as_before():
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[18:22, 18:22, 18:22] = 1
    vol = TrainingVolume("t", np.zeros(labels.shape, np.float32), labels, np.argwhere(labels == 1).astype(np.int32))
    draws = {}
    for mode in ("annotation", "box"):
        places = RandomPlaces([vol], SamplingConfig(patch_size=16, patches_from=mode), 255)
        rng = np.random.default_rng(7)
        draws[mode] = [places(rng, 16) for _ in range(200)]
    assert draws["annotation"] == draws["box"]


def test_hold_out_holds_out_the_last_slabs_and_trains_on_the_others(tmp_path):
    _, _, entry = _spread(tmp_path, annotated=(20, 60, 100, 140, 170))
    cfg = config_from_dict({"model": {"levels": 2, "base_features": 2}, "data": {"volumes": [entry]},
                            "augment": {"zoom": [1.0, 1.0]}, "sampling": {"patch_size": 16}})
    train_vols, val_vols = prepare_data(cfg, progress=False)  # hold_out 0.2: the last of 5 annotated slices
    assert [v.origin[0] for v in train_vols] == [12, 52, 92, 132]
    assert [v.shape[0] for v in train_vols] == [17] * 4
    assert [v.name.rsplit("[", 1)[-1] for v in val_vols] == ["held-out slices 162..178]"]


def test_a_run_started_before_patches_from_resumes_with_the_box():
    cfg = _cfg({"image": "a.tif", "labels": "b.tif"})
    saved = cfg.to_dict()
    del saved["sampling"]["patches_from"]  # an older run's config.yaml
    assert cfg.sampling.patches_from == "annotation"
    assert adopt_old_values(saved, cfg) == ["sampling.patches_from"]
    assert cfg.sampling.patches_from == "box" and changed_keys(saved, cfg.to_dict()) == []


def test_a_resumed_run_of_before_the_change_trains_as_it_did(tmp_path):
    """End to end: a run whose config.yaml lacks patches_from, resumed with today's config (patches_from left at
    its default), ends with the weights of the same run never stopped under the box (its draw then)."""
    import yaml
    from safetensors.torch import load_file

    from tomoseg.training import train

    _, _, entry = _spread(tmp_path, shape=(96, 32, 32), annotated=(10, 50, 80))

    def cfg(name, epochs, **sampling):
        return {"output": str(tmp_path / name), "epochs": epochs, "seed": 3, "voxel_size_nm": [30, 30, 30],
                "model": {"levels": 2, "base_features": 2}, "data": {"volumes": [entry], "hold_out": 0},
                "augment": {"zoom": [1.0, 1.0]}, "optim": {"learning_rate": 0.01},
                "sampling": {"patch_size": 16, "batch_size": 2, "steps_per_epoch": 2, "validation_patches": 2,
                             **sampling}}

    with pytest.warns(TomosegWarning, match="no held-out data"):
        straight = train(cfg("straight", 2, patches_from="box"), progress=False)
        train(cfg("old", 1, patches_from="box"), progress=False)
        saved = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
        del saved["sampling"]["patches_from"]  # as a run of before the key wrote it
        (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(saved))
        resumed = train(cfg("old", 2), resume=True, progress=False)
        new = train(cfg("new", 2), progress=False)
    a, b, c = (load_file(str(run / "last.safetensors")) for run in (straight, resumed, new))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not all(np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)  # today's draw differs
