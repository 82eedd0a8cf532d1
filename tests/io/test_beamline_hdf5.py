"""HDF5 files as beamline software writes them (review readers2, RD1-RD3, RD5, RD6): Diamond's raw NXtomo (an
NXsubentry whose data link to the detector's dataset), ESRF's ``.nx`` NXtomo files (nxtomomill), nabu's
reconstructions and the voxel size they record, and files that hold several 3D datasets."""

import warnings

import h5py
import numpy as np
import pytest

from tomoseg.errors import TomosegError, TomosegNote
from tomoseg.io import open_volume

Z, Y, X = 5, 6, 8


@pytest.fixture
def vol():
    return np.arange(Z * Y * X, dtype=np.uint16).reshape(Z, Y, X)


def _diamond_raw(path, vol, definition=True):
    """Diamond's raw scan (I12/I13, as Savu's NxtomoLoader and httomo read it: entry1/tomo_entry/data/data,
    entry1/tomo_entry/instrument/detector/image_key): the NXtomo subentry links to the detector's dataset, which
    lies outside it."""
    with h5py.File(path, "w") as f:
        e = f.create_group("entry1")
        e.attrs["NX_class"] = "NXentry"
        e["instrument/pco1_hw_hdf/data"] = vol
        s = e.create_group("tomo_entry")
        s.attrs["NX_class"] = "NXsubentry"
        if definition:
            s["definition"] = "NXtomo"
        s["instrument/detector/data"] = h5py.SoftLink("/entry1/instrument/pco1_hw_hdf/data")
        s["instrument/detector/image_key"] = np.zeros(Z)
        d = s.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="data")
        d["data"] = h5py.SoftLink("/entry1/instrument/pco1_hw_hdf/data")
        d["rotation_angle"] = np.linspace(0, 180, Z)


@pytest.mark.parametrize("definition", [True, False])
@pytest.mark.parametrize("dataset", ["", ":/entry1/instrument/pco1_hw_hdf/data", ":/entry1/tomo_entry/data/data"])
def test_rd1_diamond_raw_nxtomo_is_refused_by_any_path(tmp_path, vol, dataset, definition):
    p = tmp_path / "12345.nxs"
    _diamond_raw(p, vol, definition)
    with pytest.raises(TomosegError, match=r"holds raw projections \(NeXus NXtomo.*\), not a reconstructed volume; "
                                           r"reconstruct it first"):
        open_volume(f"{p}{dataset}")


def test_rd1_a_volume_beside_an_nxtomo_entry_still_reads(tmp_path, vol):
    p = tmp_path / "scan_and_rec.nxs"
    _diamond_raw(p, vol)
    with h5py.File(p, "a") as f:
        f["/processed/rec"] = vol[::-1]
    with open_volume(f"{p}:/processed/rec") as v:
        assert np.array_equal(v.read(), vol[::-1])


def _nxtomomill(path, vol):
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry0000"
        e = f.create_group("entry0000")
        e.attrs.update(NX_class="NXentry", default="data")
        e["definition"] = "NXtomo"
        e["instrument/detector/data"] = vol
        e["instrument/detector/image_key"] = np.zeros(Z, np.int32)
        d = e.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="data")
        d["data"] = h5py.SoftLink("/entry0000/instrument/detector/data")


def test_rd2_an_esrf_nx_file_is_read_as_nexus_and_refused_as_projections(tmp_path, vol):
    p = tmp_path / "sample_0001.nx"
    _nxtomomill(p, vol)
    with pytest.raises(TomosegError, match=r"sample_0001.nx:/entry0000/data/data holds raw projections \(NeXus "
                                           r"NXtomo"):
        open_volume(p)


def test_rd2_a_volume_in_an_nx_file_reads(tmp_path, vol):
    p = tmp_path / "rec.nx"
    with h5py.File(p, "w") as f:
        f["/entry/data/data"] = vol
    with open_volume(f"{p}:/entry/data/data") as v:
        assert np.array_equal(v.read(), vol)


def _nabu(path, vol, record):
    """A reconstruction as nabu's NXProcessWriter writes it, with tomoscan's volume metadata in the NXprocess's
    ``configuration``."""
    with h5py.File(path, "w") as f:
        e = f.create_group("entry0000")
        e.attrs.update(NX_class="NXentry", default="/entry0000/reconstruction/results")
        p = e.create_group("reconstruction")
        p.attrs.update(NX_class="NXprocess", default="results")
        p["program"] = "nabu"
        c = p.create_group("configuration")
        c.attrs["NX_class"] = "NXcollection"
        for key, value in record.items():
            c[f"processing_options/reconstruction/{key}"] = value
        r = p.create_group("results")
        r.attrs.update(NX_class="NXdata", signal="data")
        r["data"] = vol.astype(np.float32)


