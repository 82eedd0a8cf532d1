"""Zarr arrays on a local disk read by several threads at once.

Zarr 3 runs every read through one event-loop thread: reader threads that each read a block of a
256x1024x1024 uint8 volume (zstd, 64x128x128 chunks) took 0.152 s with one thread and 0.159 s with two,
while decompressing the same chunk files in two threads took 0.081 s against 0.153 s in one
(benchmarks/results/read_scaling.md). On a GPU host's 16 cores that one thread bounds ``segment``'s
statistics pass and its window reads. :class:`ParallelChunks` reads each chunk's file and decompresses it
with numcodecs (the codecs Zarr itself calls; they let other threads run) in the calling thread, so reader
threads read in parallel.

Only the layouts whose bytes this reproduces exactly are handled: a regular chunk grid in C order on a local
store, with no filters and at most one compressor (zstd, blosc, gzip, zlib or lz4), Zarr v2 or v3.
Anything else (sharding, transposes, checksums, remote or zip stores...) is read through Zarr as before.
A missing chunk file is the fill value, as Zarr reads it. Tested against Zarr's own reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .blocks import assemble

_COMPRESSORS = ("zstd", "blosc", "gzip", "zlib", "lz4")


def parallel_reader(array):
    """``array`` (a 3D ``zarr.Array``) wrapped in :class:`ParallelChunks` where its chunks can be read here, else
    ``array`` itself."""
    try:
        plan = _plan(array)
    except Exception:  # noqa: BLE001 - any metadata this does not understand: Zarr reads it
        plan = None
    return array if plan is None else ParallelChunks(array, *plan)


def _plan(array):
    """``(folder, dtype as stored, decode)`` for an array this module can read, else None."""
    from zarr.storage import LocalStore

    meta = array.metadata
    store = array.store_path.store
    if not isinstance(store, LocalStore) or len(array.shape) != 3 or array.dtype.kind not in "uifb":
        return None
    if tuple(getattr(meta.chunk_grid, "chunk_shape", ())) != tuple(array.chunks):
        return None
    folder = Path(store.root) / array.store_path.path
    if meta.zarr_format == 2:
        if meta.order != "C" or meta.filters:
            return None
        stored = np.dtype(meta.dtype.to_native_dtype() if hasattr(meta.dtype, "to_native_dtype") else meta.dtype)
        codec = meta.compressor
        if codec is not None and codec.codec_id not in _COMPRESSORS:
            return None
        return folder, stored, (codec.decode if codec is not None else bytes)
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    codecs = list(meta.codecs)
    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return None
    endian = codecs[0].endian
    stored = np.dtype(array.dtype)
    if stored.itemsize > 1 and endian is not None:
        stored = stored.newbyteorder("<" if endian.value == "little" else ">")
    if len(codecs) == 1:
        return folder, stored, bytes
    import numcodecs

    codec = codecs[1]
    if type(codec) is ZstdCodec:
        return folder, stored, numcodecs.Zstd().decode
    if type(codec) is GzipCodec:
        return folder, stored, numcodecs.GZip().decode
    if type(codec) is BloscCodec:
        return folder, stored, numcodecs.Blosc().decode
    return None


class ParallelChunks:
    """A Zarr array read chunk by chunk from its files, the decompression in the calling thread.

    Sliced with three step-1 slices it assembles the chunks the box touches; any other key goes to Zarr."""

    def __init__(self, array, folder: Path, stored: np.dtype, decode):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.ndim = 3
        self._folder, self._stored, self._decode = folder, stored, decode
        fill = array.metadata.fill_value
        self._fill = 0 if fill is None else fill

    def _chunk(self, index) -> np.ndarray:
        path = self._folder / self.array.metadata.encode_chunk_key(tuple(int(i) for i in index))
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # never written: the fill value, as Zarr reads it
            return np.full(self.chunks, self._fill, self.dtype)
        return np.frombuffer(self._decode(data), self._stored).reshape(self.chunks)

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 3
                and all(isinstance(k, slice) and k.step in (None, 1) for k in key)):
            return self.array[key]
        box = tuple(slice(*k.indices(s)[:2]) for k, s in zip(key, self.shape))
        return assemble(box, self.chunks, self.dtype, self._chunk)

    def __getattr__(self, name):  # attrs, metadata, ...: the array's
        return getattr(self.array, name)
