"""Blocks of whole storage chunks: a pass over a chunked volume decompresses every chunk once."""

import itertools

import numpy as np
import pytest

from tomoseg.errors import TomosegWarning
from tomoseg.io import open_volume, write_volume
from tomoseg.io.blocks import block_grid, read_blocks, sample_blocks, storage_chunks


def _chunks_touched(block, chunks):
    return {idx for idx in itertools.product(*(range(s.start // c, -(-s.stop // c)) for s, c in zip(block, chunks)))}


@pytest.mark.parametrize("shape, chunks, max_voxels, multiple", [
    ((100, 70, 50), (64, 32, 16), 2**14, 1),      # one chunk layer exceeds the budget: rows of chunks
    ((100, 70, 50), (16, 32, 16), 2**18, 1),      # several chunk layers per block
    ((9, 33, 17), None, 100, 1),                  # contiguous: whole slices
    ((50, 33, 17), None, 2000, 4),                # contiguous, z edges on multiples of 4
    ((100, 70, 50), (64, 12, 16), 2**14, 8),      # y edges on multiples of lcm(12, 8) = 24
])
def test_blocks_partition_the_volume_and_each_chunk_is_read_once(shape, chunks, max_voxels, multiple):
    blocks = block_grid(shape, chunks, max_voxels=max_voxels, multiple=multiple)
    cover = np.zeros(shape, np.int32)
    for b in blocks:
        cover[b] += 1
        assert b[2] == slice(0, shape[2])
        assert b[0].start % multiple == 0 and b[1].start % multiple == 0
    assert (cover == 1).all()
    if chunks:
        seen = [c for b in blocks for c in _chunks_touched(b, chunks)]
        assert len(seen) == len(set(seen))  # no chunk decompressed twice
        one_row = np.lcm(chunks[0], multiple) * np.lcm(chunks[1], multiple) * shape[2]
        assert all(np.prod([s.stop - s.start for s in b]) <= max(max_voxels, one_row) for b in blocks)


def test_sample_blocks_are_whole_chunks_spread_over_the_volume():
    shape, chunks = (256, 128, 128), (32, 64, 64)
    blocks = sample_blocks(shape, chunks, 0.25)
    assert len(blocks) == 8  # a quarter of the 32 chunks
    for b in blocks:
        assert [s.stop - s.start for s in b] == list(chunks)
    assert {b[0].start for b in blocks} == set(range(0, 256, 32))  # every chunk layer along z
    assert len({(b[1].start, b[2].start) for b in blocks}) > 1      # and more than one place in the slice
    slices = sample_blocks((100, 10, 10), None, 0.02)
    assert [b[0].start for b in slices] == [0, 99] and all(b[0].stop - b[0].start == 1 for b in slices)


def test_read_blocks_in_order_from_a_zarr_volume(tmp_path, rng):
    image = rng.integers(0, 255, (40, 48, 24), dtype=np.uint8)
    write_volume(str(tmp_path / "v.zarr"), image, chunks=(16, 16, 24))
    with open_volume(str(tmp_path / "v.zarr")) as vol:
        chunks = storage_chunks(vol)
        assert chunks == (16, 16, 24)
        blocks = block_grid(vol.shape, chunks, max_voxels=4000)
        got = list(read_blocks(vol, blocks, ahead=3))
    assert [b for b, _ in got] == blocks and len(blocks) > 2
    for b, data in got:
        np.testing.assert_array_equal(data, image[b])
    assert storage_chunks(image) is None


def test_chunk_cache_reads_like_the_volume_and_decompresses_each_chunk_once(rng):
    from concurrent.futures import ThreadPoolExecutor

    from tomoseg.io.blocks import ChunkCache

    volume = rng.integers(0, 65535, (37, 50, 29), dtype=np.uint16)
    chunks = (8, 16, 10)
    cache = ChunkCache(volume, chunks, max_bytes=10**8)
    regions = [tuple(slice(int(a), min(int(a) + int(n), s)) for a, n, s in
                     zip(rng.integers(0, 20, 3), rng.integers(1, 17, 3), volume.shape)) for _ in range(200)]
    touched = {c for r in regions for c in _chunks_touched(r, chunks)}
    for r in regions:  # one reader: every chunk decompressed exactly once
        np.testing.assert_array_equal(cache[r], volume[r])
    assert cache.reads == len(touched)
    for threads in (1, 3):  # several reader threads, as segment's; the cache's own threads or not
        with ChunkCache(volume, chunks, max_bytes=10**8, threads=threads) as threaded, ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda r: threaded[r], regions))
        for r, data in zip(regions, got):
            np.testing.assert_array_equal(data, volume[r])
        assert threaded.reads == len(touched)  # threads wanting one chunk at once: one reads, the others wait
    assert cache[5:5, 0:3, 0:3].shape == (0, 3, 3)
    with pytest.raises(ValueError, match="three slices"):
        cache[::2, :, :]
    # a small budget evicts the least recently used chunks and stays correct
    small = ChunkCache(volume, chunks, max_bytes=3 * 8 * 16 * 10 * 2)
    for r in regions[:50]:
        np.testing.assert_array_equal(small[r], volume[r])
    assert len(small._cache) <= 3


def test_chunk_cache_passes_a_failed_read_to_every_reader_and_reads_again_later():
    import threading
    import time

    from tomoseg.io.blocks import ChunkCache

    class Flaky:
        """A volume whose first read of a chunk fails (slowly, so that other readers wait for it)."""
        shape, dtype = (8, 8, 8), np.dtype(np.uint8)

        def __init__(self):
            self.calls, self.lock = 0, threading.Lock()

        def __getitem__(self, key):
            with self.lock:
                self.calls += 1
                first = self.calls == 1
            time.sleep(0.3 if first else 0)  # the other readers ask for the chunk meanwhile
            if first:
                raise OSError("disk hiccup")
            return np.ones(tuple(k.stop - k.start for k in key), np.uint8)

    flaky = Flaky()
    with ChunkCache(flaky, (8, 8, 8), max_bytes=10**6, threads=2) as cache:
        errors = []

        def read():
            try:
                cache[0:4, 0:4, 0:4]
            except OSError as exc:
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        assert len(errors) == 3 and flaky.calls == 1  # one read, its error given to all three
        assert cache[0:8, 0:8, 0:8].sum() == 512 and flaky.calls == 2  # not cached: read again


def test_segment_reads_slices_and_chunks_through_the_cache(tmp_path, rng):
    from tomoseg.inference.engine import _cached
    from tomoseg.inference.tiling import TilingConfig, tile_grid
    from tomoseg.io.blocks import ChunkCache

    image = rng.integers(0, 255, (24, 200, 200), dtype=np.uint8)
    for name, cached in [("slices", True), ("v.zarr", True), ("v.h5", True), ("v.npy", False)]:
        write_volume(str(tmp_path / name), image)
        with open_volume(str(tmp_path / name)) as vol:
            tiles = tile_grid(vol.shape, TilingConfig(tile_size=64, halo=16), 8)
            source = _cached(vol, tiles, vol.shape)
            assert isinstance(source, ChunkCache) == cached, name
            if cached:
                for t in tiles:
                    np.testing.assert_array_equal(source[t.core], image[t.core])
                assert source.reads == int(np.prod([-(-s // c) for s, c in zip(vol.shape, source.chunks)]))


def test_no_cache_where_a_row_of_windows_does_not_fit_in_a_quarter_of_the_free_memory(tmp_path, rng, monkeypatch):
    import psutil

    from tomoseg.inference.engine import _cached
    from tomoseg.inference.tiling import TilingConfig, tile_grid
    from tomoseg.io.blocks import ChunkCache

    write_volume(str(tmp_path / "slices"), rng.integers(0, 255, (24, 200, 200), dtype=np.uint8))
    with open_volume(str(tmp_path / "slices")) as vol:
        tiles = tile_grid(vol.shape, TilingConfig(tile_size=64, halo=16), 8)
        cache = _cached(vol, tiles, vol.shape)
        assert isinstance(cache, ChunkCache)
        # one row: all 24 slices of 200 x 200 (the window's depth and the whole slice), with a quarter to spare
        assert cache.max_bytes == int(1.25 * 24 * 200 * 200)

        class Short:
            available = 4 * cache.max_bytes - 4  # a quarter of it is just too small: LRU would only thrash

        # a Dask worker's memory limit bounds it too, however much the machine has free
        assert _cached(vol, tiles, vol.shape, memory=4 * cache.max_bytes) is not vol
        with pytest.warns(TomosegWarning, match="read again for each window"):  # slices 200 high: no room for bands
            assert _cached(vol, tiles, vol.shape, memory=4 * cache.max_bytes - 4) is vol
        monkeypatch.setattr(psutil, "virtual_memory", lambda: Short)
        with pytest.warns(TomosegWarning, match=r"a quarter of the free memory \(.*\) holds no row"):
            assert _cached(vol, tiles, vol.shape) is vol


def test_block_copy_assembles_the_volume_from_its_blocks_on_threads():
    from concurrent.futures import ThreadPoolExecutor

    from tomoseg.io.blocks import BlockCopy, block_grid

    vol = np.random.default_rng(0).integers(0, 60000, (20, 33, 17), dtype=np.uint16)
    blocks = block_grid(vol.shape, (4, 8, 17), max_voxels=4 * 8 * 17)
    copy = BlockCopy(vol.shape, vol.dtype)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda b: copy(b, vol[b]), blocks[:-1]))
    assert not copy.complete  # one block short
    copy(blocks[-1], vol[blocks[-1]])
    assert copy.complete and copy.array.dtype == vol.dtype
    np.testing.assert_array_equal(copy.array, vol)


class _CountingSlices:
    """A volume stored in chunks of whole slices, counting the slices its reads decode."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.chunks, self.path, self.slices = (1,) + array.shape[1:], "slices.h5", 0

    def __getitem__(self, key):
        data = self.array[key]
        self.slices += data.shape[0]
        return data


def test_slices_too_large_for_a_row_of_windows_are_kept_in_bands(rng, recwarn):
    """Chunks of whole slices (HDF5, Zarr and TIFF stacks written slice by slice): where a slab of them did not
    fit in a quarter of the free memory, segment read windows straight from the file and decoded each slice once
    per window (24x the reads, in the review). The cache now keeps bands of the slices: every window reads right,
    each slice is decoded about once per group of bands, within the budget; with memory for not even one group,
    a warning names the layout."""
    from tomoseg.inference.engine import BAND, _cached
    from tomoseg.inference.tiling import TilingConfig, tile_grid

    image = rng.integers(0, 255, (40, 1024, 256), dtype=np.uint8)
    tiles = tile_grid(image.shape, TilingConfig(tile_size=64, halo=16), 16)
    window = [r.stop - r.start for r in tiles[0].read]
    slab = 1.25 * (window[0] + 1) * image.shape[1] * image.shape[2]
    for threads in (1, 3):
        volume = _CountingSlices(image)
        cache = _cached(volume, tiles, image.shape, memory=int(2 * slab), threads=threads)  # a quarter: half a slab
        assert cache is not volume and cache.chunks == (1, BAND, 256) and cache.storage == (1, 1024, 256)
        assert cache.max_bytes <= slab / 2
        for tile in tiles:
            np.testing.assert_array_equal(cache[tile.read], image[tile.read])
        rows = len({t.read[1].start for t in tiles})
        per_slice = volume.slices / image.shape[0]
        windows_per_slice = sum(t.read[0].stop - t.read[0].start for t in tiles) / image.shape[0]
        assert per_slice <= -(-image.shape[1] // (cache.band_group * BAND)) + 1 < rows < windows_per_slice, \
            (per_slice, rows, windows_per_slice)
        if threads > 1:
            cache.close()
    volume = _CountingSlices(image)
    assert _cached(volume, tiles, image.shape, memory=int(slab / 8)) is volume
    assert any("read again for each window" in str(w.message) for w in recwarn)


def test_threads_reading_bands_of_one_group_share_one_decode_of_each_slice():
    """Review S2: the labelling reads neighbouring chunks on several threads. A thread that wanted a band of a
    slice whose group of bands another thread was decoding decoded the slice again; and threads reading the
    same slices queued behind one reader. Now the bands a read will bring are claimed with it, and a thread reads
    the slices no other is reading first."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tomoseg.io.blocks import ChunkCache

    image = np.random.default_rng(0).integers(0, 255, (6, 512, 96), dtype=np.uint8)

    class Slow(_CountingSlices):
        def __getitem__(self, key):
            time.sleep(0.02)  # a decode: long enough for the other threads to want the same slices meanwhile
            with lock:
                return super().__getitem__(key)

    lock = threading.Lock()
    volume = Slow(image)
    cache = ChunkCache(volume, (1, 128, 96), storage=(1, 512, 96), band_group=4, max_bytes=10**8)
    boxes = [(slice(0, 6), slice(b * 128 + 10, b * 128 + 60), slice(x, x + 32)) for b in range(4) for x in (0, 32)]
    start = threading.Barrier(len(boxes))

    def read(box):
        start.wait()
        return cache[box]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(boxes)) as pool:
        got = list(pool.map(read, boxes))
    elapsed = time.perf_counter() - t0
    for box, data in zip(boxes, got):
        np.testing.assert_array_equal(data, image[box])
    assert volume.slices == 6 and cache.reads == 6, (volume.slices, cache.reads)  # each slice decoded once
    assert elapsed < 6 * 0.02 * 3, elapsed  # not one slice after another behind a single reader


def test_outside_heap_arrays_are_ordinary_arrays():
    from tomoseg.io.blocks import outside_heap

    a = outside_heap((3, 4, 5), np.uint16)
    a[...] = np.arange(60).reshape(3, 4, 5)
    assert a.dtype == np.uint16 and a.shape == (3, 4, 5) and a.flags.writeable and int(a.sum()) == 1770
    assert outside_heap((0, 4), np.float32).shape == (0, 4)


def test_sampled_layers_are_stratified_not_the_ends():
    """--stats sample read np.linspace(0, layers - 1, n): the first and last layers always, 2 of 8 against 2 of
    64 in the volume, and the ends are a scan's darkest (review G5). One layer at the centre of each of n equal
    strata now."""
    from tomoseg.io.blocks import sample_slabs

    slabs = sample_slabs((512, 128, 128), (8, 128, 128), 0.05)
    assert [(s.start, s.stop) for s in slabs] == [(64 * i + 32, 64 * i + 40) for i in range(8)]
    assert [s.start for s in sample_slabs((100, 8, 8), None, 0.05, min_slabs=4)] == [10, 30, 50, 70, 90]
