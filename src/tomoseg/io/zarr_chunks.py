"""Zarr arrays on a local disk read and written by several threads at once.

Zarr 3 runs every read through one event-loop thread: reader threads that each read a block of a
256x1024x1024 uint8 volume (zstd, 64x128x128 chunks) took 0.152 s with one thread and 0.159 s with two,
while decompressing the same chunk files in two threads took 0.081 s against 0.153 s in one
(benchmarks/results/read_scaling.md). On a GPU host's 16 cores that one thread bounds ``segment``'s
statistics pass and its window reads. :class:`ParallelChunks` reads each chunk's file and decompresses it
with numcodecs (the codecs Zarr itself calls; they let other threads run) in the calling thread, so reader
threads read in parallel.

:class:`ChunkWriter` does the same for writing whole chunks (``segment``'s cores): encoded with numcodecs and
written on tomoseg's threads.

Only the layouts whose bytes this reproduces exactly are handled: a regular chunk grid in C order on a local
store, with no filters and at most one compressor (zstd, blosc, gzip, zlib or lz4), Zarr v2 or v3.
Anything else (sharding, transposes, checksums, remote or zip stores...) is read through Zarr as before;
Blosc is written through Zarr too. A missing chunk file is the fill value, as Zarr reads it. Tested against
Zarr's own reads and writes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .blocks import as_box, assemble, chunk_indices

_COMPRESSORS = ("zstd", "blosc", "gzip", "zlib", "lz4")


class Layout(NamedTuple):
    """Where and how an array's chunks are stored: what this module needs to read (and write) them itself."""

    folder: Path              # the array's folder; chunk files under it by the array's chunk key encoding
    stored: np.dtype          # the dtype as stored (byte order included)
    decode: Callable          # bytes of a chunk file -> its raw bytes
    encode: Callable | None   # raw bytes -> bytes of a chunk file; None: written through Zarr


def parallel_reader(array):
    """``array`` (a 3D ``zarr.Array``) wrapped in :class:`ParallelChunks` where its chunks can be read here, else
    ``array`` itself."""
    layout = _safe_layout(array)
    return array if layout is None else ParallelChunks(array, layout)


def parallel_writer(array, threads: int = 1):
    """``array`` (a 3D ``zarr.Array`` whose chunks are all written, as ``zarr_store.store_chunks`` sets) wrapped in
    :class:`ChunkWriter` where this module can write its chunks, else ``array`` itself."""
    layout = _safe_layout(array)
    if layout is None or layout.encode is None or not array.config.write_empty_chunks:
        return array
    return ChunkWriter(array, layout, threads=threads)


def _safe_layout(array) -> Layout | None:
    try:
        return _layout(array)
    except Exception:  # noqa: BLE001 - any metadata this does not understand: Zarr reads and writes it
        return None


def _layout(array) -> Layout | None:
    """The :class:`Layout` of an array this module can read, else None."""
    from zarr.storage import LocalStore

    meta = array.metadata
    store = array.store_path.store
    if not isinstance(store, LocalStore) or len(array.shape) != 3 or array.dtype.kind not in "uifb":
        return None
    grid = meta.chunks if meta.zarr_format == 2 else getattr(meta.chunk_grid, "chunk_shape", ())  # (Zarr 3.4
    if tuple(grid) != tuple(array.chunks):  # deprecates chunk_grid on Zarr 2 metadata)
        return None
    folder = Path(store.root) / array.store_path.path
    if meta.zarr_format == 2:
        if meta.order != "C" or meta.filters:
            return None
        stored = np.dtype(meta.dtype.to_native_dtype() if hasattr(meta.dtype, "to_native_dtype") else meta.dtype)
        codec = meta.compressor
        if codec is None:
            return Layout(folder, stored, bytes, bytes)
        if codec.codec_id not in _COMPRESSORS:
            return None
        return Layout(folder, stored, codec.decode, codec.encode)
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    codecs = list(meta.codecs)
    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return None
    endian = codecs[0].endian
    stored = np.dtype(array.dtype)
    if stored.itemsize > 1 and endian is not None:
        endian = getattr(endian, "value", endian)  # an Enum before Zarr 3.2 (or so), a string since
        stored = stored.newbyteorder("<" if endian == "little" else ">")
    if len(codecs) == 1:
        return Layout(folder, stored, bytes, bytes)
    import numcodecs

    codec = codecs[1]
    if type(codec) is ZstdCodec:
        return Layout(folder, stored, numcodecs.Zstd().decode,
                      numcodecs.Zstd(level=codec.level, checksum=codec.checksum).encode)
    if type(codec) is GzipCodec:
        return Layout(folder, stored, numcodecs.GZip().decode, numcodecs.GZip(level=codec.level).encode)
    if type(codec) is BloscCodec:
        return Layout(folder, stored, numcodecs.Blosc().decode, None)  # written through Zarr
    return None


