"""Pixel sizes in HDF5 files, as beamline tools write them: a volume's own ``pixel_size`` attribute (read with its
``units``, as ``voxel_size`` is), Data Exchange's pixel size on the sample plane (``actual_pixel_size_x``/``_y``,
read) and the camera's pixel (``detector/pixel_size``, APS tomoScan's DetectorPixelSize; NeXus NXdetector
``x_pixel_size``: never taken as the voxel size, said in a note). Before, ``pixel_size`` was not read at all and the
voxel size was unknown without a word; the camera's ``pixel_size`` went unmentioned."""

import re

import h5py
import numpy as np
import pytest
import zarr

from tomoseg.errors import TomosegWarning
from tomoseg.io import open_volume

Z, Y, X = 4, 6, 8
_DET = "/measurement/instrument/detector"


@pytest.fixture
def vol():
    return np.arange(Z * Y * X, dtype=np.uint16).reshape(Z, Y, X)


@pytest.mark.parametrize("attrs, expected, said", [
    ({"pixel_size": [1.5, 0.65, 0.65], "units": "um"}, (1500.0, 650.0, 650.0),
     "voxel size from the dataset's pixel_size (1.5, 0.65, 0.65 um, z, y, x)"),
    ({"pixel_size": 0.65, "unit": "microns"}, (650.0,) * 3,
     "pixel_size is one number (0.65), taken as an isotropic voxel size of 650 nm"),
    ({"pixel_size": 6.5e-7, "units": "m"}, (650.0,) * 3, "isotropic voxel size of 650 nm"),
    ({"pixel_size": 0.65}, None, "the dataset's pixel_size has no units attribute; voxel size unknown"),
    ({"pixel_size": 0.65, "units": "counts"}, None, "pixel_size has units 'counts', not a length"),
    ({"pixel_size": [0.65, 0.65], "units": "um"}, None, "pixel_size holds 2 values, not 1 or 3"),
    ({"voxel_size": [0.65] * 3}, None, "the dataset's voxel_size has no units attribute"),  # was silent
    # the unit in the value itself: "no units attribute", unknown (adversarial review HP1)
    ({"pixel_size": "0.65 um"}, (650.0,) * 3, "pixel_size is '0.65 um', taken as an isotropic voxel size of 650 nm"),
    ({"pixel_size": np.bytes_(b"650nm")}, (650.0,) * 3, "taken as an isotropic voxel size of 650 nm"),
    # a unit for each axis: "no units attribute", unknown (HP2)
    ({"pixel_size": [1.5, 0.65, 0.65], "units": ["um", "um", "um"]}, (1500.0, 650.0, 650.0),
     "pixel_size (1.5, 0.65, 0.65 um, z, y, x)"),
    ({"pixel_size": [1.5, 650, 650], "units": np.array([b"um", b"nm", b"nm"])}, (1500.0, 650.0, 650.0),
     "pixel_size (1.5, 650, 650 (units um, nm, nm), z, y, x)"),
    ({"pixel_size": 0.65, "units": 5}, None, "pixel_size has units 5, not a length tomoseg knows"),
    ({"pixel_size": "0.65 parsecs"}, None, "pixel_size has no units attribute"),
])
def test_a_volumes_pixel_size_attribute_is_read_with_its_units(tmp_path, vol, attrs, expected, said):
    p = tmp_path / "rec.h5"
    with h5py.File(p, "w") as f:
        f["/data"] = vol
        f["/data"].attrs.update(attrs)
    with open_volume(p) as v:
        assert v.voxel_size == (pytest.approx(expected) if expected else None)
        assert any(said in n for n in v.notes), v.notes


def test_a_zarr_arrays_pixel_size_attribute_too(tmp_path):
    path = tmp_path / "scan.zarr"
    array = zarr.create_array(str(path), shape=(4, 8, 8), chunks=(4, 8, 8), dtype=np.uint8)
    array[:] = 7
    array.attrs.update({"pixel_size": [2.0, 1.0, 1.0], "units": "nm"})
    with open_volume(path) as v:
        assert v.voxel_size == pytest.approx((2.0, 1.0, 1.0))


