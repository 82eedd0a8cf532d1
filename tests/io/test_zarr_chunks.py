"""Zarr arrays read chunk by chunk by the calling thread: the same arrays as Zarr's own reads."""

from concurrent.futures import ThreadPoolExecutor

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, write_volume
from tomoseg.io.zarr_chunks import ParallelChunks, parallel_reader


def _boxes(rng, shape, n=40):
    for _ in range(n):
        a = [int(rng.integers(0, s)) for s in shape]
        b = [int(rng.integers(x + 1, s + 1)) for x, s in zip(a, shape)]
        yield tuple(slice(x, y) for x, y in zip(a, b))


SHAPE, CHUNKS = (21, 37, 50), (8, 16, 16)  # edge chunks stick out on every axis


@pytest.mark.parametrize("dtype,kwargs", [
    ("uint8", dict(zarr_format=3, compressors=[ZstdCodec(level=3)])),
    ("uint8", dict(zarr_format=3, compressors=[ZstdCodec(checksum=True)])),
    ("uint16", dict(zarr_format=3, compressors=[GzipCodec(level=5)])),
    ("int16", dict(zarr_format=3, compressors=[BloscCodec(cname="lz4", shuffle="shuffle")])),
    ("float32", dict(zarr_format=3, compressors=None)),
    ("uint16", dict(zarr_format=3, serializer=BytesCodec(endian="big"), compressors=[ZstdCodec()])),
    ("uint8", dict(zarr_format=2, compressors=numcodecs.Zstd())),
    (">u2", dict(zarr_format=2, compressors=numcodecs.Blosc(shuffle=numcodecs.Blosc.BITSHUFFLE))),
    ("<f4", dict(zarr_format=2, compressors=numcodecs.Zlib(level=1))),
    ("uint16", dict(zarr_format=2, compressors=None)),
])
def test_chunks_decoded_here_equal_zarr(tmp_path, rng, dtype, kwargs):
    data = (rng.random(SHAPE) * 1000).astype(dtype)
    path = tmp_path / "v.zarr"
    z = zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype, fill_value=7, **kwargs)
    z[:] = data
    array = zarr.open_array(str(path), mode="r")
    reader = parallel_reader(array)
    assert isinstance(reader, ParallelChunks)
    for box in _boxes(rng, SHAPE):
        np.testing.assert_array_equal(reader[box], array[box])
        assert reader[box].dtype == array[box].dtype
    with ThreadPoolExecutor(4) as pool:  # from several threads at once, as segment reads
        boxes = list(_boxes(rng, SHAPE, 60))
        for box, got in zip(boxes, pool.map(lambda b: reader[b], boxes)):
            np.testing.assert_array_equal(got, data[box].astype(array.dtype))
    assert reader[5, 3:9, :].shape == array[5, 3:9, :].shape  # other keys: Zarr's
    assert reader[2:2, :, :].shape == (0, 37, 50)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_unwritten_chunks_read_as_the_fill_value(tmp_path, zarr_format):
    path = tmp_path / "v.zarr"
    z = zarr.create_array(str(path), shape=(16, 32, 32), chunks=(8, 16, 16), dtype="uint16", fill_value=9,
                          zarr_format=zarr_format)
    z[0:8, 0:16, 0:16] = 1  # one chunk written, seven never
    array = zarr.open_array(str(path), mode="r")
    reader = parallel_reader(array)
    assert isinstance(reader, ParallelChunks)
    got = reader[:, :, :]
    np.testing.assert_array_equal(got, array[:, :, :])
    assert got[0, 0, 0] == 1 and got[15, 31, 31] == 9


@pytest.mark.parametrize("kwargs", [
    dict(zarr_format=3, shards=(16, 32, 32)),                                        # sharding
    dict(zarr_format=3, compressors=[ZstdCodec(), zarr.codecs.Crc32cCodec()]),      # two bytes codecs
    dict(zarr_format=2, filters=[numcodecs.Delta(dtype="<u2")], compressors=None),  # a filter
])
def test_other_layouts_are_read_by_zarr(tmp_path, rng, kwargs):
    data = rng.integers(0, 200, (16, 32, 32), dtype=np.uint16)
    path = tmp_path / "v.zarr"
    z = zarr.create_array(str(path), shape=data.shape, chunks=(8, 16, 16), dtype="uint16", **kwargs)
    z[:] = data
    assert not isinstance(parallel_reader(zarr.open_array(str(path), mode="r")), ParallelChunks)
    with open_volume(str(path)) as vol:  # and the volume reads them as before
        np.testing.assert_array_equal(vol[:, :, :], data)


