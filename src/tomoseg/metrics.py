"""Voxel-level evaluation: confusion matrices and the scores derived from them, chunk by chunk.

The paper's convention: a probability map on the 0–255 scale is an object
where it is *above* the threshold 127 (a gray level ≤ 127 is background).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import TomosegError


@dataclass
class ConfusionMatrix:
    """Voxel counts. ``tp``: object in both; ``fp``: predicted only; ``fn``: labelled only; ``tn``: neither."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        return ConfusionMatrix(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.total)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        """F1 score, equal to the Dice coefficient."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    def normalized(self) -> np.ndarray:
        """Rows: true class (object, background); columns: predicted (object, background); rows sum to 1
        (the paper's Fig. 4)."""
        m = np.array([[self.tp, self.fn], [self.fp, self.tn]], dtype=np.float64)
        sums = m.sum(axis=1, keepdims=True)
        return np.divide(m, sums, out=np.full_like(m, np.nan), where=sums > 0)

    def scores(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy, "recall": self.recall, "precision": self.precision,
                "f1": self.f1, "iou": self.iou}


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


def confusion_matrix(pred, truth, *, mask=None) -> ConfusionMatrix:
    """Confusion matrix of two boolean arrays (optionally only where ``mask`` is true).

    ``pred`` and ``truth``: bool, or 0 and 1 (or label images of 16 bits or more: nonzero = object); a
    probability map is refused (:func:`~tomoseg.objects.reading.as_mask`): threshold it first (``p > 0.5``,
    ``p8 > 127``, as ``tomoseg evaluate`` reads one).

    Examples
    --------
    >>> import numpy as np
    >>> cm = confusion_matrix(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    >>> (cm.tp, cm.fp, cm.fn, cm.tn)
    (1, 1, 1, 1)
    """
    from .objects.reading import as_mask

    pred, truth = as_mask(pred, "pred"), as_mask(truth, "truth")
    if pred.shape != truth.shape:
        raise TomosegError(f"prediction {pred.shape} and labels {truth.shape} differ in shape")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        pred, truth = pred[mask], truth[mask]
    tp = int(np.count_nonzero(pred & truth))
    p = int(np.count_nonzero(pred))
    t = int(np.count_nonzero(truth))
    return ConfusionMatrix(tp=tp, fp=p - tp, fn=t - tp, tn=int(pred.size) - p - t + tp)


def best_threshold(image, labels, *, mask=None, dark_objects: bool = True) -> dict:
    """The single gray threshold with the best F1, chosen knowing the labels (a baseline no user has).

    Objects are voxels ``<= t`` for dark objects (``>= t`` otherwise). Works on integer gray values
    through histograms, so it is one pass over the data; float gray values are binned in 1024 steps
    between their minimum and maximum, and ``t`` is a gray value of the data, so that ``image <= t``
    is exactly the mask the scores count.

    Returns
    -------
    dict
        ``threshold``, ``f1``, ``precision``, ``recall``.
    """
    image = np.asarray(image)
    labels = np.asarray(labels, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        image, labels = image[mask], labels[mask]
    if image.dtype.kind in "ui":
        lo = int(image.min())
        values = image.astype(np.int64) - lo
        bins = int(values.max()) + 1
        edges = np.arange(bins) + lo
    else:
        lo, hi = float(image.min()), float(image.max())
        bins = 1024
        values = np.clip(((image - lo) / max(hi - lo, 1e-12) * (bins - 1)).astype(np.int64), 0, bins - 1)
        edges = lo + np.arange(bins) * (hi - lo) / (bins - 1)
    obj = np.bincount(values[labels], minlength=bins).astype(np.float64)
    bg = np.bincount(values[~labels], minlength=bins).astype(np.float64)
    if not dark_objects:
        obj, bg, edges = obj[::-1], bg[::-1], edges[::-1]
    tp = np.cumsum(obj)
    fp = np.cumsum(bg)
    fn = obj.sum() - tp
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    i = int(np.argmax(f1))
    threshold = float(edges[i])
    if image.dtype.kind not in "ui":
        # the bins counted (bin i and those below, or above for bright objects) end at their largest (smallest)
        # gray value, not at bin i's lower edge: ``image <= threshold`` is then the very mask scored (review AB8)
        chosen = values <= i if dark_objects else values >= bins - 1 - i
        threshold = float(image[chosen].max() if dark_objects else image[chosen].min())
    return {"threshold": threshold, "f1": float(f1[i]),
            "precision": float(tp[i] / (tp[i] + fp[i])) if tp[i] + fp[i] else float("nan"),
            "recall": float(tp[i] / obj.sum()) if obj.sum() else float("nan")}
