"""``tomoseg.track`` called from Python: units and checked arguments as the CLI has them (review api.md: A1, A3,
A4)."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.track import TrackOptions


def _scan():
    """Three dark balls of radius 3 on a gray background (20 x 32 x 32), their mask, and their 0-255 map."""
    z, y, x = np.mgrid[:20, :32, :32]
    mask = np.zeros((20, 32, 32), np.uint8)
    for c in ((6, 8, 8), (10, 20, 16), (13, 9, 24)):
        mask[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 9] = 1
    image = np.where(mask == 1, 60, 180).astype(np.uint8)
    p8 = np.where(mask == 1, 230, 40).astype(np.uint8)
    p8[0, 0, :4] = 100  # below the threshold 127, above 0.5: found as an object where 0.5 is taken for 127
    return image, mask, p8


def test_track_checks_the_voxel_size_and_leaves_nm_columns_empty_without_one():
    """A3: a negative voxel size gave radii of 36.6 nm (and complex numbers on the way); A1: without one, the nm
    columns are NaN while the relative changes (1 nm voxels on both sides) stay."""
    image, mask, _ = _scan()
    with pytest.raises(TomosegError, match="must be three positive numbers"):
        tomoseg.track(image, image, before_labels=mask, after_labels=mask, transform=np.eye(4),
                      voxel_size=(-29.33, 29.33, 29.33))
    t = tomoseg.track(image, image, before_labels=mask, after_labels=mask, transform=np.eye(4))
    assert t.summary["objects_by_status"]["persisting"]["events"] == 3
    assert np.isnan(t.matches["before_radius_nm"]).all() and np.isnan(t.matches["delta_volume_nm3"]).all()
    assert t.matches["delta_volume_rel"].tolist() == [0.0] * 3


def test_track_options_refuse_a_threshold_off_the_0_255_scale():
    """A4: TrackOptions(threshold=0.5) read every voxel above 0 of a 0-255 map as object (107 events where there
    were 8)."""
    image, _, p8 = _scan()
    with pytest.raises(TomosegError, match="0.5 looks like a probability: on the 0-255 scale that is 127"):
        TrackOptions(threshold=0.5)
    t = tomoseg.track(image, image, before_labels=p8, after_labels=p8, transform=np.eye(4),
                      options=TrackOptions(threshold=127))
    assert t.summary["objects_by_status"]["persisting"]["events"] == 3


def test_tomoseg_track_shows_its_parameters():
    """A10: tomoseg.track is a module that can be called; inspect.signature gave (*args, **kwargs) and
    Jupyter's `tomoseg.track?` the module's two lines: both now show the function's parameters and docs."""
    import inspect

    import tomoseg

    assert list(inspect.signature(tomoseg.track).parameters)[:4] == ["before", "after", "before_labels",
                                                                     "after_labels"]
    assert "before_labels=None" in tomoseg.track.__doc__ and tomoseg.track.track.__doc__ in tomoseg.track.__doc__


def test_track_checks_its_label_arrays_as_its_images():
    """Labels go through check_array as the images do: a nested list is read as an array (as np.asarray would),
    a path or a 2D array is refused naming the argument."""
    image, mask, _ = _scan()
    t = tomoseg.track(image, image, before_labels=mask.tolist(), after_labels=mask, transform=np.eye(4))
    assert t.summary["objects_by_status"]["persisting"]["events"] == 3
    with pytest.raises(TomosegError, match="after_labels"):
        tomoseg.track(image, image, before_labels=mask, after_labels="mask.tif", transform=np.eye(4))
    with pytest.raises(TomosegError, match="before_labels"):
        tomoseg.track(image, image, before_labels=mask[0], after_labels=mask, transform=np.eye(4))
