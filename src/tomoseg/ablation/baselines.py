"""Classical baselines the paper argues against, and one stronger classical recipe.

- ``otsu``: Otsu's threshold of the gray values inside the sample; objects are the darker side (the brighter
  one where the recipe's ``data.objects`` is bright: the user's volumes; phantoms have dark objects).
- ``best-threshold``: the single gray threshold with the best voxel F1 inside the sample, chosen
  knowing the labels (an upper bound for any one global threshold; no user has it).
- ``random-forest``: a pixel classifier as ilastik trains one: a random forest on Gaussian filter
  responses at several scales, trained on voxels sampled from the same training volumes as the networks.

Every function takes the image (and the sample mask) and returns a boolean mask.
"""

from __future__ import annotations

import numpy as np

from ..metrics import best_threshold

SIGMAS = (0.7, 1.0, 1.6, 3.5)   # ilastik's default scales


def otsu_mask(image: np.ndarray, sample: np.ndarray, *, objects: str = "dark") -> np.ndarray:
    """Otsu's threshold of the gray values inside ``sample``; objects on the ``objects`` (dark or bright) side."""
    from skimage.filters import threshold_otsu

    t = threshold_otsu(image[sample])
    return ((image <= t) if objects == "dark" else (image > t)) & sample


def best_threshold_mask(image: np.ndarray, sample: np.ndarray, labels: np.ndarray, *,
                        objects: str = "dark") -> np.ndarray:
    """The single threshold with the best voxel F1 inside ``sample`` (knowing ``labels``), objects on the
    ``objects`` (dark or bright) side."""
    dark = objects == "dark"
    t = best_threshold(image, labels, mask=sample, dark_objects=dark)["threshold"]
    return ((image <= t) if dark else (image >= t)) & sample


def filter_features(image: np.ndarray) -> np.ndarray:
    """Per-voxel features (last axis): the gray value, and per scale the Gaussian smoothing,
    Laplacian of Gaussian, gradient magnitude and difference of Gaussians. float32, (z, y, x, 17)."""
    from scipy import ndimage as ndi

    img = np.asarray(image, np.float32)
    feats = [img]
    for s in SIGMAS:
        g = ndi.gaussian_filter(img, s)
        feats += [g, ndi.gaussian_laplace(img, s), ndi.gaussian_gradient_magnitude(img, s),
                  g - ndi.gaussian_filter(img, 1.6 * s)]
    return np.stack(feats, axis=-1).astype(np.float32)


class ForestBaseline:
    """A random forest on :func:`filter_features`, trained on sampled voxels of normalized volumes."""

    def __init__(self, *, trees: int = 50, samples_per_class: int = 20_000, seed: int = 0):
        self.trees, self.samples, self.seed = trees, samples_per_class, seed
        self.forest = None
        self.cutoff = 0.5

    def fit(self, volumes, ignore_value: int = 255, validation=()) -> "ForestBaseline":
        """``volumes``/``validation``: objects with ``image`` (normalized float) and ``labels`` (0/1/ignore).
        The decision cut-off is the one with the best voxel F1 on ``validation`` (0.5 without it)."""
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        per_volume = max(1, self.samples // max(len(volumes), 1))
        for v in volumes:
            f = filter_features(v.image)
            for cls, count in ((1, per_volume), (0, 4 * per_volume)):  # 1:4, objects are rare
                idx = np.flatnonzero(v.labels.ravel() == cls)
                if len(idx):
                    pick = rng.choice(idx, size=min(count, len(idx)), replace=False)
                    xs.append(f.reshape(-1, f.shape[-1])[pick])
                    ys.append(np.full(len(pick), cls, np.uint8))
        x, y = np.concatenate(xs), np.concatenate(ys)
        self.forest = RandomForestClassifier(n_estimators=self.trees, max_depth=16, min_samples_leaf=3,
                                             n_jobs=-1, random_state=self.seed).fit(x, y)
        if validation:
            probs = [self.probability(v.image) for v in validation]
            labels = [v.labels for v in validation]
            cuts = np.linspace(0.2, 0.9, 15)
            f1 = []
            for c in cuts:
                tp = sum(int(np.count_nonzero((p > c) & (t == 1))) for p, t in zip(probs, labels))
                fp = sum(int(np.count_nonzero((p > c) & (t == 0))) for p, t in zip(probs, labels))
                fn = sum(int(np.count_nonzero((p <= c) & (t == 1))) for p, t in zip(probs, labels))
                f1.append(2 * tp / max(2 * tp + fp + fn, 1))
            self.cutoff = float(cuts[int(np.argmax(f1))])
        return self

    def probability(self, image: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        f = filter_features(image).reshape(-1, 1 + 4 * len(SIGMAS))
        out = np.empty(len(f), np.float32)
        cls = list(self.forest.classes_)
        for i in range(0, len(f), chunk):
            p = self.forest.predict_proba(f[i:i + chunk])
            out[i:i + chunk] = p[:, cls.index(1)] if 1 in cls else 0.0
        return out.reshape(image.shape)

    def mask(self, image: np.ndarray) -> np.ndarray:
        return self.probability(image) > self.cutoff
