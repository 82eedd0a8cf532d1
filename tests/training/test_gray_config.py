"""data.objects and data.fill_value: training normalizes user volumes as segment does (review G1, G2)."""

import numpy as np
import pytest

from tomoseg.synthetic import make_phantom
from tomoseg.training.config import DataConfig
from tomoseg.training.data import load_pairs


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    ph = make_phantom((24, 48, 48), rng=2)
    np.save(folder / "image.npy", ph.image)
    np.save(folder / "inverted.npy", 255 - ph.image)
    np.save(folder / "labels.npy", (ph.labels > 0).astype(np.uint8))
    return folder, ph


def test_bright_objects_train_as_the_dark_original(pair):
    folder, _ = pair
    dark = load_pairs([{"image": str(folder / "image.npy"), "labels": str(folder / "labels.npy")}],
                      DataConfig(hold_out=0))[0]
    bright = load_pairs([{"image": str(folder / "inverted.npy"), "labels": str(folder / "labels.npy")}],
                        DataConfig(hold_out=0, objects="bright"))[0]
    assert np.abs(bright.image - dark.image).max() < 1e-5


def test_a_fill_value_is_no_data_in_training(pair):
    folder, ph = pair
    image = ph.image.astype(np.int16) * 10 - 1000
    image[:, :5, :] = -32768
    np.save(folder / "filled.npy", image)
    vol = load_pairs([{"image": str(folder / "filled.npy"), "labels": str(folder / "labels.npy")}],
                     DataConfig(hold_out=0, fill_value=-32768))[0]
    inside = image[:, 5:, :].astype(np.float64)
    assert np.all(vol.image[:, :5, :] == 0)
    expected = (inside - inside.mean()) / inside.std()
    assert np.abs(vol.image[:, 5:, :] - np.clip(expected, -10, 10)).max() < 1e-5


def test_the_model_records_its_objects_and_segment_defaults_to_them():
    """Models trained before the key record none: dark (the shipped one)."""
    from tomoseg.inference.normalization import model_objects
    from tomoseg.training.config import config_from_dict
    from tomoseg.training.loop import _model_metadata

    cfg = config_from_dict({"output": "unused", "data": {"phantoms": {"count": 1}, "objects": "bright"}})
    meta = _model_metadata(cfg, [])
    assert meta["normalization"]["objects"] == "bright"

    class Model:
        metadata = meta
    assert model_objects(Model()) == "bright"
    Model.metadata = {"normalization": {"method": "zscore", "scope": "whole-volume"}}
    assert model_objects(Model()) == "dark"
    with pytest.raises(Exception, match="data.objects 'light' must be dark or bright"):
        DataConfig(objects="light")


def test_voxels_without_data_are_not_trained_on(pair):
    """No-data voxels (NaN, the fill value) are normalized to 0 and given probability 0 by segment; in training
    their labels still counted (background, or an object painted across the edge of the reconstruction): they
    are now not annotated (data.ignore_value), so the loss leaves them out."""
    folder, ph = pair
    image = ph.image.astype(np.float32)
    image[:, :5, :] = np.nan
    image[:, -3:, :] = -1.0
    np.save(folder / "holes.npy", image)
    labels = np.load(folder / "labels.npy")
    vol = load_pairs([{"image": str(folder / "holes.npy"), "labels": str(folder / "labels.npy")}],
                     DataConfig(hold_out=0, fill_value=-1.0))[0]
    assert np.all(vol.labels[:, :5, :] == 255) and np.all(vol.labels[:, -3:, :] == 255)
    assert np.array_equal(vol.labels[:, 5:-3, :], labels[:, 5:-3, :])
