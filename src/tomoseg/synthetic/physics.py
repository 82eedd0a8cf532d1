"""Physics mode: each slice is forward-projected, given Poisson noise and detector-gain errors in the
sinogram, and reconstructed by filtered back-projection (scikit-image's radon/iradon)."""

from __future__ import annotations

import numpy as np
from skimage.transform import iradon, radon

from .config import PhantomConfig

# attenuation per voxel (not per width) for one gray level: the line integral through the pillar grows with the
# width, 2.3 at 256 wide (10 % transmitted) and 9.3 at 1024 (9e-5: photon-starved, cupped), so the same
# `photons` means different noise at different sizes. Kept as it is (v3's training data; docs/phantoms.md P5)
_MU_PER_GRAY = 0.02 / 255


def forward_and_reconstruct(image: np.ndarray, cfg: PhantomConfig, rng: np.random.Generator) -> np.ndarray:
    Z, Y, X = image.shape
    side = min(Y, X)
    n_angles = cfg.angles or side
    theta = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    y0, x0 = (Y - side) // 2, (X - side) // 2
    out = np.full(image.shape, cfg.outside_gray, np.float32)
    gains = None
    yy, xx = np.mgrid[0:side, 0:side]
    disc = np.hypot(yy - side // 2, xx - side // 2) < side // 2 - 1  # zero outside, as radon(circle=True) needs
    for z in range(Z):
        sl = image[z, y0:y0 + side, x0:x0 + side]
        mu = np.where(disc, (sl - cfg.outside_gray) * _MU_PER_GRAY, 0.0)
        sino = radon(mu, theta=theta, circle=True)  # (detector, angle)
        if gains is None:
            gains = 1 + rng.normal(0, cfg.gain_error, (sino.shape[0], 1))
        counts = rng.poisson(cfg.photons * np.exp(-sino) * gains).astype(np.float64)
        sino_noisy = -np.log(np.maximum(counts, 1.0) / cfg.photons)
        rec = iradon(sino_noisy, theta=theta, circle=True, filter_name="ramp")
        out[z, y0:y0 + side, x0:x0 + side] = np.where(disc, rec / _MU_PER_GRAY + cfg.outside_gray, cfg.outside_gray)
    return out
