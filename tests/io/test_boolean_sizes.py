"""Booleans where a file gives a voxel size or an origin (brief H2, item 1). Python's ``True`` is the integer 1, so
an OME-Zarr ``scale`` of ``[true, 1, 1]``, a Zarr ``pixel_size`` of ``[true, 1, 1]``, Data Exchange's ``resolution``
or nabu's ``voxel_size_cm`` stored as booleans were read as 1 (nm, um, cm): a size the file never gave, used for
every measurement without a word. Now unknown, with a note for ``info`` and one warning naming the file, the
attribute and the value from every command (``--voxel-size`` replaces it without it). A scientist whose file says
``true`` for a size has a broken writer, not a 1 nm scan: measuring on with the size unknown (nm columns empty), and
saying why, beats a refusal that stops a run for metadata the user can override in one option."""

import csv

import h5py
import numpy as np
import pytest
import zarr

from tomoseg.cli import main
from tomoseg.errors import TomosegWarning
from tomoseg.io import open_volume

SAID = "a boolean (true or false), not a length; voxel size unknown: pass --voxel-size Z Y X"


@pytest.fixture
def vol():
    return np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)


def _ome(path, data, scale=(0.03, 0.03, 0.03), translation=None, outer_scale=None):
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=data, chunks=data.shape)
    transforms = [{"type": "scale", "scale": list(scale)}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": list(translation)})
    ms = {"axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
          "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    if outer_scale is not None:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": list(outer_scale)}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def _nabu(path, vol, key, value):
    with h5py.File(path, "w") as f:
        f["/entry0000/reconstruction/results/data"] = vol.astype(np.float32)
        f[f"/entry0000/reconstruction/configuration/processing_options/reconstruction/{key}"] = value
    return path


def _exchange(path, vol, where, value):
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = vol.astype(np.float32)
        f.create_dataset(where, data=value).attrs["units"] = "microns"
    return path


def _nexus_axes(path, vol):
    """An NXdata volume whose x axis is two booleans (False, True: a step of 1 um if read as numbers)."""
    data = vol[:, :2, :2]
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update({"NX_class": "NXentry", "default": "recon"})
        group = entry.create_group("recon")
        group.attrs.update({"NX_class": "NXdata", "signal": "volume", "axes": ["z", "y", "x"]})
        group["volume"] = data
        for name, coords in (("z", 0.03 * np.arange(data.shape[0])), ("y", 0.03 * np.arange(2)),
                             ("x", np.array([False, True]))):
            group.create_dataset(name, data=coords).attrs["units"] = "um"
    return path


CASES = {
    "ome-zarr scale [true, 1, 1]": (lambda p, v: _ome(p / "s.ome.zarr", v, scale=[True, 1, 1]),
                                    "the OME-NGFF scale of level '0' (coordinateTransformations) is [True, 1, 1]"),
    "ome-zarr scale all true": (lambda p, v: _ome(p / "s.ome.zarr", v, scale=[True, True, True]),
                                "scale of level '0' (coordinateTransformations) is [True, True, True]"),
    "ome-zarr multiscale scale": (lambda p, v: _ome(p / "s.ome.zarr", v, outer_scale=[True, 1, 1]),
                                  "the OME-NGFF scale of the multiscale (coordinateTransformations) is [True, 1, 1]"),
    "ome-zarr level named by its path": (lambda p, v: _ome(p / "s.ome.zarr", v, scale=[True, 1, 1]) / "0",
                                         "the OME-NGFF scale of level '0' (coordinateTransformations) is [True, 1, 1]"),
    "zarr pixel_size [true, 1, 1]": (
        lambda p, v: _zarr_array(p / "a.zarr", v, {"pixel_size": [True, 1, 1], "units": "um"}),
        "the array's pixel_size is [True, 1, 1]"),
    "nabu voxel_size_cm": (lambda p, v: _nabu(p / "n.h5", v, "voxel_size_cm", np.array([True, True, True])),
                           "reconstruction/voxel_size_cm (nabu's record of the reconstruction) is [True, True, True]"),
    "nabu pixel_size_cm": (lambda p, v: _nabu(p / "n.h5", v, "pixel_size_cm", True),
                           "reconstruction/pixel_size_cm (nabu's record of the reconstruction) is True"),
    "data exchange resolution": (
        lambda p, v: _exchange(p / "dx.h5", v, "/measurement/instrument/detection_system/objective/resolution", True),
        "objective/resolution (Data Exchange's effective pixel size) is True"),
    "data exchange actual_pixel_size_x": (
        lambda p, v: _exchange(p / "dx.h5", v, "/measurement/instrument/detector/actual_pixel_size_x", True),
        "detector/actual_pixel_size_x (Data Exchange's pixel size on the sample plane) is True"),
    "nexus axis": (lambda p, v: _nexus_axes(p / "a.nxs", v), "the NXdata axis 'x' is [False, True]"),
}


def _zarr_array(path, vol, attrs):
    zarr.create_array(str(path), data=vol, chunks=vol.shape).attrs.update(attrs)
    return path


@pytest.mark.parametrize("case", CASES)
def test_a_boolean_size_leaves_the_voxel_size_unknown_and_is_said(tmp_path, vol, case):
    make, said = CASES[case]
    path = make(tmp_path, vol)
    with pytest.warns(TomosegWarning, match="a boolean"), open_volume(path) as v:
        assert v.voxel_size is None, v.voxel_size  # was 1 nm, 1000 nm or 1e7 nm (1 cm)
        assert any(said in n and SAID in n for n in v.notes), v.notes
        assert v.voxel_size_problem.startswith(f"{path}") and said in v.voxel_size_problem


def test_a_boolean_translation_leaves_the_origin_unknown(tmp_path, vol):
    path = _ome(tmp_path / "t.ome.zarr", vol, translation=[True, 0, 0])
    # a warning naming the file too (brief H5: every translation that cannot be used is said by every command)
    with pytest.warns(TomosegWarning, match=f"{path}: the OME-NGFF translation .* is \\[True, 0, 0\\], a boolean"), \
            open_volume(path) as v:
        assert v.voxel_size == pytest.approx((30.0, 30.0, 30.0))
        assert v.origin_nm is None  # was (1000, 0, 0): True um
        assert any("the OME-NGFF translation of level '0' (coordinateTransformations) is [True, 0, 0], a boolean"
                   in n and "origin unknown" in n for n in v.notes), v.notes


def test_analyze_warns_once_naming_the_file_and_voxel_size_replaces_it(tmp_path, capsys):
    mask = np.zeros((6, 10, 10), np.uint8)
    mask[2:4, 3:6, 3:6] = 1
    path = _ome(tmp_path / "m.ome.zarr", mask, scale=[True, 1, 1])
    assert main(["analyze", str(path), "--out", str(tmp_path / "a"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"warning: {path}: the OME-NGFF scale of level '0' (coordinateTransformations) is "
                     f"[True, 1, 1], {SAID}") == 1, err
    with open(tmp_path / "a" / "objects.csv", newline="") as f:
        assert next(csv.DictReader(f))["volume_nm3"] == ""  # unknown, not 18 nm³ of 1 nm voxels
    assert main(["analyze", str(path), "--out", str(tmp_path / "b"), "-q", "--voxel-size", "30", "30", "30"]) == 0
    assert "boolean" not in capsys.readouterr().err
    with open(tmp_path / "b" / "objects.csv", newline="") as f:
        assert float(next(csv.DictReader(f))["volume_nm3"]) == pytest.approx(18 * 30.0 ** 3)