class _ChunkFiles:
    """A Zarr array seen as its chunk files (:class:`Layout`); attributes it does not have are the array's."""

    def __init__(self, array, layout: Layout):
        self.array, self.layout = array, layout
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.ndim = 3
        fill = array.metadata.fill_value
        self._fill = 0 if fill is None else fill

    def _path(self, index) -> Path:
        return self.layout.folder / self.array.metadata.encode_chunk_key(tuple(int(i) for i in index))

    def __getattr__(self, name):  # attrs, metadata, ...: the array's
        return getattr(self.array, name)


class ParallelChunks(_ChunkFiles):
    """A Zarr array read chunk by chunk from its files, the decompression in the calling thread.

    Sliced with three step-1 slices it assembles the chunks the box touches; any other key goes to Zarr."""

    def _chunk(self, index) -> np.ndarray:
        try:
            data = self._path(index).read_bytes()
        except FileNotFoundError:  # never written: the fill value, as Zarr reads it
            return np.full(self.chunks, self._fill, self.dtype)
        return np.frombuffer(self.layout.decode(data), self.layout.stored).reshape(self.chunks)

    def __getitem__(self, key):
        box = as_box(key, self.shape)
        if box is None:
            return self.array[key]
        return assemble(box, self.chunks, self.dtype, self._chunk)


class ChunkWriter(_ChunkFiles):
    """A Zarr array whose whole chunks are encoded and written by tomoseg's threads, not Zarr's one event-loop
    thread: ``writer[region] = block`` with ``region`` three slices on chunk edges (or the array's far faces)
    writes each chunk's file, the chunks of one call on ``threads`` threads; any other key goes to Zarr. Each
    chunk file is written under a temporary name and renamed, so a killed process leaves whole chunks only.
    Every chunk is stored, all-zero ones too, as ``write_empty_chunks=True`` says."""

    def __init__(self, array, layout: Layout, *, threads: int = 1):
        super().__init__(array, layout)
        self._threads = max(1, int(threads))

    def _aligned(self, key) -> tuple | None:
        box = as_box(key, self.shape)
        if box is None or any(b.start % c or (b.stop % c and b.stop != s) or b.stop <= b.start
                              for b, c, s in zip(box, self.chunks, self.shape)):
            return None
        return box

    def _write(self, index, data: np.ndarray) -> None:
        stored = self.layout.stored
        full = data
        if data.shape != self.chunks:  # at the far faces: Zarr stores whole chunks, the rest the fill value
            full = np.full(self.chunks, self._fill, stored)
            full[tuple(slice(0, n) for n in data.shape)] = data
        raw = np.ascontiguousarray(full, dtype=stored)
        path = self._path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        tmp.write_bytes(self.layout.encode(raw))
        os.replace(tmp, path)

    def __setitem__(self, key, value) -> None:
        box = self._aligned(key)
        if box is None:
            self.array[key] = value
            return
        block = np.broadcast_to(np.asarray(value, dtype=self.dtype), tuple(b.stop - b.start for b in box))
        jobs = []
        for index in chunk_indices(box, self.chunks):
            lo = [i * c - b.start for i, c, b in zip(index, self.chunks, box)]
            part = block[tuple(slice(a, min(a + c, b.stop - b.start)) for a, c, b in zip(lo, self.chunks, box))]
            jobs.append((index, part))
        if self._threads > 1 and len(jobs) > 1:
            from ..thread_pool import ThreadPool

            with ThreadPool(min(self._threads, len(jobs))) as pool:
                list(pool.map(lambda job: self._write(*job), jobs))
        else:
            for job in jobs:
                self._write(*job)

    def __getitem__(self, key):
        return self.array[key]
