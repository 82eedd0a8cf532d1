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

import numpy as np

from .blocks import assemble, chunk_indices

_COMPRESSORS = ("zstd", "blosc", "gzip", "zlib", "lz4")


def parallel_reader(array):
    """``array`` (a 3D ``zarr.Array``) wrapped in :class:`ParallelChunks` where its chunks can be read here, else
    ``array`` itself."""
    plan = _safe_plan(array)
    return array if plan is None else ParallelChunks(array, *plan[:3])


def _safe_plan(array):
    try:
        return _plan(array)
    except Exception:  # noqa: BLE001 - any metadata this does not understand: Zarr reads and writes it
        return None


def _plan(array):
    """``(folder, dtype as stored, decode, encode)`` for an array this module can read (``encode`` None where it
    cannot write it), else None."""
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
        if codec is None:
            return folder, stored, bytes, bytes
        return folder, stored, codec.decode, codec.encode
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    codecs = list(meta.codecs)
    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return None
    endian = codecs[0].endian
    stored = np.dtype(array.dtype)
    if stored.itemsize > 1 and endian is not None:
        stored = stored.newbyteorder("<" if endian.value == "little" else ">")
    if len(codecs) == 1:
        return folder, stored, bytes, bytes
    import numcodecs

    codec = codecs[1]
    if type(codec) is ZstdCodec:
        return (folder, stored, numcodecs.Zstd().decode,
                numcodecs.Zstd(level=codec.level, checksum=codec.checksum).encode)
    if type(codec) is GzipCodec:
        return folder, stored, numcodecs.GZip().decode, numcodecs.GZip(level=codec.level).encode
    if type(codec) is BloscCodec:
        return folder, stored, numcodecs.Blosc().decode, None  # written through Zarr
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


def parallel_writer(array, threads: int = 1):
    """``array`` (a 3D ``zarr.Array`` whose chunks are all written, as ``zarr_store.store_chunks`` sets) wrapped in
    :class:`ChunkWriter` where this module can write its chunks, else ``array`` itself."""
    plan = _safe_plan(array)
    if plan is None or plan[3] is None or not array.config.write_empty_chunks:
        return array
    return ChunkWriter(array, plan[0], plan[1], plan[3], threads=threads)


class ChunkWriter:
    """A Zarr array whose whole chunks are encoded and written by tomoseg's threads, not Zarr's one event-loop
    thread: ``writer[region] = block`` with ``region`` three slices on chunk edges (or the array's far faces)
    writes each chunk's file, the chunks of one call on ``threads`` threads; any other key goes to Zarr. Each
    chunk file is written under a temporary name and renamed, so a killed process leaves whole chunks only.
    Every chunk is stored, all-zero ones too, as ``write_empty_chunks=True`` says."""

    def __init__(self, array, folder: Path, stored: np.dtype, encode, *, threads: int = 1):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(c) for c in array.chunks)
        self._folder, self._stored, self._encode = folder, stored, encode
        fill = array.metadata.fill_value
        self._fill = 0 if fill is None else fill
        self._threads = max(1, int(threads))

    def _aligned(self, key) -> tuple | None:
        if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(k, slice) and k.step in (None, 1)
                                                                  for k in key)):
            return None
        box = tuple(slice(*k.indices(s)[:2]) for k, s in zip(key, self.shape))
        if any(b.start % c or (b.stop % c and b.stop != s) or b.stop <= b.start
               for b, c, s in zip(box, self.chunks, self.shape)):
            return None
        return box

    def _write(self, index, data: np.ndarray) -> None:
        full = data
        if data.shape != self.chunks:  # at the far faces: Zarr stores whole chunks, the rest the fill value
            full = np.full(self.chunks, self._fill, self._stored)
            full[tuple(slice(0, n) for n in data.shape)] = data
        raw = np.ascontiguousarray(full, dtype=self._stored)
        path = self._folder / self.array.metadata.encode_chunk_key(tuple(int(i) for i in index))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        tmp.write_bytes(self._encode(raw))
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
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self._threads, len(jobs))) as pool:
                list(pool.map(lambda job: self._write(*job), jobs))
        else:
            for job in jobs:
                self._write(*job)

    def __getitem__(self, key):
        return self.array[key]

    def __getattr__(self, name):  # attrs, metadata, ...: the array's
        return getattr(self.array, name)
