"""The statistics pass's histograms: exact, and in bounded memory."""

import sys

import numpy as np
import pytest

from tomoseg.inference import normalization
from tomoseg.inference.normalization import _histogram, normalize, volume_stats


@pytest.mark.parametrize("dtype, shape", [(np.uint8, (7, 33, 31)), (np.uint8, (8, 32, 32)), (np.uint16, (5, 30, 29))])
def test_histograms_in_pieces_equal_numpys(monkeypatch, dtype, shape):
    """Counted a piece at a time (odd sizes, the last voxel of an odd uint8 block, pieces that cut pairs'
    runs): the same histogram as np.bincount over the whole block, and the same mean and s.d. as NumPy."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    monkeypatch.setitem(sys.modules, "torch", None)  # NumPy's path (the OpenVINO one), not PyTorch's bincount
    monkeypatch.setattr(normalization, "HISTOGRAM_PIECE", 1000)  # many pieces, none aligned to the block
    hist = _histogram(data)
    assert np.array_equal(hist[:np.iinfo(dtype).max + 1] if dtype == np.uint16 else hist,
                          np.bincount(data.ravel(), minlength=np.iinfo(dtype).max + 1))
    stats = volume_stats(data, method="full")
    assert stats.mean == pytest.approx(data.mean(), rel=1e-12) and stats.std == pytest.approx(data.std(), rel=1e-12)


def test_a_histogram_holds_a_piece_not_a_block(monkeypatch):
    """np.bincount copies its input to int64: it is handed a piece at a time, never a whole block."""
    monkeypatch.setitem(sys.modules, "torch", None)  # NumPy's path
    sizes = []
    real = np.bincount
    monkeypatch.setattr(normalization.np, "bincount", lambda values, **kw: sizes.append(values.size) or
                        real(values, **kw))
    _histogram(np.zeros((64, 256, 256), np.uint8))
    assert max(sizes) == normalization.HISTOGRAM_PIECE and sum(sizes) == 64 * 256 * 256 // 2


def test_float_moments_in_pieces_leave_out_nan_and_infinities(monkeypatch):
    """Float blocks are summarized a piece at a time: NumPy's mean and s.d.; NaN and infinities (once refused)
    are left out of the moments and counted as voxels without data, in any piece of any block."""
    monkeypatch.setattr(normalization, "HISTOGRAM_PIECE", 777)
    data = np.random.default_rng(5).normal(100, 15, (12, 40, 36)).astype(np.float32)
    stats = volume_stats(data, method="full")
    assert stats.mean == pytest.approx(data.astype(np.float64).mean(), rel=1e-12)
    assert stats.std == pytest.approx(data.astype(np.float64).std(), rel=1e-9)
    assert (stats.voxels, stats.nodata, stats.outliers) == (data.size, 0, 0)
    clean = data.astype(np.float64)
    data[9, 31, 5], data[0, 0, 0], data[11, 39, 35] = np.inf, np.nan, -np.inf
    stats = volume_stats(data, method="full", slab_voxels=40 * 36 * 4)  # blocks of 4 slices
    kept = np.delete(clean.ravel(), np.ravel_multi_index(([9, 0, 11], [31, 0, 39], [5, 0, 35]), data.shape))
    assert (stats.voxels, stats.nodata) == (data.size - 3, 3)
    assert stats.mean == pytest.approx(kept.mean(), rel=1e-12) and stats.std == pytest.approx(kept.std(), rel=1e-9)


def test_a_nan_outside_the_sampled_layers_gets_probability_0(tmp_path, random_model_path):
    """With sampled statistics (--stats sample, or auto above 2^31 voxels) only a few layers are read before
    the tiles: a NaN elsewhere once went through normalization and the network and blanked its window (later:
    refused mid-run, review G8). It is now no data wherever it is: normalized to 0, probability 0, and the
    rest of the map is that of the volume with the mean in its place."""
    from tomoseg.inference import SegmentOptions, segment
    from tomoseg.io import read_volume

    rng = np.random.default_rng(0)
    volume = rng.normal(100, 10, (64, 48, 48)).astype(np.float32)
    np.save(tmp_path / "clean.npy", volume)
    options = SegmentOptions(stats="sample", sample_mask="off")
    record = segment(str(tmp_path / "clean.npy"), str(tmp_path / "clean.zarr"), model=random_model_path,
                     options=options, progress=False)
    volume[30, 20, 21] = np.nan  # slice 30: not among the sampled layers
    np.save(tmp_path / "in.npy", volume)
    segment(str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), model=random_model_path, options=options,
            progress=False)
    clean, out = read_volume(tmp_path / "clean.zarr"), read_volume(tmp_path / "out.zarr")
    assert out[30, 20, 21] == 0 and clean[30, 20, 21] > 0
    mean = np.float32(record["normalization"]["mean"])
    volume[30, 20, 21] = mean  # z = 0 there: the map of the volume with the mean in the NaN's place
    np.save(tmp_path / "filled.npy", volume)
    segment(str(tmp_path / "filled.npy"), str(tmp_path / "filled.zarr"), model=random_model_path, options=options,
            progress=False)
    filled = read_volume(tmp_path / "filled.zarr")
    filled[30, 20, 21] = 0
    assert np.array_equal(out, filled)


@pytest.mark.parametrize("dtype,offset", [(np.float64, 1e8), (np.uint32, 2**31 + 5), (np.int64, 2**40),
                                          (np.uint8, 0), (np.uint16, 30000)])
def test_wide_types_keep_their_detail_on_every_path(dtype, offset, random_model_path):
    """float64, 32- and 64-bit integers were cast to float32 before the mean was taken off: 1e8 ± 1 became a
    constant, and the CUDA pipeline cast uint32 and int64 to int32 (values past 2^31 wrapped). normalize takes
    the offset in float64 for them; the CUDA pipeline's batching (run on the CPU here) gives the CPU path's
    bytes for every type."""
    from tomoseg.inference.backends import TorchBackend, run_windows_one_by_one
    from tomoseg.inference.cuda_pipeline import CudaBackend
    from tomoseg.checkpoint import load_model
    from tomoseg.inference.tiling import TilingConfig, read_padded, tile_grid

    rng = np.random.default_rng(1)
    volume = (offset + rng.normal(0, 20, (24, 40, 40)) ** 2 / 10).astype(dtype)
    stats = volume_stats(volume, method="full")
    z = normalize(volume, stats)
    reference = (volume.astype(np.float64) - volume.astype(np.float64).mean()) / volume.astype(np.float64).std()
    assert stats.outliers == 0 and np.abs(z - np.clip(reference, -10, 10)).max() < 1e-4  # a heavy tail: clipped
    tiles = tile_grid(volume.shape, TilingConfig(tile_size=8, halo=8), 8)  # 9 windows: batches of 3
    windows = [(t, read_padded(volume, t.read, volume.shape)) for t in tiles]
    model = load_model(random_model_path)
    key = lambda t: tuple((s.start, s.stop) for s in t.core)  # noqa: E731
    cpu = {key(t): c for t, c in run_windows_one_by_one(TorchBackend(model, "cpu"), iter(windows), stats)}
    gpu_path = CudaBackend(model, device="cpu")
    gpu_path.batch_limit_for = lambda shape, total: 3  # the free GPU memory is not asked on the CPU
    batched = {key(t): c for t, c in gpu_path.run_windows(iter(windows), stats)}
    assert len(cpu) == 9 and cpu.keys() == batched.keys() and all(np.array_equal(cpu[k], batched[k]) for k in cpu)
