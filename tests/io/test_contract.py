"""One contract that every format backend passes."""

import numpy as np
import pytest

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.io import create_volume, open_volume, read_volume, write_volume

FORMATS = {
    "tiff": "vol.tif",
    "tiff-folder": "slices",
    "hdf5": "vol.h5:/entry/data/data",
    "zarr": "vol.ome.zarr",
    "nrrd": "vol.nrrd",
    "pyhst-vol": "vol.vol",
    "npy": "vol.npy",
}
DTYPES = {  # what each format can hold of the three the contract asks for
    "pyhst-vol": ("float32",),
}
VOXEL_SIZE = (29.33, 29.33, 29.33)
ANISO = (40.0, 29.33, 25.5)


def _data(dtype, rng, shape=(7, 12, 10)):
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 30, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.fixture(params=sorted(FORMATS))
def fmt(request):
    return request.param


def _path(tmp_path, fmt):
    return str(tmp_path / FORMATS[fmt])


class TestFormatContract:
    @pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
    def test_write_read_equal(self, tmp_path, fmt, dtype, rng):
        if dtype not in DTYPES.get(fmt, (dtype,)):
            pytest.skip(f"{fmt} holds float32 only")
        data = _data(dtype, rng)
        path = _path(tmp_path, fmt)
        write_volume(path, data, voxel_size=VOXEL_SIZE)
        back = read_volume(path)
        assert back.dtype == data.dtype
        np.testing.assert_array_equal(back, data)
        assert open_volume(path).format == fmt

    def test_partial_read_reads_only_that_region(self, tmp_path, fmt, rng):
        data = _data("float32", rng, (9, 16, 11))
        path = _path(tmp_path, fmt)
        write_volume(path, data)
        with open_volume(path) as vol:
            assert vol.shape == data.shape
            np.testing.assert_array_equal(vol[2:5, 3:9, 1:4], data[2:5, 3:9, 1:4])
            np.testing.assert_array_equal(vol[4], data[4])
            # the reader is asked for the region, not the whole volume
            calls = []
            inner = vol._array
            getitem = type(inner).__getitem__

            class Spy:
                shape, dtype = inner.shape, inner.dtype

                def __getitem__(self, key):
                    calls.append(key)
                    return getitem(inner, key)

            vol._array = Spy()
            region = vol[2:5, 3:9, 1:4]
            assert region.shape == (3, 6, 3)
            assert calls == [(slice(2, 5), slice(3, 9), slice(1, 4))]

    def test_tile_by_tile_write_equals_whole_write(self, tmp_path, fmt, rng):
        data = _data("float32", rng, (10, 13, 9))
        whole, tiled = tmp_path / "a", tmp_path / "b"
        whole.mkdir()
        tiled.mkdir()
        write_volume(_path(whole, fmt), data)
        with create_volume(_path(tiled, fmt), data.shape, data.dtype) as w:
            for z in range(0, 10, 4):
                for y in range(0, 13, 5):
                    for x in range(0, 9, 4):
                        w[z:z + 4, y:y + 5, x:x + 4] = data[z:z + 4, y:y + 5, x:x + 4]
        np.testing.assert_array_equal(read_volume(_path(tiled, fmt)), read_volume(_path(whole, fmt)))

    def test_voxel_size_survives_round_trip(self, tmp_path, fmt, rng):
        voxel = VOXEL_SIZE if fmt == "pyhst-vol" else ANISO
        path = _path(tmp_path, fmt)
        write_volume(path, _data("float32", rng), voxel_size=voxel)
        got = open_volume(path).voxel_size
        assert got == pytest.approx(voxel, rel=1e-6)  # .npy: from tomoseg's provenance record beside it

    def test_user_voxel_size_overrides_the_file(self, tmp_path, fmt, rng):
        path = _path(tmp_path, fmt)
        write_volume(path, _data("float32", rng), voxel_size=VOXEL_SIZE)
        assert open_volume(path, voxel_size=(1, 2, 3)).voxel_size == (1.0, 2.0, 3.0)

    def test_missing_file_names_the_path(self, tmp_path, fmt):
        path = _path(tmp_path, fmt)
        with pytest.raises(TomosegError, match=str(tmp_path)):
            open_volume(path)

    def test_existing_output_is_not_overwritten(self, tmp_path, fmt, rng):
        path = _path(tmp_path, fmt)
        data = _data("float32", rng)
        write_volume(path, data)
        with pytest.raises(TomosegError, match="overwrite"):
            write_volume(path, data * 2)
        np.testing.assert_array_equal(read_volume(path), data)
        write_volume(path, data * 2, overwrite=True)
        np.testing.assert_array_equal(read_volume(path), data * 2)

    def test_failed_write_leaves_no_file(self, tmp_path, fmt, rng):
        path = _path(tmp_path, fmt)
        with pytest.raises(RuntimeError):
            with create_volume(path, (4, 5, 6), "float32") as w:
                w[0:2] = 1.0
                raise RuntimeError("crash")
        assert list(tmp_path.iterdir()) == []

    def test_volume_pickles_for_workers(self, tmp_path, fmt, rng):
        import pickle

        path = _path(tmp_path, fmt)
        data = _data("float32", rng)
        write_volume(path, data, voxel_size=VOXEL_SIZE)
        vol = pickle.loads(pickle.dumps(open_volume(path, voxel_size=(5, 5, 5))))
        np.testing.assert_array_equal(vol[1:3], data[1:3])
        assert vol.voxel_size == (5.0, 5.0, 5.0)


