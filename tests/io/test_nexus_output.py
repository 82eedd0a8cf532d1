"""HDF5 outputs named .nxs/.nx5 are NeXus: the dataset is the signal of an NXdata group in an NXentry, reached from
/@default (review W3: they were plain groups, which NeXus readers do not see)."""

import h5py
import numpy as np
import pytest

from tomoseg.io import create_volume, open_volume, write_volume
from tomoseg.io.output_guard import MARK, provenance_path, written_by_tomoseg

VS = (50.0, 29.33, 31.0)


def _attrs(obj) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}


def _data(shape=(5, 6, 7)):
    return np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)


def _is_nexus_data(f, entry="entry", group="data", signal="data"):
    assert _attrs(f[entry])["NX_class"] == "NXentry" and _attrs(f[entry])["default"] == group
    assert _attrs(f[entry][group])["NX_class"] == "NXdata" and _attrs(f[entry][group])["signal"] == signal


@pytest.mark.parametrize("name", ["n.nxs", "n.nxs:/entry/data/data", "n.NX5"])
def test_nexus_output_is_nexus_and_reads_back(tmp_path, name):
    data = _data()
    write_volume(str(tmp_path / name), data, voxel_size=VS)
    file = tmp_path / name.split(":")[0]
    with h5py.File(file, "r") as f:
        assert list(f) == ["entry"] and _attrs(f)["default"] == "entry"
        _is_nexus_data(f)
        ds = f["/entry/data/data"]
        assert MARK in ds.attrs and list(ds.attrs["voxel_size_nm"]) == list(VS)
        np.testing.assert_array_equal(ds[()], data)
    assert written_by_tomoseg(file, None, "hdf5") and written_by_tomoseg(file, "/entry/data/data", "hdf5")
    assert provenance_path(str(file)).name == f"{file.name}#entry#data#data.provenance.json"
    with open_volume(str(file)) as vol:  # no dataset named: NeXus' /@default leads to it
        assert str(vol.path).endswith(":/entry/data/data") and vol.voxel_size == VS
        np.testing.assert_array_equal(vol[:, :, :], data)
    write_volume(str(file), data + 1, voxel_size=VS, overwrite=True)  # replaced in the file: still NeXus
    with h5py.File(file, "r") as f:
        _is_nexus_data(f)
        np.testing.assert_array_equal(f["/entry/data/data"][()], data + 1)


def test_second_dataset_of_a_nexus_output_and_other_paths(tmp_path):
    """A second NXdata in tomoseg's entry keeps the entry's default; a path that is not /ENTRY/GROUP/NAME stays
    plain HDF5; .h5 outputs are not NeXus."""
    write_volume(str(tmp_path / "s.nxs"), _data())
    write_volume(str(tmp_path / "s.nxs:/entry/mask/data"), _data() % 2)
    write_volume(str(tmp_path / "s.nxs:/prob"), _data())
    write_volume(str(tmp_path / "p.h5:/entry/data/data"), _data())
    with h5py.File(tmp_path / "s.nxs", "r") as f:
        _is_nexus_data(f)
        assert _attrs(f["/entry/mask"]) == {"NX_class": "NXdata", "signal": "data"}
        assert _attrs(f["/entry"])["default"] == "data" and _attrs(f)["default"] == "entry"
        assert not any(k.startswith("NX") or k == "signal" for k in _attrs(f["/prob"]))
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert "NX_class" not in f["/entry"].attrs and "default" not in f.attrs
    np.testing.assert_array_equal(open_volume(str(tmp_path / "s.nxs")).read(), _data())


def test_nexus_output_into_another_programs_file_is_refused_and_a_second_entry_keeps_the_default(tmp_path):
    """Another program's NeXus file takes no dataset of tomoseg's (D1: the copy into it is not atomic); in
    tomoseg's own file a second NXentry is marked as NeXus data and the file's default stays the first."""
    from tomoseg.errors import TomosegError

    path = tmp_path / "scan.nxs"
    with h5py.File(path, "w") as f:
        entry = f.create_group("scan")
        entry.attrs.update({"NX_class": "NXentry", "default": "raw"})
        raw = entry.create_group("raw")
        raw.attrs.update({"NX_class": "NXdata", "signal": "volume"})
        raw.create_dataset("volume", data=_data())
    before = path.read_bytes()
    with pytest.raises(TomosegError, match="an HDF5 file that tomoseg did not create"):
        create_volume(str(path) + ":/scan/seg/prob", (5, 6, 7), np.uint8)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["scan.nxs"]
    own = tmp_path / "own.nxs"
    write_volume(str(own), _data())
    with create_volume(str(own) + ":/result/data/data", (5, 6, 7), np.uint8) as w:
        w[:, :, :] = _data()
    with h5py.File(own, "r") as f:
        assert _attrs(f)["default"] == "entry"
        _is_nexus_data(f)
        _is_nexus_data(f, entry="result")


def test_a_nexus_output_and_its_default_dataset_are_one_output(tmp_path):
    from tomoseg.errors import TomosegError
    from tomoseg.io.output_guard import check_outputs_apart, same_output

    out = str(tmp_path / "o.nxs")
    assert same_output(out, out + ":/entry/data/data") and not same_output(out, out + ":/data")
    with pytest.raises(TomosegError, match="the same path"):
        check_outputs_apart([(None, out), ("--mask", out + ":/entry/data/data")])
    check_outputs_apart([(None, out), ("--mask", out + ":/entry/mask/data")])
