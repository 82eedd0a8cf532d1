"""Crops and zoom (training review of 2026-11-27, T9, T13)."""

import numpy as np

from tomoseg.training.augment import crop_size
from tomoseg.training.config import AugmentConfig, SamplingConfig
from tomoseg.training.data import TrainingVolume
from tomoseg.training.sampling import PaperGrid, PatchSource


def test_paper_mode_zoom_out_crops_stay_inside_the_training_slices_and_the_volume():
    image = np.broadcast_to(np.arange(80, dtype=np.float32)[:, None, None], (80, 64, 64)).copy()
    labels = np.zeros(image.shape, np.uint8)
    labels[:, 30:34, 30:34] = 1
    vol = TrainingVolume("z", image, labels, np.argwhere(labels == 1).astype(np.int32))
    sampling = SamplingConfig(mode="paper", patch_size=16, batch_size=4)
    augment = AugmentConfig(flips=False, rot90=False, zoom=[0.5, 0.55], zoom_probability=1.0, intensity_scale=0,
                            intensity_shift=0, noise=0)
    grid, rng = PaperGrid([vol], sampling), np.random.default_rng(0)
    for _ in range(100):
        i, starts, size = grid(rng, crop_size(16, augment, rng))
        assert size in (29, 30, 31, 32)
        assert all(lo <= s and s + size <= hi for s, (lo, hi) in zip(starts, ((0, 48), (0, 64), (0, 64))))
    source = PatchSource([vol], sampling, augment, 255, device="cpu")
    seen = max(float(source.batch(np.random.default_rng(k))[0].max()) for k in range(20))
    assert seen <= 47  # training slices only: 0..47 of 80


def test_a_fixed_zoom_factor_zooms():
    rng = np.random.default_rng(0)
    sizes = {crop_size(64, AugmentConfig(zoom=[1.3, 1.3], zoom_probability=1.0), rng) for _ in range(20)}
    assert sizes == {49}
    assert {crop_size(64, AugmentConfig(zoom=[1.0, 1.0], zoom_probability=1.0), rng) for _ in range(5)} == {64}