@pytest.mark.parametrize("record, expected", [
    ({"voxel_size_cm": np.array([1.3e-4, 6.5e-5, 3.25e-5])}, (1300.0, 650.0, 325.0)),  # nabu >= 2023.1: z, y, x
    ({"pixel_size_cm": 6.5e-5}, (650.0, 650.0, 650.0)),  # earlier nabu: one number
])
def test_rd3_nabu_reconstruction_voxel_size_from_its_record(tmp_path, vol, record, expected):
    p = tmp_path / "rec.hdf5"
    _nabu(p, vol, record)
    with open_volume(p) as v:
        assert str(v.path).endswith("rec.hdf5:/entry0000/reconstruction/results/data")
        assert np.array_equal(v.read(), vol.astype(np.float32))
        assert v.voxel_size == pytest.approx(expected)
        assert any("processing_options/reconstruction/" in n and "nabu" in n for n in v.notes)


@pytest.mark.parametrize("record", [{}, {"voxel_size_cm": "None"}, {"voxel_size_cm": np.array([1.0, 2.0])}])
def test_rd3_nabu_without_a_usable_record_stays_unknown(tmp_path, vol, record):
    p = tmp_path / "rec.hdf5"
    _nabu(p, vol, record)
    with open_volume(p) as v:
        assert v.voxel_size is None


def test_rd5_the_usual_nexus_path_among_several_volumes_is_said(tmp_path, vol):
    p = tmp_path / "multi.h5"
    with h5py.File(p, "w") as f:
        f["/entry/data/data"] = vol
        f["/entry/other/vol"] = vol[::-1]
        f["/mask"] = vol.astype(np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TomosegNote)
        v = open_volume(p)
    with v:
        assert np.array_equal(v.read(), vol)
    said = [str(w.message) for w in caught if issubclass(w.category, TomosegNote) and "/entry/data/data" in
            str(w.message)]
    assert said == [f"{p}: read /entry/data/data (NeXus's usual path); the file also holds the 3D datasets "
                    f"/entry/other/vol, /mask: to read one of them, name it as {p}:/entry/other/vol"]


def test_rd6_a_missing_dataset_names_the_files_volumes(tmp_path, vol):
    p = tmp_path / "multi.h5"
    with h5py.File(p, "w") as f:
        f["/entry/other/vol"] = vol
    with pytest.raises(TomosegError, match=r"has no dataset '/entry/data/dat'.*multi.h5:/entry/other/vol"):
        open_volume(f"{p}:/entry/data/dat")


@pytest.mark.parametrize("url", ["silx:{p}?path=/entry/other/vol", "silx://{p}?path=/entry/other/vol",
                                 "{p}?path=/entry/other/vol"])
def test_rd6_a_silx_url_is_answered_with_the_file_colon_path_form(tmp_path, vol, url):
    p = tmp_path / "multi.h5"
    with h5py.File(p, "w") as f:
        f["/entry/other/vol"] = vol
    with pytest.raises(TomosegError, match=r"silx data URL.*give " + str(p).replace("/", "/") + ":/entry/other/vol"):
        open_volume(url.format(p=p))


