"""The voxel size of a NeXus NXdata volume from its axis coordinates and their units (NeXus has no voxel-size
attribute: a reconstruction's spacing is in its axes)."""

import h5py
import numpy as np
import pytest

from tomoseg.io import open_volume


def _nexus(path, axes=("z", "y", "x"), units=("um", "um", "um"), spacing=(0.05, 0.02933, 0.02933),
           shape=(6, 8, 10), uneven=None, axes_attr=None):
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "recon"
        data = entry.create_group("recon")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "volume"
        data.attrs["axes"] = list(axes) if axes_attr is None else axes_attr
        data.create_dataset("volume", data=np.arange(np.prod(shape), dtype=np.uint16).reshape(shape))
        for name, unit, step, n in zip(axes, units, spacing, shape):
            if name == ".":
                continue
            coords = 100.0 - step * np.arange(n) if name == "y" else 3.0 + step * np.arange(n)  # y descending
            if uneven == name:
                coords[-1] += step / 2
            ds = data.create_dataset(name, data=coords)
            if unit is not None:
                ds.attrs["units"] = unit
    return path


def test_voxel_size_from_the_axes_in_any_length_unit(tmp_path):
    vol = open_volume(str(_nexus(tmp_path / "a.nxs")))
    assert vol.voxel_size == pytest.approx((50.0, 29.33, 29.33), rel=1e-9)
    assert any("voxel size from the NXdata axes z, y, x" in n for n in vol.notes)
    mm = open_volume(str(_nexus(tmp_path / "b.nxs", units=("mm", "mm", "mm"), spacing=(5e-5, 3e-5, 3e-5))))
    assert mm.voxel_size == pytest.approx((50.0, 30.0, 30.0), rel=1e-9)
    old_form = open_volume(str(_nexus(tmp_path / "c.nxs", axes_attr="z:y:x")))  # NeXus 2012 "z:y:x"
    assert old_form.voxel_size == pytest.approx((50.0, 29.33, 29.33), rel=1e-9)


@pytest.mark.parametrize("case, note", [
    ({"units": ("um", None, "um")}, "the NXdata axis 'y' has no units"),
    ({"units": ("um", "pixel", "um")}, "the NXdata axis 'y' has units 'pixel', not a length"),
    ({"uneven": "x"}, "the NXdata axis 'x' is not evenly spaced"),
    # every coordinate the same: it was said to be "not evenly spaced" (adversarial review HP6)
    ({"spacing": (0.05, 0.02933, 0.0)}, "the NXdata axis 'x' has a step of 0 (its 10 coordinates are all 3 um); "
                                        "voxel size unknown"),
    ({"axes": ("z", ".", "x")}, "the NXdata axis '.' gives no coordinates of length 8"),
])
def test_axes_that_cannot_give_a_voxel_size_leave_it_unknown_and_say_why(tmp_path, case, note):
    vol = open_volume(str(_nexus(tmp_path / "a.nxs", **case)))
    assert vol.voxel_size is None
    assert any(note in n for n in vol.notes), vol.notes


def test_a_voxel_size_attribute_wins_over_the_axes(tmp_path):
    path = _nexus(tmp_path / "a.nxs")
    with h5py.File(path, "r+") as f:
        f["entry/recon/volume"].attrs["voxel_size_nm"] = [10.0, 10.0, 10.0]
    assert open_volume(str(path)).voxel_size == (10.0, 10.0, 10.0)
