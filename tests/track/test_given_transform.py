"""A transform given with --transform is checked against the objects."""

import warnings

import numpy as np
import pytest

from tomoseg.errors import TomosegWarning
from tomoseg.track import track


def _balls(shape, centres, radius=3.0):
    labels = np.zeros(shape, np.uint32)
    grid = np.indices(shape).astype(float)
    for k, c in enumerate(centres, start=1):
        labels[sum((g - v) ** 2 for g, v in zip(grid, c)) <= radius ** 2] = k
    return labels


@pytest.fixture(scope="module")
def shifted():
    """12 balls, moved by (0, 5, 4) voxels between the scans; the objects are spaced irregularly so a wrong
    transform does not bring them onto other objects."""
    rng = np.random.default_rng(3)
    shape = (24, 64, 64)
    centres = [(12 + rng.uniform(-3, 3), 10 + 14 * (k // 4) + rng.uniform(-2, 2), 10 + 13 * (k % 4)
                + rng.uniform(-2, 2)) for k in range(12)]
    shift = np.array([0.0, 5.0, 4.0])
    before = _balls(shape, centres)
    after = _balls(shape, [np.asarray(c) + shift for c in centres])
    m = np.eye(4)
    m[:3, 3] = shift
    return before, after, m


def _run(before, after, m, images=None):
    """Track the label images ``before`` and ``after`` under ``m``; the images: the labels (or ``images``)."""
    image_b, image_a = (before, after) if images is None else images
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = track(image_b.astype(np.uint8), image_a.astype(np.uint8), before_labels=before,
                       after_labels=after, transform=m, voxel_size=(30, 30, 30))
    return result, [str(w.message) for w in caught if issubclass(w.category, TomosegWarning)]


def test_right_transform_no_warning(shifted):
    before, after, m = shifted
    result, warned = _run(before, after, m)
    assert result.summary["objects_by_status"]["persisting"]["events"] == 12 and not warned


def test_inverse_transform_warns_and_names_the_inverse(shifted):
    """The inverse (AFTER -> BEFORE) given: before, no warning at all; now the persisting pairs' offsets, the
    few links and the inverse's fit are named."""
    before, after, m = shifted
    result, warned = _run(before, after, np.linalg.inv(m))
    assert len(warned) == 1, warned
    assert "given transform disagrees with the objects" in warned[0]
    assert "is it AFTER -> BEFORE?" in warned[0] and "of 12 BEFORE objects on an AFTER object" in warned[0]


@pytest.mark.parametrize("images, said", [
    ("objects", "the images confirm the transform (band-passed correlation of the images 1.00 as given"),
    ("flat", "or the --transform file is AFTER -> BEFORE: the images do not tell (band-passed correlation of the "
             "images 0.00 as given, 0.00 inverted)")])
def test_swapped_labels_under_a_given_transform_ask_the_images(shifted, images, said):
    """Label files swapped under a right transform: before, only "is it AFTER -> BEFORE?" was said (centroids
    cannot tell the two apart). Images that show the objects confirm the transform, so the swap is said; images
    without structure tell nothing, so both causes are named, in one warning."""
    before, after, m = shifted
    if images == "objects":
        result, warned = _run(after, before, m, images=(before, after))
    else:
        flat = np.full(before.shape, 50, np.uint8)
        result, warned = _run(after, before, m, images=(flat, flat))
    assert len(warned) == 1, warned
    assert warned[0].startswith("the label files look swapped: the given transform puts 0 of 12 BEFORE objects on "
                                "an AFTER object, but 12 of 12 with the two label files exchanged; ")
    assert said in warned[0]