def _tomocupy(path, vol, binning):
    """A reconstruction as tomocupy writes it with --save-format h5: /exchange/data (a virtual dataset over its
    parts in tomocupy; a plain one here), the raw scan's scalar metadata copied in, and its command-line options
    under /process/tomocupy-VERSION/SECTION/NAME as strings of shape (1,)."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("/exchange/data", data=vol.astype(np.float32))
        ds.attrs.update(axes="z:y:x", units="counts")
        res = f.create_dataset("/measurement/instrument/detection_system/objective/resolution", data=0.65)
        res.attrs["units"] = "microns"
        if binning is not None:
            b = f.require_dataset("/process/tomocupy-1.0.3/file-reading/binning", shape=(1,), dtype="S10")
            b[0] = np.bytes_(str(binning))


@pytest.mark.parametrize("binning, expected", [(None, 650.0), ("0", 650.0), ("1", 1300.0), ("2", 2600.0)])
def test_rd7_tomocupy_binning_scales_the_effective_pixel_size(tmp_path, vol, binning, expected):
    p = tmp_path / "scan_rec.h5"
    _tomocupy(p, vol, binning)
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((expected,) * 3)
        said = " ".join(v.notes)
        if binning is None:
            assert "if the reconstruction was binned, pass --voxel-size" in said
        else:
            assert f"/process/tomocupy-1.0.3/file-reading/binning = {binning}" in said



def test_rd7_two_tomocupy_records_that_differ_give_no_binning(tmp_path, vol):
    """tomocupy copies the raw scan's metadata into the reconstruction; a raw file holding another version's record
    of an earlier run would give two binnings: neither is taken."""
    p = tmp_path / "scan_rec.h5"
    _tomocupy(p, vol, "1")
    with h5py.File(p, "a") as f:
        b = f.require_dataset("/process/tomocupy-0.9.0/file-reading/binning", shape=(1,), dtype="S10")
        b[0] = b"2"
    with open_volume(p) as v:
        assert v.voxel_size == pytest.approx((650.0,) * 3)
        assert "if the reconstruction was binned, pass --voxel-size" in " ".join(v.notes)

def _bliss_raw(path, vol):
    """An ESRF Bliss raw scan file: each scan an NXentry (``1.1``) whose detector's frames are
    ``instrument/DETECTOR/data`` in an NXdetector group, linked from ``measurement/DETECTOR``."""
    with h5py.File(path, "w") as f:
        f.attrs.update(NX_class="NXroot", creator="Bliss", publisher="bliss")
        e = f.create_group("1.1")
        e.attrs["NX_class"] = "NXentry"
        e["title"] = "fscan 0 360 5 0.1"
        det = e.create_group("instrument/pcoedge64")
        det.attrs["NX_class"] = "NXdetector"
        det["data"] = vol
        m = e.create_group("measurement")
        m.attrs["NX_class"] = "NXcollection"
        m["pcoedge64"] = h5py.SoftLink("/1.1/instrument/pcoedge64/data")


@pytest.mark.parametrize("dataset", ["", ":/1.1/instrument/pcoedge64/data", ":/1.1/measurement/pcoedge64"])
def test_rd8_bliss_raw_detector_frames_are_refused(tmp_path, vol, dataset):
    p = tmp_path / "sample_0001.h5"
    _bliss_raw(p, vol)
    with pytest.raises(TomosegError, match=r"holds raw projections \(NeXus NXdetector /1.1/instrument/pcoedge64: "
                                           r"the detector's frames\), not a reconstructed volume; reconstruct it "
                                           r"first \(e.g. tomopy, nabu, tomocupy\) \(an ESRF Bliss scan: nxtomomill "
                                           r"h52nx, then nabu\)"):
        open_volume(f"{p}{dataset}")


def test_rd10_a_file_system_without_locks_is_said_so_with_the_way_round(tmp_path):
    """NFS without a lock daemon: HDF5 cannot lock the file (ENOLCK), and h5py says "unable to lock file, errno =
    37". That file system cannot be made here, so the message is checked on HDF5's own text (as h5py 3.16 raises
    it); the way round it gives, HDF5_USE_FILE_LOCKING=FALSE, is checked for real below."""
    from tomoseg.io.hdf5 import _open_error

    p = tmp_path / "rec.h5"
    exc = OSError(37, "Unable to synchronously open file (unable to lock file, errno = 37, error message = 'No "
                      "locks available')")
    assert _open_error(p, exc) == (
        f"{p}: HDF5 could not lock the file (errno 37: No locks available): its file system (NFS?) offers no file "
        "locks; the file is not damaged. Run again with HDF5's locking off (export HDF5_USE_FILE_LOCKING=FALSE), "
        "or copy the file to a local disk")


def test_rd10_hdf5_use_file_locking_false_opens_a_file_whose_lock_is_held(tmp_path, vol):
    """The variable the RD10 message names does what it says with this h5py: a reader that does not lock opens a
    file whose lock another process holds."""
    import os
    import subprocess
    import sys

    p = tmp_path / "held.h5"
    with h5py.File(p, "w") as f:
        f["vol"] = vol
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); "
                               "print('held', flush=True); time.sleep(60)", str(p)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        reader = "import sys, h5py; print(h5py.File(sys.argv[1], 'r')['vol'].shape)"
        locked = subprocess.run([sys.executable, "-c", reader, str(p)], capture_output=True, text=True)
        assert "unable to lock file" in locked.stderr
        free = subprocess.run([sys.executable, "-c", reader, str(p)], capture_output=True, text=True,
                              env={**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"})
        assert free.stdout.strip() == str(vol.shape), free.stderr
    finally:
        holder.kill()
        holder.wait()