def test_missing_hdf5_dataset_names_it(tmp_path, rng):
    write_volume(str(tmp_path / "v.h5:/entry/data/data"), _data("uint8", rng))
    with pytest.raises(TomosegError, match="no dataset '/entry/other'"):
        open_volume(str(tmp_path / "v.h5:/entry/other"))
    # without a dataset name, the NeXus default is found
    assert open_volume(str(tmp_path / "v.h5")).shape == (7, 12, 10)


def test_ome_zarr_metadata_has_ngff_scale(tmp_path, rng):
    import json

    write_volume(str(tmp_path / "v.zarr"), _data("uint8", rng), voxel_size=ANISO)
    meta = json.loads((tmp_path / "v.zarr" / "zarr.json").read_text(encoding="utf-8"))["attributes"]["ome"]
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "nanometer" for a in ms["axes"])
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx(list(ANISO))


def test_imagej_tiff_metadata_for_fiji(tmp_path, rng):
    import tifffile

    write_volume(str(tmp_path / "v.tif"), _data("uint16", rng), voxel_size=ANISO)
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "nm"
        assert tif.imagej_metadata["spacing"] == pytest.approx(40.0)
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(25.5, rel=1e-6)


def test_pyhst_info_sidecar_is_read(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=">f4").reshape(2, 3, 4)
    (tmp_path / "scan.vol").write_bytes(data.tobytes())
    (tmp_path / "scan.vol.info").write_text(
        "! PyHST_SLAVE VOLUME INFO FILE\nNUM_X =  4\nNUM_Y =  3\nNUM_Z =  2\nvoxelSize = 0.02933\n"
        "BYTEORDER = HIGHBYTEFIRST\nValMin = 0\nValMax = 23\n")
    vol = open_volume(tmp_path / "scan.vol")
    np.testing.assert_array_equal(vol.read(), data.astype(np.float32))
    assert vol.voxel_size == pytest.approx((29.33,) * 3)


def test_pyhst_size_mismatch_is_clear(tmp_path):
    (tmp_path / "scan.vol").write_bytes(b"\0" * 40)
    (tmp_path / "scan.vol.info").write_text("NUM_X = 4\nNUM_Y = 3\nNUM_Z = 2\n")
    with pytest.raises(TomosegError, match="truncated"):
        open_volume(tmp_path / "scan.vol")


def test_volume_repr_and_public_names(tmp_path):
    write_volume(str(tmp_path / "v.npy"), np.zeros((2, 3, 4), np.uint8))
    assert "unknown" in repr(tomoseg.open_volume(tmp_path / "v.npy"))
