"""The tensor data path of training: augmentation keeps labels aligned, ignore survives, budgets, pool cache."""

import time

import numpy as np
import pytest
import torch

from tomoseg.table import read_csv
from tomoseg.training import train
from tomoseg.training.augment import augment_batch, zoom_to
from tomoseg.training.config import AugmentConfig, DataConfig, PhantomData, PhysicsPool
from tomoseg.training.data import generate_pool, phantom_specs, phantom_volumes
from tomoseg.training.sampling import PatchSource

from test_training import tiny  # the training tests' tiny config (tests/training is on sys.path)




def _ball_batch(n=6, p=32):
    """Images whose bright ball is exactly the label-1 voxels; an ignore slab in one corner."""
    zz, yy, xx = np.mgrid[0:p, 0:p, 0:p]
    labels = np.zeros((n, 1, p, p, p), np.uint8)
    for k in range(n):
        c = (8 + 2 * k, 12, 20 - k)  # off-centre, so every flip and rotation moves it
        labels[k, 0][(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 16] = 1
    labels[:, :, :4, :6, :8] = 255
    image = np.where(labels == 1, 10.0, 0.0).astype(np.float32)
    image[labels == 255] = -3.0
    return torch.from_numpy(image), torch.from_numpy(labels)


def test_flips_and_rotations_keep_every_label_on_its_voxels():
    image, labels = _ball_batch()
    cfg = AugmentConfig(flips=True, rot90=True, zoom=[1.0, 1.0], intensity_scale=0, intensity_shift=0, noise=0)
    moved = 0
    for seed in range(6):
        x, y = augment_batch(image.clone(), labels.clone(), cfg, np.random.default_rng(seed), torch.Generator())
        assert torch.equal(x == 10.0, y == 1)
        assert torch.equal(x == -3.0, y == 255)  # the ignore value travels with its voxels
        assert torch.equal(y.sum(dim=(1, 2, 3, 4)), labels.sum(dim=(1, 2, 3, 4)))
        moved += int(not torch.equal(y, labels))
    assert moved >= 5


def test_zoom_keeps_labels_on_the_zoomed_ball_and_only_their_values():
    image, labels = _ball_batch(1, 24)
    x, y = zoom_to(image[0, 0], labels[0, 0], 32)
    assert x.shape == y.shape == (32, 32, 32) and y.dtype == torch.uint8
    assert set(torch.unique(y).tolist()) <= {0, 1, 255}
    ball, lab = (x > 5).numpy(), (y == 1).numpy()
    iou = (ball & lab).sum() / (ball | lab).sum()
    assert iou > 0.85
    ratio = lab.sum() / (labels[0, 0] == 1).sum().item()
    assert ratio == pytest.approx((32 / 24) ** 3, rel=0.15)


def test_intensity_and_noise_change_images_not_labels():
    image, labels = _ball_batch()
    cfg = AugmentConfig(flips=False, rot90=False, intensity_scale=0.2, intensity_shift=0.2, noise=0.3)
    x, y = augment_batch(image.clone(), labels.clone(), cfg, np.random.default_rng(0), torch.Generator())
    assert torch.equal(y, labels)
    assert not torch.equal(x, image)


def test_patch_source_batches_on_cpu_are_reproducible_and_hold_objects():
    data = DataConfig(phantoms=PhantomData(count=1, shape=[32, 64, 64], validation_count=0, seed=5))
    vols = phantom_volumes(data.phantoms, data)
    from tomoseg.training.config import SamplingConfig

    sampling = SamplingConfig(patch_size=32, batch_size=4, foreground_fraction=1.0)
    a = PatchSource(vols, sampling, AugmentConfig(), 255, seed=1).batch(np.random.default_rng(2))
    b = PatchSource(vols, sampling, AugmentConfig(), 255, seed=1).batch(np.random.default_rng(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (4, 1, 32, 32, 32) and a[0].dtype == torch.float32
    assert all(int(a[1][k].eq(1).sum()) > 0 for k in range(4))  # object-centred patches hold objects


def test_a_time_budget_ends_the_run_on_time(tmp_path):
    t0 = time.perf_counter()
    run = train(tiny(tmp_path, epochs=1000, max_minutes=0.01), progress=False)  # 0.6 s of steps
    elapsed = time.perf_counter() - t0
    metrics = read_csv(run / "metrics.csv")
    assert metrics["step"][-1] < 1000 * 3
    assert elapsed < 30


def test_physics_phantoms_join_the_pool_and_are_generated_once_per_seed(tmp_path):
    spec = PhantomData(count=1, shape=[24, 64, 64], validation_count=0, seed=7,
                       physics=PhysicsPool(count=2, angles=[40, 60], photons=[500, 1000]))
    items = phantom_specs(spec, validation=False)
    assert [it["preset"] for it in items] == ["default", "physics", "physics"]
    assert len({it["seed"] for it in items}) == 3
    first, stats1 = generate_pool(items, cache_dir=tmp_path / "cache", workers=1)
    again, stats2 = generate_pool(items, cache_dir=tmp_path / "cache", workers=1)
    assert stats1 == {"generated": 3, "cached": 0} and stats2 == {"generated": 0, "cached": 3}
    for (i1, l1), (i2, l2) in zip(first, again):
        assert np.array_equal(i1, i2) and np.array_equal(l1, l2)
    assert not np.array_equal(first[1][0], first[2][0])  # randomized acquisition per volume


@pytest.mark.slow
def test_the_pool_in_processes_longest_first_gives_the_serial_phantoms_in_order(tmp_path):
    """Training and validation phantoms come from one process pool, physics ones submitted first; every phantom
    depends on its own seed only, so the volumes equal those generated one by one, in the config's order."""
    from tomoseg.training.data import phantom_volume_sets

    spec = PhantomData(count=2, validation_count=1, shape=[32, 128, 128], seed=11, cache_dir=None,
                       physics=PhysicsPool(count=1, validation_count=1, angles=[30, 40], photons=[500, 1000]))
    items = phantom_specs(spec, validation=False) + phantom_specs(spec, validation=True)
    assert [it["physics"] is not None for it in items] == [False, False, True, False, True]  # presets first here
    serial, _ = generate_pool(items, workers=1)
    pooled, stats = generate_pool(items, workers=2)  # 2 physics x 524k voxels x 30: worth processes
    assert stats == {"generated": 5, "cached": 0}
    for (a, la), (b, lb) in zip(serial, pooled):
        assert np.array_equal(a, b) and np.array_equal(la, lb)
    train_vols, val_vols = phantom_volume_sets(spec, DataConfig())
    alone = phantom_volumes(spec, DataConfig()), phantom_volumes(spec, DataConfig(), validation=True)
    assert [len(train_vols), len(val_vols)] == [3, 2]
    for together, separately in zip((train_vols, val_vols), alone):
        for u, v in zip(together, separately):
            assert u.name == v.name and np.array_equal(u.image, v.image) and np.array_equal(u.labels, v.labels)


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path):
    from tomoseg.errors import TomosegError

    train(tiny(tmp_path, epochs=1), progress=False)
    changed = tiny(tmp_path, epochs=2)
    changed["optim"] = {"learning_rate": 0.02}
    with pytest.raises(TomosegError, match="optim.learning_rate"):
        train(changed, resume=True, progress=False)


def test_whole_volume_validation_scores_whole_volumes_and_picks_the_checkpoint(tmp_path):
    import tomoseg
    from tomoseg.inference import BackendConfig, predict
    from tomoseg.inference.normalization import Stats
    from tomoseg.training import config_from_dict, prepare_data

    cfg = tiny(tmp_path, epochs=2, sampling={"patch_size": 32, "batch_size": 2, "steps_per_epoch": 3,
                                             "validation_patches": 2, "validation": "volumes"})
    run = train(cfg, progress=False)
    metrics = read_csv(run / "metrics.csv")
    val = prepare_data(config_from_dict(tiny(tmp_path, "unused")))[1][0]
    known = int(np.count_nonzero(val.labels != 255))
    assert all(tp + tn + fp + fn == known for tp, tn, fp, fn in
               zip(metrics["tp"], metrics["tn"], metrics["fp"], metrics["fn"]))  # every voxel of the volume
    last = tomoseg.load_model(run / "last.safetensors")
    prob = predict(val.image, last, backend=BackendConfig(backend="torch", device="cpu"),
                   stats=Stats(mean=0.0, std=1.0, voxels=int(val.image.size), method="full"))
    tp = int(np.count_nonzero((np.rint(prob * 255) > 127) & (val.labels == 1)))
    assert tp == metrics["tp"][-1]
    # the calibration: the threshold whose voxel F1 is best, recorded per epoch and in the model
    from tomoseg.training.validation import THRESHOLDS

    assert set(metrics["best_threshold"]) <= set(THRESHOLDS)
    assert last.metadata["training"]["validation"]["best_threshold"] == metrics["best_threshold"][-1]


def test_best_threshold_prefers_the_higher_f1_then_the_one_nearest_127():
    from tomoseg.metrics import ConfusionMatrix
    from tomoseg.training.validation import VolumeScore

    cm = ConfusionMatrix()
    assert VolumeScore(cm, {31: 0.5, 127: 0.4, 191: 0.3}).best_threshold == 31
    assert VolumeScore(cm, {31: 0.5, 95: 0.5, 159: 0.5}).best_threshold == 95  # a tie: nearest to 127
    assert VolumeScore(cm, {95: 0.5, 159: 0.5}).best_threshold in (95, 159)


def test_centring_on_objects_draws_every_object_alike_and_voxels_by_size():
    from tomoseg.training.config import SamplingConfig
    from tomoseg.training.data import TrainingVolume
    from tomoseg.training.sampling import RandomPlaces

    labels = np.zeros((40, 40, 40), np.uint8)
    zz, yy, xx = np.mgrid[:40, :40, :40]
    labels[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 1   # one ball of radius 8 (2,109 voxels)
    small = [(3, 3, 3), (3, 3, 36), (3, 36, 3), (36, 3, 3), (36, 36, 36), (3, 36, 36), (36, 3, 36), (36, 36, 3)]
    for z, y, x in small:
        labels[z:z + 2, y:y + 2, x] = 1                                  # eight objects of 4 voxels
    labels[3, 5, 4] = 1                                                  # 26-connected to the first: same object
    vol = TrainingVolume("t", np.zeros(labels.shape, np.float32), labels, np.argwhere(labels == 1).astype(np.int32))
    order, starts = vol.objects
    assert len(starts) - 1 == 9 and starts[-1] == len(vol.foreground)
    sizes = sorted(np.diff(starts).tolist())
    assert sizes == [4] * 7 + [5, 2109]
    for k in range(9):  # each object's voxels form one component
        pts = vol.foreground[order[starts[k]:starts[k + 1]]]
        assert len(np.unique(labels[tuple(pts.T)])) == 1

    def share_on_ball(centre_on):
        places = RandomPlaces([vol], SamplingConfig(patch_size=16, foreground_fraction=1.0, centre_on=centre_on))
        rng = np.random.default_rng(0)
        hits = [np.sum((places._centre(rng, 0) - 20) ** 2) <= 64 for _ in range(3000)]
        return float(np.mean(hits))

    assert share_on_ball("voxels") > 0.97          # 2109 of 2142 object voxels
    assert 0.08 < share_on_ball("objects") < 0.15  # 1 of 9 objects
    with pytest.raises(Exception, match="centre_on"):
        SamplingConfig(centre_on="blobs")


def test_faded_ends_darken_and_flatten_end_slices_and_clear_their_labels():
    from tomoseg.synthetic import make_phantom
    from tomoseg.training.data import fade_ends

    ph = make_phantom((48, 96, 96), rng=3, object_fraction=0.01)
    image, labels = fade_ends(ph.image, ph.labels, np.random.default_rng(1), ignore_value=255)
    assert image.dtype == ph.image.dtype and image.shape == ph.image.shape
    changed = [z for z in range(48) if not np.array_equal(image[z], ph.image[z])]
    assert changed and all(z < 16 or z >= 32 for z in changed)       # only end slices, at most 16 each
    end = 0 if 0 in changed else 47
    assert image[end].std() < 0.25 * ph.image[end].std()              # flat
    assert image[end].mean() < 0.7 * np.median(ph.image[24])           # darker than the matrix
    assert not (labels[end] == 1).any()                               # nothing to find there
    assert set(np.unique(labels).tolist()) <= {0, 1, 255}
    middle = [z for z in range(48) if z not in changed]
    assert np.array_equal(labels[middle], ph.labels[middle]) and np.array_equal(image[middle], ph.image[middle])


def test_faded_ends_pick_volumes_by_seed(tmp_path):
    spec = dict(count=4, shape=[32, 64, 64], validation_count=0, seed=11, cache_dir=str(tmp_path))
    plain = phantom_volumes(PhantomData(**spec), DataConfig())
    faded = phantom_volumes(PhantomData(**spec, faded_ends=1.0), DataConfig())
    again = phantom_volumes(PhantomData(**spec, faded_ends=1.0), DataConfig())
    for a, b, c in zip(plain, faded, again):
        assert not np.array_equal(a.image, b.image) and np.array_equal(b.image, c.image)
        assert not ((b.labels[0] == 1).any() and (b.labels[-1] == 1).any())  # one end at least is cleared


def test_a_run_records_how_long_its_data_took(tmp_path):
    from tomoseg.checkpoint import read_metadata

    run = train(tiny(tmp_path), progress=False)
    setup = read_metadata(run / "best.safetensors")["setup"]
    assert setup["volumes"] >= 1 and setup["data_s"] >= 0 and setup["device_s"] >= 0
