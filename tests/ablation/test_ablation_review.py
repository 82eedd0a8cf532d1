"""Held-out data and like-for-like scoring of the ablation (training review of 2026-11-27, T5, T6, T15)."""

from types import SimpleNamespace

import numpy as np
import pytest

from tomoseg.ablation import ablation_from_dict, load_ablation_config
from tomoseg.ablation.study import score
from tomoseg.errors import TomosegError
from tomoseg.io import write_volume

TRAIN = {"epochs": 1, "data": {"phantoms": {"count": 2, "shape": [32, 64, 64], "seed": 9500, "validation_count": 1}},
         "sampling": {"patch_size": 16, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 1}}


def tiny(tmp_path, train=TRAIN, **evaluation):
    return {"output": str(tmp_path / "study"), "configurations": ["2/2"], "reference": "2/2", "variants": [],
            "baselines": ["otsu"], "train": train,
            "evaluation": {"count": 2, "shape": [32, 64, 64], "presets": ["default"], **evaluation}}


def test_held_out_phantoms_overlapping_the_training_seeds_are_refused(tmp_path):
    with pytest.raises(TomosegError, match=r"^evaluation.seed 9502..9503 overlaps the training phantoms' seeds "
                                           r"9500..9502, so held-out phantoms would be training ones; set "
                                           r"evaluation.seed to 9503 or more \(or below 9499\)$"):
        ablation_from_dict(tiny(tmp_path, seed=9502))
    ablation_from_dict(tiny(tmp_path, seed=9503))
    ablation_from_dict(tiny(tmp_path, seed=9498))
    load_ablation_config("configs/ablation.yaml")  # the committed study holds out other seeds


def test_a_held_out_volume_that_is_a_training_volume_is_refused(tmp_path):
    image, labels = np.zeros((32, 32, 32), np.uint8), np.zeros((32, 32, 32), np.uint8)
    labels[10:14, 10:14, 10:14] = 1
    write_volume(str(tmp_path / "i.npy"), image)
    write_volume(str(tmp_path / "l.npy"), labels)
    pair = {"image": str(tmp_path / "i.npy"), "labels": str(tmp_path / "l.npy")}
    train = {**TRAIN, "data": {"volumes": [pair]}}
    with pytest.raises(TomosegError, match=r"^evaluation.volumes: .*i.npy is also in train.data.volumes; hold out"):
        ablation_from_dict(tiny(tmp_path, train=train, count=0, volumes=[pair]))


def test_a_per_patch_recipe_is_refused(tmp_path):
    train = {**TRAIN, "data": {**TRAIN["data"], "normalization": "patch"}}
    with pytest.raises(TomosegError, match=r"^train.data.normalization 'patch': the study's rows and the "
                                           r"random-forest baseline are whole-volume z-scored; remove the key"):
        ablation_from_dict(tiny(tmp_path, train=train, seed=9600))


def test_every_row_is_scored_inside_the_sample():
    labels = np.zeros((16, 32, 32), np.uint8)
    labels[4:8, 4:8, 4:8] = 1
    pillar = np.zeros(labels.shape, bool)
    pillar[:, :, :16] = True
    ph = SimpleNamespace(labels=labels, pillar=pillar)
    prob = np.where(labels == 1, 250, 0).astype(np.uint8)
    prob[4:8, 4:8, 22:26] = 250  # an object outside the sample
    inside = score([prob], [ph])
    assert inside["precision"] == 1.0 and inside["object_precision"] == 1.0
    assert inside == score([np.where(pillar, prob, 0).astype(np.uint8)], [ph])
