import numpy as np
import pytest
from scipy import ndimage

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.metrics import best_threshold
from tomoseg.synthetic import PRESETS, make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((64, 256, 256), rng=7)


def test_same_seed_same_volume():
    a = make_phantom((24, 96, 96), rng=3)
    b = make_phantom((24, 96, 96), rng=3)
    c = make_phantom((24, 96, 96), rng=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_same_seed_gives_byte_identical_files(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        assert main(["phantom", str(tmp_path / d / "img.tif"), "--labels", str(tmp_path / d / "lab.tif"),
                     "--objects", str(tmp_path / d / "obj.csv"), "--shape", "24", "96", "96", "--seed", "5"]) == 0
    for name in ("img.tif", "lab.tif", "obj.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_object_fraction_and_radius_distribution(phantom):
    frac = phantom.labels.mean()
    assert 0.001 <= frac <= 0.005  # objects are 0.1-0.5 % of the volume
    r = phantom.objects["equivalent_radius_vox"]
    assert len(r) >= 40
    assert r.min() >= 1.0 and np.percentile(r, 95) <= 8.0
    assert 2.8 <= r.mean() <= 3.9  # paper's Table 1: 3.34
    assert 0.7 <= r.std() <= 1.6  # paper's Table 1: 1.06


def test_labels_agree_with_objects_table(phantom):
    table = phantom.objects
    labelled, n = ndimage.label(phantom.labels, structure=np.ones((3, 3, 3)))
    assert n == np.count_nonzero(table["label_voxels"])  # separate objects never merge
    counts = np.bincount(phantom.instances.ravel())[1:]
    np.testing.assert_array_equal(counts, table["label_voxels"])
    big = table["equivalent_radius_vox"] >= 3
    rel = np.abs(table["label_voxels"][big] - table["volume_vox"][big]) / table["volume_vox"][big]
    assert rel.max() < 0.08 and rel.mean() < 0.03
    # the true centres are the centroids of the labels
    centroids = ndimage.center_of_mass(phantom.labels, phantom.instances, table["label"][big])
    truth = np.stack([table["centroid_z"], table["centroid_y"], table["centroid_x"]], 1)[big]
    assert np.abs(np.asarray(centroids) - truth).max() < 0.5


def test_no_object_outside_the_pillar(phantom):
    assert not np.any(phantom.labels[~phantom.pillar])


def test_gray_values_follow_the_paper(phantom):
    img, lab, pil = phantom.image, phantom.labels.astype(bool), phantom.pillar
    matrix = img[pil & ~lab]
    assert 150 <= np.median(matrix) <= 200
    assert np.percentile(matrix, 5) >= 110 and np.percentile(matrix, 95) <= 235
    yy, xx = np.mgrid[: img.shape[1], : img.shape[2]]
    outside = np.hypot(yy - (img.shape[1] - 1) / 2, xx - (img.shape[2] - 1) / 2) > img.shape[1] / 2
    assert np.all(img[:, outside] == 34)  # constant outside the reconstruction circle
    env = img[:, ~outside & ~pil[0]]
    env = env[env != 34]
    assert np.median(env) < 75
    objects = img[lab]
    assert np.median(objects) < np.median(matrix)
    # overlap: many object voxels are brighter than the darkest matrix voxels
    assert np.mean(objects > np.percentile(matrix, 5)) > 0.1


def test_small_objects_look_brighter(phantom):
    """Partial volume: the paper's Fig. 6 finds small objects brighter than large ones."""
    means = ndimage.mean(phantom.image, phantom.instances, phantom.objects["label"])
    r = phantom.objects["equivalent_radius_vox"]
    small, large = means[r < 2.5], means[r > 4]
    assert len(small) and len(large)
    assert np.mean(small) > np.mean(large) + 5


def test_one_threshold_fails_on_the_default_preset(phantom):
    best = best_threshold(phantom.image, phantom.labels, mask=phantom.pillar)
    assert best["f1"] < 0.7


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"physics"}))
def test_every_preset_generates(name):
    ph = make_phantom((24, 128, 128), rng=1, preset_name=name)
    assert ph.image.shape == (24, 128, 128) and ph.labels.any()


@pytest.mark.slow
def test_physics_mode_reconstructs_a_pillar():
    ph = make_phantom((24, 96, 96), rng=2, preset_name="physics")
    matrix = ph.image[ph.pillar & (ph.labels == 0)]
    assert 140 <= np.median(matrix) <= 210
    assert best_threshold(ph.image, ph.labels, mask=ph.pillar)["f1"] < 0.95


@pytest.mark.parametrize("shape,kwargs,match", [
    ((0, 64, 64), {}, "positive"),
    ((16, -4, 64), {}, "positive"),
    ((16, 64), {}, "three"),
    ((20, 64, 64), {"radius_max": 12.0, "large_radius_max": 12.0, "radius_mean": 11.0, "radius_min": 11.0},
     "too small"),
    ((16, 64, 64), {"object_fraction": 0.6}, "50 %"),
    ((16, 64, 64), {"noise_sd": -1.0}, "noise_sd"),
    ((16, 64, 64), {"no_such": 1}, "unknown phantom parameter"),
])
def test_bad_parameters_fail_before_work(shape, kwargs, match):
    with pytest.raises(TomosegError, match=match):
        make_phantom(shape, rng=0, **kwargs)


def test_unknown_preset():
    with pytest.raises(TomosegError, match="unknown phantom preset"):
        make_phantom((16, 64, 64), rng=0, preset_name="nope")
