"""HDF5 layouts as beamlines and tools write them (readers review IN1, IN4, IN7, IN10): APS Data Exchange raw
scans refused like NXtomo, a NeXus file whose default plot is a 2D preview, a file another program is writing,
NeXus bin-edge axes and Data Exchange's effective pixel size."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume

Z, Y, X = 4, 6, 8


@pytest.fixture
def vol():
    return np.arange(Z * Y * X, dtype=np.uint16).reshape(Z, Y, X)


def _dx_raw(path, vol):
    with h5py.File(path, "w") as f:
        f.attrs["implements"] = "exchange:measurement:process"
        f["/exchange/data"] = vol
        f["/exchange/data_white"] = vol[:2]
        f["/exchange/data_dark"] = vol[:2]
        f["/exchange/theta"] = np.linspace(0, 180, Z)


@pytest.mark.parametrize("dataset", ["", ":/exchange/data", ":/exchange/data_white"])
def test_in1_data_exchange_raw_projections_are_refused_as_nxtomo_is(tmp_path, vol, dataset):
    p = tmp_path / "scan.h5"
    _dx_raw(p, vol)
    with pytest.raises(TomosegError, match=r"holds raw projections \(APS Data Exchange: projections with "
                                           r"data_white, data_dark, theta\), not a reconstructed volume; "
                                           r"reconstruct it first"):
        open_volume(f"{p}{dataset}")


def test_in1_a_data_exchange_reconstruction_still_reads(tmp_path, vol):
    p = tmp_path / "recon.h5"
    with h5py.File(p, "w") as f:
        f.attrs["implements"] = "exchange"
        f["/exchange/data"] = vol
    with open_volume(p) as v:
        assert np.array_equal(v.read(), vol)


def _preview(path, vol, extra=False):
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        e = f.create_group("entry")
        e.attrs.update(NX_class="NXentry", default="preview")
        p = e.create_group("preview")
        p.attrs.update(NX_class="NXdata", signal="data")
        p["data"] = vol[Z // 2]
        r = e.create_group("reconstruction")
        r.attrs.update(NX_class="NXdata", signal="data")
        r["data"] = vol
        if extra:
            e["other"] = vol + 1


def test_in4_a_2d_nexus_default_plot_gives_way_to_the_only_3d_dataset(tmp_path, vol):
    p = tmp_path / "preview.nxs"
    _preview(p, vol)
    with open_volume(p) as v:
        assert np.array_equal(v.read(), vol)
        assert str(v.path).endswith(":/entry/reconstruction/data")
        assert any("default plot /entry/preview/data is 2D (6, 8)" in n for n in v.notes)


def test_in4_with_several_3d_datasets_they_are_named(tmp_path, vol):
    p = tmp_path / "preview.nxs"
    _preview(p, vol, extra=True)
    with pytest.raises(TomosegError, match=r"default plot /entry/preview/data is 2D \(6, 8\), not the volume; name "
                                           r"one of its 3D datasets, e\.g\. .*preview\.nxs:/entry/reconstruction/data"):
        open_volume(p)


WRITER = """
import h5py, sys, time
f = h5py.File(sys.argv[1], 'w', libver='latest')
ds = f.create_dataset('vol', shape=(0, 6, 8), maxshape=(None, 6, 8), chunks=(1, 6, 8), dtype='u2')
if sys.argv[2] == 'swmr':
    f.swmr_mode = True
ds.resize((2, 6, 8)); ds[:2] = 1; f.flush()
print('ready', flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("mode", ["plain", "swmr"])
def test_in7_a_file_another_program_is_writing_is_said_so(tmp_path, mode):
    p = tmp_path / f"writing_{mode}.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(p), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(TomosegError) as err:
            open_volume(f"{p}:/vol")
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    message = str(err.value)
    assert "open for writing" in message and "run again when that program has finished" in message
    assert "not a readable HDF5 file" not in message
    if mode == "plain":  # the writer holds the lock now: HDF5's h5clear would damage the file
        assert "h5clear" not in message
    else:
        assert "in SWMR mode" in message and "Only if no program is writing it any more" in message


def test_in10_nexus_axes_as_bin_edges_give_the_voxel_size(tmp_path, vol):
    p = tmp_path / "edges.nxs"
    with h5py.File(p, "w") as f:
        f.attrs["default"] = "entry"
        e = f.create_group("entry")
        e.attrs.update(NX_class="NXentry", default="data")
        d = e.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="data", axes=["z", "y", "x"])
        d["data"] = vol
        for name, n, step in (("z", Z, 2.0), ("y", Y, 0.25), ("x", X, 0.5)):
            d[name] = np.arange(n + 1) * step  # n + 1 bin edges
            d[name].attrs["units"] = "um"
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((2000.0, 250.0, 500.0))
        assert any("(in um, um, um); z, y, x given as bin edges" in n for n in v.notes)


@pytest.mark.parametrize("units, expected", [("microns", (650.0,) * 3), (None, None)])
def test_in10_data_exchange_effective_pixel_size_with_units(tmp_path, vol, units, expected):
    p = tmp_path / "recon.h5"
    with h5py.File(p, "w") as f:
        f["/exchange/data"] = vol.astype(np.float32)
        res = f.create_dataset("/measurement/instrument/detection_system/objective/resolution", data=0.65)
        if units:
            res.attrs["units"] = units
        f["/measurement/instrument/detector/pixel_size_x"] = 6.5
    with open_volume(p) as v:
        assert v.voxel_size == (pytest.approx(expected) if expected else None)
        want = "= 0.65 microns (the scan's effective pixel size" if units else "with no units, not one length"
        assert any(want in n for n in v.notes), v.notes


def test_in10_the_detector_pixel_size_alone_is_not_the_voxel_size(tmp_path, vol):
    p = tmp_path / "recon.h5"
    with h5py.File(p, "w") as f:
        f["/exchange/data"] = vol
        f["/measurement/instrument/detector/pixel_size_x"] = 6.5
        f["/measurement/instrument/detector/pixel_size_x"].attrs["units"] = "microns"
    with open_volume(p) as v:
        assert v.voxel_size is None
        assert any("camera's pixel size before the optics' magnification" in n for n in v.notes)