def test_a_zarr_volume_reads_through_the_chunks_and_equals_its_data(tmp_path, rng):
    data = rng.integers(0, 255, (40, 70, 90), dtype=np.uint8)
    write_volume(str(tmp_path / "v.zarr"), data)
    with open_volume(str(tmp_path / "v.zarr")) as vol:
        assert isinstance(vol._array, ParallelChunks)  # tomoseg's own Zarr (OME-Zarr group, zstd)
        np.testing.assert_array_equal(vol[:, :, :], data)
        np.testing.assert_array_equal(vol[3:30, 1:69, 80:90], data[3:30, 1:69, 80:90])


def test_a_damaged_chunk_is_a_clear_error(tmp_path, rng):
    data = rng.integers(0, 255, (40, 70, 90), dtype=np.uint8)
    write_volume(str(tmp_path / "v.zarr"), data)
    chunk = next(p for p in (tmp_path / "v.zarr").rglob("*") if p.is_file() and "c" in p.relative_to(tmp_path).parts)
    chunk.write_bytes(b"not a zstd frame" * 10)
    with open_volume(str(tmp_path / "v.zarr")) as vol:
        with pytest.raises(TomosegError, match="cannot be read"):
            vol[:, :, :]


@pytest.mark.parametrize("dtype,kwargs", [
    ("uint8", dict(zarr_format=3, compressors=[ZstdCodec(level=0)])),            # segment's work stores
    ("uint8", dict(zarr_format=3, compressors=[ZstdCodec(level=5, checksum=True)])),
    ("uint16", dict(zarr_format=3, compressors=[GzipCodec(level=1)])),
    ("uint16", dict(zarr_format=3, serializer=BytesCodec(endian="big"), compressors=None)),
    ("<f4", dict(zarr_format=2, compressors=numcodecs.Zlib(level=1))),
    (">u2", dict(zarr_format=2, compressors=numcodecs.Zstd())),
])
def test_chunks_written_here_read_back_by_zarr(tmp_path, rng, dtype, kwargs):
    from tomoseg.io.zarr_chunks import ChunkWriter, parallel_writer
    from tomoseg.io.zarr_store import store_chunks

    path = tmp_path / "v.zarr"
    zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype, fill_value=7, **kwargs)
    writer = parallel_writer(store_chunks(zarr.open_array(str(path), mode="r+")), threads=3)
    assert isinstance(writer, ChunkWriter)
    data = (rng.random(SHAPE) * 1000).astype(dtype)
    boxes = [(slice(0, 8), slice(0, 16), slice(0, 50)),      # the last chunk along x cut by the far face
             (slice(8, 21), slice(16, 37), slice(16, 48)),    # cut along z and y
             (slice(0, 8), slice(32, 37), slice(0, 16))]
    with ThreadPoolExecutor(3) as pool:  # from several threads at once, as segment's writers do
        list(pool.map(lambda b: writer.__setitem__(b, data[b]), boxes))
    writer[2:5, 20:30, 1:3] = data[2:5, 20:30, 1:3]  # not on chunk edges: through Zarr
    back = zarr.open_array(str(path), mode="r")[:, :, :]
    expected = np.full(SHAPE, 7, back.dtype)
    for b in boxes + [(slice(2, 5), slice(20, 30), slice(1, 3))]:
        expected[b] = data[b]
    np.testing.assert_array_equal(back, expected)
    assert not [p for p in path.rglob("*.partial")]


@pytest.mark.parametrize("kwargs", [
    dict(zarr_format=3, compressors=[BloscCodec(cname="zstd")]),   # Blosc: written through Zarr
    dict(zarr_format=3, shards=(16, 32, 32)),                      # sharding
])
def test_other_layouts_are_written_by_zarr(tmp_path, kwargs):
    from tomoseg.io.zarr_chunks import ChunkWriter, parallel_writer
    from tomoseg.io.zarr_store import store_chunks

    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=(16, 32, 32), chunks=(8, 16, 16), dtype="uint8", **kwargs)
    assert not isinstance(parallel_writer(store_chunks(z)), ChunkWriter)


def test_a_store_that_skips_empty_chunks_is_written_by_zarr(tmp_path):
    from tomoseg.io.zarr_chunks import ChunkWriter, parallel_writer

    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=(16, 32, 32), chunks=(8, 16, 16), dtype="uint8")
    assert not isinstance(parallel_writer(z), ChunkWriter)  # write_empty_chunks=False: Zarr's own test decides