def _dx(path, vol, **detector):
    """A Data Exchange reconstruction (``/exchange/data`` alone) with the detector's datasets given as
    ``name=(value, units)`` (units None: no attribute)."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("/exchange/data", data=vol.astype(np.float32))
        ds.attrs["units"] = "counts"  # the values' unit (tomocupy writes it): not a length, not read as one
        for name, (value, units) in detector.items():
            item = f.create_dataset(f"{_DET}/{name}", data=value)
            if units:
                item.attrs["units"] = units


@pytest.mark.parametrize("detector, expected, said", [
    ({"actual_pixel_size_x": (0.65, "microns")}, (650.0,) * 3,
     "actual_pixel_size_x (0.65 microns, taken for z, y and x; the pixel size on the sample plane)"),
    # z from the detector's rows (y), the slices' y and x from its columns (x)
    ({"actual_pixel_size_x": (0.65, "um"), "actual_pixel_size_y": (1.3, "um")}, (1300.0, 650.0, 650.0),
     "actual_pixel_size_x and _y (x 0.65 um, y 1.3 um: z from the detector's y"),
    # the camera's 6.5 µm pixel beside it is not the voxel size: the one on the sample plane is read
    ({"pixel_size": (6.5, "microns"), "actual_pixel_size_x": (6.5e-7, "m")}, (650.0,) * 3,
     "actual_pixel_size_x (6.5e-07 m, taken for z, y and x"),
    ({"actual_pixel_size_x": (0.65, None)}, None,
     "actual_pixel_size_x (Data Exchange's pixel size on the sample plane) holds [0.65] with no units"),
])
def test_data_exchange_pixel_size_on_the_sample_plane(tmp_path, vol, detector, expected, said):
    p = tmp_path / "recon.h5"
    _dx(p, vol, **detector)
    with open_volume(p) as v:
        assert v.voxel_size == (pytest.approx(expected) if expected else None)
        assert any(said in n for n in v.notes), v.notes


def test_data_exchange_pixel_size_on_the_sample_plane_times_tomocupys_binning(tmp_path, vol):
    p = tmp_path / "scan_rec.h5"
    _dx(p, vol, actual_pixel_size_x=(0.65, "microns"))
    with h5py.File(p, "a") as f:
        b = f.require_dataset("/process/tomocupy-1.0.3/file-reading/binning", shape=(1,), dtype="S10")
        b[0] = b"1"
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((1300.0,) * 3)
        assert any("times 2, the binning the reconstruction records" in n for n in v.notes), v.notes


def test_the_cameras_pixel_size_is_not_the_voxel_size(tmp_path, vol):
    """APS 2-BM's tomoScan writes the camera's pixel as detector/pixel_size (DetectorPixelSize, 6.5 µm behind a
    10x objective): 10x the voxel size. Unknown, and the note names it and the magnification."""
    p = tmp_path / "recon.h5"
    _dx(p, vol, pixel_size=(6.5, "microns"))
    with h5py.File(p, "a") as f:
        f["/measurement/instrument/detection_system/objective/magnification"] = 10.0
    with open_volume(p) as v:
        assert v.voxel_size is None
        assert any(f"the file gives {_DET}/pixel_size, the camera's pixel size before the optics' magnification "
                   "(the objective's magnification: 10)" in n for n in v.notes), v.notes


def test_a_nexus_detectors_x_pixel_size_is_not_the_voxel_size(tmp_path, vol):
    """NeXus NXdetector/x_pixel_size is the detector's pixel (with units), before any magnification: not taken,
    and said (before: unknown without a word)."""
    p = tmp_path / "rec.nxs"
    with h5py.File(p, "w") as f:
        f.attrs["default"] = "entry"
        e = f.create_group("entry")
        e.attrs.update(NX_class="NXentry", default="data")
        d = e.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="data")
        d["data"] = vol
        det = e.create_group("instrument").create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        det["x_pixel_size"] = 6.5
        det["x_pixel_size"].attrs["units"] = "um"
    with open_volume(p) as v:
        assert v.voxel_size is None
        assert any("/entry/instrument/detector/x_pixel_size = 6.5 um is the NeXus detector's pixel size, not taken "
                   "as the voxel size" in n for n in v.notes), v.notes


def test_info_does_not_say_the_file_is_silent_when_its_notes_say_what_it_gives(tmp_path, vol, capsys):
    """`tomoseg info` printed "unknown (the file does not say; ...)" above a note saying what the file gives (the
    camera's pixel size): the line now points to the notes."""
    from tomoseg.cli import main

    p = tmp_path / "recon.h5"
    _dx(p, vol, pixel_size=(6.5, "microns"))
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "voxel size    unknown (see the notes below; pass --voxel-size Z Y X)" in out
    assert "the file does not say" not in out and "the camera's pixel size" in out
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["data"] = vol
    assert main(["info", str(plain)]) == 0
    assert "voxel size    unknown (the file does not say; pass --voxel-size Z Y X)" in capsys.readouterr().out


@pytest.mark.parametrize("binning", [np.array([1]), np.int64(1), np.array([1.0])], ids=["int-array", "int", "float"])
def test_tomocupys_binning_written_as_a_number(tmp_path, vol, binning):
    """A binning record that is a number, not tomocupy's string: it was not read, so a binned reconstruction got the
    unbinned pixel size, half the true one, with only "if the reconstruction was binned" said (HP3)."""
    p = tmp_path / "scan_rec.h5"
    _dx(p, vol, actual_pixel_size_x=(0.65, "microns"))
    with h5py.File(p, "a") as f:
        f["/process/tomocupy-1.0.3/file-reading/binning"] = binning
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((1300.0,) * 3)
        assert any("times 2, the binning the reconstruction records" in n for n in v.notes), v.notes


def test_tomocupy_binnings_that_differ_are_named(tmp_path, vol):
    """Two tomocupy records with different binnings (a raw scan's record of an earlier run copied in): the unbinned
    size is kept, and the note now says the file records binnings that differ; it said only "if the
    reconstruction was binned", as for a file that records none (HP4)."""
    p = tmp_path / "scan_rec.h5"
    _dx(p, vol, actual_pixel_size_x=(0.65, "microns"))
    with h5py.File(p, "a") as f:
        f["/process/tomocupy-1.0.3/file-reading/binning"] = np.array([b"1"])
        f["/process/tomocupy-1.1.0/file-reading/binning"] = np.array([b"2"])
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((650.0,) * 3)
        assert any("records tomocupy binnings that differ (/process/tomocupy-1.0.3/file-reading/binning = 1, "
                   "/process/tomocupy-1.1.0/file-reading/binning = 2)" in n for n in v.notes), v.notes


@pytest.mark.parametrize("fmt", ["h5", "zarr"])
@pytest.mark.parametrize("attrs", [
    {"pixel_size": True, "units": "um"},
    {"pixel_size": [True, True, True], "units": "um"},
    {"voxel_size": np.bool_(True), "units": "nm"},
    {"element_size_um": [True, False, True]},
    {"voxel_size_nm": True},
])
def test_a_boolean_pixel_size_is_no_length(tmp_path, vol, fmt, attrs):
    """``pixel_size = True`` with units um was read as 1 um, a voxel size of 1000 nm, silently (adversarial review
    HP5): a boolean is no length. Unknown, with a note, and a warning naming the file (brief H2: said by every
    command, not only info; more cases in test_boolean_sizes.py)."""
    if fmt == "h5":
        p = tmp_path / "rec.h5"
        with h5py.File(p, "w") as f:
            f["/data"] = vol
            f["/data"].attrs.update(attrs)
    else:
        p = tmp_path / "scan.zarr"
        zarr.create_array(str(p), data=vol, chunks=vol.shape).attrs.update(
            {k: v.item() if isinstance(v, np.generic) else v for k, v in attrs.items()})
    key = next(iter(attrs))
    said = re.escape(str(p)) + f"(:/data)?: the .*'s {key} is .*a boolean"
    with pytest.warns(TomosegWarning, match=said), open_volume(p) as v:
        assert v.voxel_size is None and "a boolean (true or false)" in v.voxel_size_problem
        assert any(f"'s {key} is " in n and "a boolean (true or false), not a length; voxel size unknown" in n
                   for n in v.notes), v.notes
