"""``predict`` called from Python normalizes as ``segment`` does (review api.md A2) and refuses wrong inputs with
a TomosegError naming the argument (A7)."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.inference import predict
from tomoseg.inference.normalization import volume_stats
from tomoseg.synthetic import make_phantom


@pytest.fixture(scope="module")
def image():
    return make_phantom((24, 64, 64), rng=5).image


@pytest.fixture(scope="module")
def bright_model(random_model_path, tmp_path_factory):
    """The random model, its metadata saying it was trained for bright objects (a model fine-tuned with
    data.objects: bright)."""
    model = tomoseg.load_model(random_model_path)
    meta = dict(model.metadata)
    meta["normalization"] = {**meta.get("normalization", {}), "objects": "bright"}
    path = tmp_path_factory.mktemp("bright") / "bright.safetensors"
    tomoseg.save_model(model, path, meta)
    return path


def test_predict_follows_a_model_trained_for_bright_objects(image, random_model_path, bright_model):
    """A2: predict z-scored every image for dark objects, so a bright-object model found 24 mask voxels where
    segment found 1747. Now the model's objects are the default, and ``objects=`` chooses."""
    dark = predict(image, model=random_model_path)
    inverted = (255 - image).astype(np.uint8)
    np.testing.assert_allclose(predict(inverted, model=bright_model), dark, atol=2e-6)
    np.testing.assert_allclose(predict(inverted, model=random_model_path, objects="bright"), dark, atol=2e-6)
    np.testing.assert_allclose(predict(image, model=bright_model, objects="dark"), dark, atol=2e-6)
    with pytest.raises(TomosegError, match="objects 'grey' must be dark or bright"):
        predict(image, model=random_model_path, objects="grey")
    with pytest.raises(TomosegError, match="contradict"):
        predict(image, model=random_model_path, stats=volume_stats(image), objects="bright")


def test_predict_leaves_the_fill_value_out(image, random_model_path):
    """A2: predict had no fill_value: a fill ring entered the statistics. With it the ring reads probability 0
    and the rest is normalized as without the ring."""
    scan = image.astype(np.int16)
    scan[:, :, :4] = -1000
    p = predict(scan, model=random_model_path, fill_value=-1000)
    assert p[:, :, :4].max() == 0.0
    assert volume_stats(scan, fill=-1000).nodata == 24 * 64 * 4
    with pytest.raises(TomosegError, match="give a finite gray value"):
        predict(scan, model=random_model_path, fill_value=float("nan"))


def test_predict_takes_a_volume_and_names_wrong_arguments(image, random_model_path, tmp_path):
    """A7: predict(Volume) said "got shape ()"; an empty image gave AttributeError deep in the normalization,
    a complex one ran on its real part, model=123 and stats={...} gave AttributeErrors; segment(ndarray, path)
    gave OSError "File name too long"."""
    np.save(tmp_path / "image.npy", image)
    expected = predict(image, model=random_model_path)
    with tomoseg.open_volume(tmp_path / "image.npy") as vol:
        np.testing.assert_array_equal(predict(vol, model=random_model_path), expected)
    for kwargs, words in (
            (dict(image=str(tmp_path / "image.npy")), "is a path; this function takes an array"),
            (dict(image=image[:0]), "image is empty (shape (0, 64, 64))"),
            (dict(image=image.astype(np.complex64)), "image: holds complex values"),
            (dict(image=image, model=123), "model: give a model file's path, a model (tomoseg.load_model) or None"),
            (dict(image=image, stats={"mean": 1, "std": 2}), "stats: give a Stats")):
        kwargs.setdefault("model", random_model_path)
        with pytest.raises(TomosegError) as err:
            predict(**kwargs)
        assert words in str(err.value)
    with pytest.raises(TomosegError, match="input: segment reads and writes files: give a path, not a ndarray"):
        tomoseg.segment(image, tmp_path / "out.zarr")
    with pytest.raises(TomosegError, match="options: give a SegmentOptions, not a dict"):
        tomoseg.segment(tmp_path / "image.npy", tmp_path / "out.zarr", options={"threshold": 127})
    assert not (tmp_path / "out.zarr").exists()


def test_segment_options_check_their_voxel_size():
    """A3's leftover: SegmentOptions(voxel_size=...) was checked only when segment opened the volume; a negative
    or scalar size is now refused when the options are made, as --voxel-size is, and an implausible one warned
    about once."""
    import warnings

    import pytest

    from tomoseg.errors import TomosegError, TomosegWarning
    from tomoseg.inference import SegmentOptions

    for bad in [(-29.33, 29.33, 29.33), (0, 0, 0), 29.33, (29.33, 29.33)]:
        with pytest.raises(TomosegError, match="voxel"):
            SegmentOptions(voxel_size=bad)
    with pytest.warns(TomosegWarning, match="implausible"):
        options = SegmentOptions(voxel_size=(0.02933,) * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import dataclasses

        dataclasses.replace(options, threshold=100)  # checked once: no second warning
    assert tuple(SegmentOptions(voxel_size=[29.33, 29.33, 29.33]).voxel_size) == (29.33,) * 3
