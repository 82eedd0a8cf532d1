"""Reading a volume in blocks that match its storage: every stored chunk decompressed once per pass.

A chunked store (Zarr, chunked HDF5) decompresses a whole chunk for any voxel of it. Reading a Zarr volume with
chunks of 64 slices four slices at a time decompresses every chunk 16 times; a pass over a large scan then costs
many times its size. :func:`block_grid` cuts a volume into blocks of whole chunks (whole slices along x, whole
chunk rows along y and z) of bounded size, :func:`sample_blocks` picks an evenly spread share of the chunks,
:func:`sample_slabs` a stratified share of the layers of chunks along z (:func:`slab_blocks` cuts them
into blocks), and
:func:`read_blocks` reads any list of blocks with a few reads in flight (zarr, h5py and tifffile release the GIL
while they decompress), so the reading overlaps whatever the caller does with each block. :func:`chunk_regions`
is the plain grid of equal chunks (the labelling, the label image, the pyramids and the tracking walk it), and
:func:`read_ahead` runs any reads on worker threads.

No PyTorch here.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Iterator

import numpy as np

from ..thread_pool import ThreadPool

Block = tuple  # (slice z, slice y, slice x)


def storage_chunks(volume) -> tuple[int, int, int] | None:
    """The storage chunk shape of a :class:`~tomoseg.io.Volume` (or any array with ``chunks`` of 3 ints), or None
    (contiguous data, NumPy arrays)."""
    chunks = getattr(volume, "chunks", None)
    if isinstance(chunks, tuple) and len(chunks) == 3 and all(isinstance(c, (int, np.integer)) and c > 0
                                                              for c in chunks):
        return tuple(int(c) for c in chunks)
    return None


def block_grid(shape, chunks=None, *, max_voxels: int = 2**24, multiple: int = 1) -> list[Block]:
    """Blocks that cover ``shape`` in z, y order: whole slices along x, whole storage chunks along z and y.

    Parameters
    ----------
    shape : (z, y, x)
    chunks : (z, y, x) or None
        Storage chunks; None for contiguous data (then blocks of whole slices).
    max_voxels : int
        Voxels per block, at most; exceeded only where one row of chunks (``chunks[0]`` slices by
        ``chunks[1]`` rows) is larger.
    multiple : int
        Block edges along z and y (except at the volume's end) fall on multiples of this too.

    Examples
    --------
    >>> [tuple((s.start, s.stop) for s in b[:2]) for b in block_grid((100, 64, 64), (64, 32, 64), max_voxels=2**17)]
    [((0, 64), (0, 32)), ((0, 64), (32, 64)), ((64, 100), (0, 32)), ((64, 100), (32, 64))]
    """
    Z, Y, X = (int(s) for s in shape)
    cz, cy = (int(chunks[0]), int(chunks[1])) if chunks else (1, 1)
    cz, cy = math.lcm(cz, multiple), math.lcm(cy, multiple)
    per_slice = Y * X
    if cz * per_slice <= max_voxels:  # whole slices: as many chunk layers as fit
        dz = max(1, max_voxels // max(per_slice, 1) // cz) * cz
        dy = Y
    else:  # one layer of chunks, cut into rows of chunks
        dz = cz
        dy = max(1, max_voxels // max(cz * X, 1) // cy) * cy
    return [(slice(z, min(z + dz, Z)), slice(y, min(y + dy, Y)), slice(0, X))
            for z in range(0, Z, dz) for y in range(0, Y, dy)]


def sample_blocks(shape, chunks, fraction: float, *, slice_fallback: bool = True) -> list[Block]:
    """An evenly spread ``fraction`` of the volume, read as whole storage chunks (a chunked store) or whole
    slices (contiguous data: a slice is the cheapest unit there).

    Chunks are picked at equal steps through the chunk grid in z, y, x order, so the sample spans every part of
    the volume along z and across the slice, and each chunk read is used whole.
    """
    Z, Y, X = (int(s) for s in shape)
    if not chunks or (slice_fallback and int(chunks[0]) == 1):
        n = max(1, int(round(Z * fraction)))
        zs = np.unique(np.linspace(0, Z - 1, n).round().astype(int))
        return [(slice(int(z), int(z) + 1), slice(0, Y), slice(0, X)) for z in zs]
    cz, cy, cx = (int(c) for c in chunks)
    grid = (-(-Z // cz), -(-Y // cy), -(-X // cx))
    total = grid[0] * grid[1] * grid[2]
    n = max(1, min(total, int(round(total * fraction))))
    picks = np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))
    out = []
    for p in picks:
        iz, iy, ix = np.unravel_index(int(p), grid)
        out.append((slice(iz * cz, min((iz + 1) * cz, Z)), slice(iy * cy, min((iy + 1) * cy, Y)),
                    slice(ix * cx, min((ix + 1) * cx, X))))
    return out


def sample_slabs(shape, chunks, fraction: float, *, min_slabs: int = 8) -> list[slice]:
    """A stratified sample of the layers of whole storage chunks along z (whole slices where the data is not
    chunked in z): ``fraction`` of the layers, at least ``min_slabs`` (all of them where there are fewer), one
    at the centre of each of as many equal strata.

    Each layer is read whole across the slice, so a sample of layers serves both the statistics (every part of
    the cross-section, at spread depths) and the sample mask (whole slices to find the sample in; the mask is
    their union along z, a prism, so it needs no end slice). The first and last layers, once always taken
    (``linspace`` from end to end: 2 of 8 layers, 25 % of the sample against 3 % of a 64-layer volume), are
    where a scan is darkest (cone-beam fade, outside the sample): they biased the mean by 0.14 s.d. (review G5).

    Examples
    --------
    >>> [(s.start, s.stop) for s in sample_slabs((1000, 64, 64), (64, 32, 32), 0.05, min_slabs=3)]
    [(128, 192), (512, 576), (832, 896)]
    """
    Z = int(shape[0])
    depth = int(chunks[0]) if chunks else 1
    layers = -(-Z // depth)
    n = min(layers, max(int(min_slabs), int(round(layers * float(fraction)))))
    n = max(n, 1)
    picks = np.unique(((np.arange(n) + 0.5) * layers / n).astype(np.int64))  # the centre of each stratum
    return [slice(int(i) * depth, min((int(i) + 1) * depth, Z)) for i in picks]


def slab_blocks(shape, slabs, chunks=None, *, max_voxels: int = 2**24, multiple: int = 1) -> list[Block]:
    """The blocks of :func:`block_grid` that cover only the z ranges ``slabs`` (each starting on a chunk layer)."""
    Z, Y, X = (int(s) for s in shape)
    out = []
    for slab in slabs:
        for bz, by, bx in block_grid((slab.stop - slab.start, Y, X), chunks, max_voxels=max_voxels,
                                     multiple=multiple):
            out.append((slice(bz.start + slab.start, bz.stop + slab.start), by, bx))
    return out


def chunk_regions(shape, chunks) -> Iterator[tuple]:
    """The regions (tuples of slices) of a grid of ``chunks`` over ``shape``, in raster order; the last along
    each axis cut short at the volume's end.

    Examples
    --------
    >>> [tuple((s.start, s.stop) for s in r) for r in chunk_regions((3, 2), (2, 2))]
    [((0, 2), (0, 2)), ((2, 3), (0, 2))]
    """
    ranges = [range(0, s, c) for s, c in zip(shape, chunks)]
    for start in itertools.product(*ranges):
        yield tuple(slice(a, min(a + c, s)) for a, c, s in zip(start, chunks, shape))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one, as under SLURM or
    taskset; else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def worker_threads(limit: int) -> int:
    """Threads for a pass whose work lets other threads run (decompression, SciPy, NumPy): one per core, at
    least 2, at most ``limit``."""
    return max(2, min(int(limit), usable_cores()))


def read_ahead(items, read, *, threads: int) -> Iterator[tuple]:
    """``(item, read(item))`` for each of ``items`` in order, ``read`` running on ``threads`` threads with one
    more item queued, so that reading overlaps whatever the caller does with each result. With ``threads``
    below 1, one item after another in this thread."""
    items = list(items)
    if threads < 1 or len(items) < 2:
        for item in items:
            yield item, read(item)
        return
    with ThreadPool(threads) as pool:
        pending: deque = deque()
        todo = iter(items)
        try:
            for item in todo:
                pending.append((item, pool.submit(read, item)))
                if len(pending) > threads:
                    break
            while pending:
                item, fut = pending.popleft()
                following = next(todo, None)
                if following is not None:
                    pending.append((following, pool.submit(read, following)))
                yield item, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()


def read_blocks(volume, blocks, *, ahead: int = 2) -> Iterator[tuple[Block, np.ndarray]]:
    """``(block, data)`` for each of ``blocks`` in order, read on ``ahead`` threads (:func:`read_ahead`)."""
    return read_ahead(blocks, lambda b: np.asarray(volume[b]), threads=ahead)


def as_box(key, shape) -> tuple | None:
    """``key`` as a box of ``shape`` (three slices with explicit start and stop, clipped to the shape) where it is
    three slices without a step, else None (an integer, a step, an ellipsis...: left to the array itself)."""
    if not (isinstance(key, tuple) and len(key) == 3
            and all(isinstance(k, slice) and k.step in (None, 1) for k in key)):
        return None
    return tuple(slice(*k.indices(s)[:2]) for k, s in zip(key, shape))


def chunk_indices(box, chunks) -> list[tuple]:
    """Grid indices of the storage chunks that the box (three slices with start and stop) touches."""
    return list(itertools.product(*[range(k.start // c, -(-k.stop // c)) for k, c in zip(box, chunks)]))


def assemble(box, chunks, dtype, chunk_at) -> np.ndarray:
    """The box (three slices with start and stop) of a chunked volume, copied out of its chunks: ``chunk_at(index)``
    gives the chunk at grid ``index`` (starting at ``index * chunks``; cut at the volume's far faces or not)."""
    out = np.empty(tuple(max(0, k.stop - k.start) for k in box), dtype)
    if out.size == 0:
        return out
    for index in chunk_indices(box, chunks):
        _place(out, box, chunks, index, chunk_at(index))
    return out


def _copy(data: np.ndarray, allocate) -> np.ndarray:
    out = allocate(data.shape, data.dtype)
    out[...] = data
    return out


def outside_heap(shape, dtype) -> np.ndarray:
    """A new array in memory of its own (an anonymous map), given back to the system as soon as the array dies.

    For data kept a while among short-lived arrays (a cache's chunks): from malloc's heap, each kept array
    would pin the pages around it, and the heap of a pass of reads on several threads grew to twice the data
    kept (benchmarks/results/analyze_memory.md)."""
    import mmap

    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if not hasattr(mmap, "MAP_PRIVATE") or not hasattr(mmap, "MAP_ANONYMOUS"):  # Windows; Python < 3.10
        return np.empty(shape, dtype)
    buffer = mmap.mmap(-1, max(1, count * dtype.itemsize), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype, count=count).reshape(shape)


def _place(out, box, chunks, index, data) -> None:
    """Copy the part of the chunk at grid ``index`` (``data``) that lies in ``box`` into ``out`` (the box's array)."""
    lo = [max(k.start, i * c) for k, i, c in zip(box, index, chunks)]
    hi = [min(k.stop, (i + 1) * c) for k, i, c in zip(box, index, chunks)]
    out[tuple(slice(a - k.start, b - k.start) for a, b, k in zip(lo, hi, box))] = \
        data[tuple(slice(a - i * c, b - i * c) for a, b, i, c in zip(lo, hi, index, chunks))]


class ChunkCache:
    """A chunked volume whose decompressed chunks are kept (least recently used first out) up to ``max_bytes``.

    Windows read with a halo overlap their neighbours and rarely start on a chunk boundary: read straight from
    a Zarr store, tiles of 256 with a halo of 48 in chunks of 128 decompress each chunk about four times. Read
    through this cache, every chunk is decompressed once as long as the cache holds a row of windows. Slicing
    returns a NumPy array, like the volume; safe to read from several threads (a chunk wanted by two threads at
    once is read once: the second waits for the first). With ``threads`` > 1 the chunks of one read are read in
    parallel, in the order the reads come.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.arange(1000).reshape(10, 10, 10)
    >>> c = ChunkCache(v, (4, 4, 4), max_bytes=10**6)
    >>> bool((c[1:7, 2:9, 3:5] == v[1:7, 2:9, 3:5]).all()), c.reads
    (True, 12)

    Storage chunks too large to keep a row of windows of them (whole slices, as acquisition software writes
    HDF5, Zarr and TIFF stacks) are kept in bands: ``chunks`` is then the grid of what is kept (bands of the
    storage chunk along y) and ``storage`` the storage chunks; a miss reads ``band_group`` bands of one storage
    chunk at once, so that a slice is decoded about once per ``band_group`` bands of windows rather than once
    per window.
    """

    def __init__(self, volume, chunks, *, max_bytes: int, threads: int = 1, storage=None, band_group: int = 2,
                 allocate=np.empty):
        import threading
        from collections import OrderedDict

        self.volume = volume
        self.shape = tuple(int(s) for s in volume.shape)
        self.dtype = np.dtype(volume.dtype)
        self.chunks = tuple(int(c) for c in chunks)
        self.storage = tuple(int(c) for c in storage) if storage else self.chunks
        self.band_group = max(1, int(band_group))
        self.allocate = allocate  # (shape, dtype) -> the array a band of a group read is copied into
        self.max_bytes = int(max_bytes)
        self.reads = 0               # chunks read from the volume (decompressed)
        self._cache: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._reading: dict = {}     # chunk index -> Future of a read under way
        # with threads > 1, the chunks one read needs are decompressed in parallel, in the order of the reads:
        # the first window of a run is ready after its own chunks, not after those of every window in flight
        self.threads = max(1, int(threads))
        self._pool = ThreadPool(threads, thread_name_prefix="tomoseg-chunks") if threads > 1 else None

    def close(self) -> None:
        """Stop the threads of a cache made with ``threads`` > 1 (reads after this run in the caller's thread)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)  # queued read-aheads are not needed any more

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _chunk(self, index, *, wait: bool = True) -> np.ndarray | None:
        """The chunk at grid ``index``: from the cache, from a read already under way in another thread (each chunk
        is read once at a time), or read here. With ``wait`` False, None where another thread is reading it."""
        from concurrent.futures import Future

        with self._lock:
            data = self._cache.get(index)
            if data is not None:
                self._cache.move_to_end(index)
                return data
            pending = self._reading.get(index)
            if pending is None:
                first, count = self._group(index)
                # the bands the same read decodes are claimed with it: a thread wanting one of them meanwhile
                # waits for this read instead of decoding the slices again
                claimed = {}
                for k in range(first, first + count):
                    other = (index[0], k, index[2])
                    if other == index or (other not in self._cache and other not in self._reading):
                        claimed[k] = self._reading[other] = Future()
                pending = claimed[index[1]]
                mine = True
            else:
                mine = False
        if not mine:
            return pending.result() if wait else None
        try:
            b = self.chunks[1]
            region = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, self.chunks, self.shape))
            region = (region[0], slice(first * b, min((first + count) * b, self.shape[1])), region[2])
            read = np.asarray(self.volume[region])
        except BaseException as exc:
            with self._lock:
                for k in claimed:
                    del self._reading[(index[0], k, index[2])]
            for future in claimed.values():
                future.set_exception(exc)
            raise
        parts = {k: read if count == 1 else _copy(read[:, (k - first) * b:(k - first + 1) * b], self.allocate)
                 for k in claimed}
        data = parts[index[1]]
        with self._lock:
            self.reads += 1
            for k, part in parts.items():  # the other bands of the group first: the one asked for is the most
                other = (index[0], k, index[2])  # recently used
                del self._reading[other]
                if k != index[1]:
                    self._keep(other, part)
            self._keep(index, data)
        for k, future in claimed.items():
            future.set_result(parts[k])
        return data

    def _group(self, index) -> tuple[int, int]:
        """The cache chunks along y that the read for ``index`` takes, as (first y index, count): where the
        storage chunks are larger than the cache's along y, the aligned group of ``band_group`` bands holding
        ``index``, within its storage chunk and the volume; else ``index`` alone."""
        b, sy = self.chunks[1], self.storage[1]
        if sy <= b or self.band_group == 1:
            return index[1], 1
        first = index[1] // self.band_group * self.band_group
        lo = index[1] * b // sy * sy  # the storage chunk holding the band
        first = max(first, -(-lo // b))
        end = min(first + self.band_group, -(-min(lo + sy, self.shape[1]) // b))
        return first, max(1, end - first)

    def _group_key(self, index) -> tuple:
        first, _ = self._group(index)
        return index[0], first, index[2]

    def _keep(self, index, data) -> None:
        """Cache ``data`` at ``index`` (the lock held), dropping the least recently used beyond ``max_bytes``."""
        old = self._cache.pop(index, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._cache[index] = data
        self._cache.move_to_end(index)
        self._bytes += data.nbytes
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.nbytes

    def __getitem__(self, key) -> np.ndarray:
        box = as_box(key, self.shape)
        if box is None:
            raise ValueError(f"ChunkCache reads boxes: three slices without a step, not {key!r}")
        pool = self._pool
        if pool is not None and all(k.stop > k.start for k in box):
            with self._lock:
                missing = [i for i in chunk_indices(box, self.chunks)
                           if i not in self._cache and i not in self._reading]
            if self.storage != self.chunks:  # one read per group of bands: the others come with it
                missing = list({self._group_key(i): i for i in reversed(missing)}.values())[::-1]
            if len(missing) > 1:
                for i in missing:
                    pool.submit(self._chunk, i)  # assemble() below waits for each (errors come back there)
        if pool is not None:
            return assemble(box, self.chunks, self.dtype, self._chunk)
        return self._assemble_shared(box)

    def _assemble_shared(self, box) -> np.ndarray:
        """The box read by several threads without the cache's own: each thread reads the chunks no other is
        reading first and waits for the others' reads last, so that threads reading the same chunks (neighbouring
        blocks of slices) share the decoding instead of queueing behind one reader."""
        out = np.empty(tuple(max(0, k.stop - k.start) for k in box), self.dtype)
        if out.size == 0:
            return out
        todo = chunk_indices(box, self.chunks)
        while todo:
            busy = []
            for index in todo:
                data = self._chunk(index, wait=False)
                if data is None:
                    busy.append(index)
                else:
                    _place(out, box, self.chunks, index, data)
            if len(busy) == len(todo):  # every chunk left is being read elsewhere: wait for the first
                _place(out, box, self.chunks, busy[0], self._chunk(busy[0]))
                busy = busy[1:]
            todo = busy
        return out


class BlockCopy:
    """The volume assembled in memory from the blocks a pass reads anyway (pass it as ``visit`` to
    :func:`tomoseg.inference.normalization.volume_stats`), so that a second pass over it (``segment``'s windows
    on a GPU) slices memory instead of reading and decompressing the file again. ``complete`` once the blocks
    seen cover every voxel (a pass over a sample of the chunks does not). Blocks may arrive on several threads;
    they must not overlap."""

    def __init__(self, shape, dtype):
        self.array = np.empty(tuple(int(s) for s in shape), dtype)
        self._voxels = 0
        self._lock = threading.Lock()

    def __call__(self, block, data) -> None:
        self.array[block] = data
        with self._lock:
            self._voxels += int(np.asarray(data).size)

    @property
    def complete(self) -> bool:
        return self._voxels == self.array.size
