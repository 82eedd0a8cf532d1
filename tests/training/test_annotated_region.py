"""Training pairs keep the annotated region of a large scan (random mode): a scan annotated on a few slices or one
box trains from that box and the context a patch needs, normalized with the whole file's statistics; pairs that
would not fit in memory are refused before they are read, saying what to do."""

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import write_volume
from tomoseg.training import config_from_dict, prepare_data
from tomoseg.training.config import DataConfig
from tomoseg.training.data import _grown, annotated_box, load_pairs


def _files(tmp_path, shape=(60, 80, 90), box=(slice(20, 24), slice(30, 40), slice(50, 60))):
    rng = np.random.default_rng(0)
    image = rng.normal(1000, 50, shape).astype(np.float32)
    image[:10] += 500   # the file's statistics differ from the annotated region's
    labels = np.full(shape, 255, np.uint8)
    labels[box] = 0
    labels[21, 33:35, 52:54] = 1
    write_volume(tmp_path / "img.tif", image)
    write_volume(tmp_path / "lab.h5", labels, chunks=(8, 16, 16))
    return image, labels, {"image": str(tmp_path / "img.tif"), "labels": str(tmp_path / "lab.h5")}


def test_only_the_annotated_box_and_its_context_are_kept_normalized_as_the_whole_file(tmp_path):
    image, labels, entry = _files(tmp_path)
    (vol,) = load_pairs([entry], DataConfig(), context=8)
    box = (slice(12, 32), slice(22, 48), slice(42, 68))  # the annotated box grown by 8 on every side
    assert vol.origin == (12, 22, 42) and vol.shape == (20, 26, 26)
    assert vol.name == f"{entry['image']} [annotated region 12:32,22:48,42:68]"
    np.testing.assert_array_equal(vol.labels, labels[box])
    expected = (image[box].astype(np.float64) - image.mean(dtype=np.float64)) / image.std(dtype=np.float64)
    np.testing.assert_allclose(vol.image, expected, atol=1e-4)
    (whole,) = load_pairs([entry], DataConfig(), context=None)  # paper mode: the whole volume
    assert whole.shape == image.shape and whole.origin == (0, 0, 0) and whole.name == entry["image"]
    np.testing.assert_allclose(whole.image[box], vol.image, atol=1e-6)


def test_random_mode_trains_on_the_region_and_paper_mode_on_the_whole_volume(tmp_path):
    _, _, entry = _files(tmp_path)
    base = {"model": {"levels": 2, "base_features": 2}, "data": {"volumes": [entry], "hold_out": 0},
            "augment": {"zoom": [1.0, 1.3]}, "sampling": {"patch_size": 16}}
    train, _ = prepare_data(config_from_dict(base), progress=False)
    assert train[0].shape == (20, 26, 26)  # context 8: half a patch (zooms above 1 crop less than a patch)
    base["augment"]["zoom"] = [0.5, 1.0]  # crops of up to 32 voxels zoomed to 16: context 16
    train, _ = prepare_data(config_from_dict(base), progress=False)
    assert train[0].shape == (36, 42, 42) and train[0].origin == (4, 14, 34)
    base["sampling"]["mode"] = "paper"
    train, _ = prepare_data(config_from_dict(base), progress=False)
    assert train[0].shape == (60, 80, 90)


def test_pairs_that_do_not_fit_in_memory_are_refused_before_they_are_read(tmp_path, monkeypatch):
    import psutil

    import tomoseg.training.data as data_module

    _, _, entry = _files(tmp_path)

    class Little:
        available = 100_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    monkeypatch.setattr(data_module, "volume_stats", lambda *a, **k: pytest.fail("read before refusing"))
    with pytest.raises(TomosegError, match=r"the training pairs need about 0\.0 GiB in memory and 0\.0 GiB are "
                                           r"available; the largest, .*img.tif, keeps only its annotated region "
                                           r"\(20 x 26 x 26 voxels.*the annotation is sparse already"):
        load_pairs([entry], DataConfig(), context=8)


def test_image_and_labels_of_other_shapes_are_refused_before_reading(tmp_path):
    _, _, entry = _files(tmp_path)
    write_volume(tmp_path / "small.h5", np.zeros((5, 6, 7), np.uint8))
    with pytest.raises(TomosegError, match=r"img.tif: image \(60, 80, 90\) and labels \(5, 6, 7\) differ in shape"):
        load_pairs([{**entry, "labels": str(tmp_path / "small.h5")}], DataConfig(), context=8)


def test_grown_box_stays_inside_the_volume_and_reaches_twice_the_context():
    assert _grown((slice(0, 1), slice(5, 6), slice(98, 100)), (100, 100, 100), 8) == (
        slice(0, 16), slice(0, 16), slice(84, 100))
    assert _grown((slice(10, 11),) * 3, (12, 12, 12), 8) == (slice(0, 12),) * 3  # smaller than 16: all of it
    assert _grown(None, (4, 4, 4), 8) is None
    assert annotated_box(np.full((3, 3, 3), 255, np.uint8), 255) is None
