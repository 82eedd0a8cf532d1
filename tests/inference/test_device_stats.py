"""The statistics pass's binning on a PyTorch device (inference/device_stats.py; the CUDA backend's): the same
bins and summary as NumPy's, so the same statistics: to the bit for 16-bit integers, to about 1e-15 of the s.d.
for floats (float64 sums added in another order). Run on the CPU device here; on a GPU by the ``gpu`` test."""

import numpy as np
import pytest
import torch

from tomoseg.inference import device_stats
from tomoseg.inference.device_stats import summarize_on, wants
from tomoseg.inference.normalization import _Binning, volume_stats


def _volume(dtype, shape=(20, 40, 36)):
    rng = np.random.default_rng(11)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = rng.normal(2.5e-3, 4e-4, shape)  # attenuation coefficients: far from 0 against their spread
        v[:, :3, :3] = -1e-4                  # negative values (reconstruction noise in the air)
        v[3, 4, 5], v[4, 5, 6], v[5, 6, 7] = np.nan, np.inf, -np.inf
        v[6, 7, 8] = 0.5                      # an outlier beyond the fences
    else:
        lo = -3000 if dtype.kind == "i" else 0
        v = rng.normal(lo + 20000, 900, shape)
        v[1, 2, 3] = lo + 60000 if dtype.kind == "u" else 32000
        v[:, -3:, :] = lo + 5  # a fill value
    return v.astype(dtype)


def _summaries_agree(a, b):
    np.testing.assert_array_equal(a.counts, b.counts)
    assert (a.nodata, a.voxels) == (b.nodata, b.voxels)
    if a.means is None:
        assert b.means is None
        return
    used = a.counts > 0
    np.testing.assert_allclose(a.means[used], b.means[used], rtol=1e-12, atol=0)
    # each bin's squared deviations are taken off a reference (a piece's mean): rounding there is relative to
    # the whole, not to a bin holding a few voxels
    np.testing.assert_allclose(a.m2[used], b.m2[used], rtol=1e-9, atol=1e-10 * float(b.m2.sum()))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fill", [False, True])
def test_a_block_is_binned_as_numpy_bins_it(dtype, fill, monkeypatch):
    volume = _volume(dtype)
    value = volume[0, 0, 0] if fill else None
    binning = _Binning.for_dtype(volume.dtype, value)
    assert wants(binning)
    monkeypatch.setattr(device_stats, "PIECE", 5000)  # several pieces per block, one with every value left out
    on_device = summarize_on("cpu")(binning, volume, None)
    _summaries_agree(on_device, binning.summarize(volume))
    if dtype in (np.float32, np.float64) and fill:
        assert on_device.nodata == 3 + 9 * volume.shape[0]


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64])
def test_the_statistics_are_those_of_the_numpy_pass(dtype):
    volume = _volume(dtype)
    fill = float(volume[0, -1, 0]) if np.dtype(dtype).kind != "f" else None
    numpy_stats = volume_stats(volume, fill=fill, slab_voxels=4096)  # many blocks, on the reader threads
    device = volume_stats(volume, fill=fill, slab_voxels=4096, summarize=summarize_on("cpu"))
    a, b = device.to_dict(), numpy_stats.to_dict()
    assert a.keys() == b.keys()
    for key in a:
        if key in ("mean", "std"):
            assert a[key] == pytest.approx(b[key], rel=1e-13, abs=1e-15 * b["std"]), key
        elif key == "limits":
            assert a[key] == pytest.approx(b[key], rel=1e-13), key
        else:
            assert a[key] == b[key], key
    if np.dtype(dtype).kind != "f":  # integer counts: the very same statistics
        assert device == numpy_stats
    assert numpy_stats.outliers >= 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint32, np.int64, np.dtype(">f4")])
def test_types_the_device_does_not_take_are_binned_by_numpy(dtype):
    volume = _volume(np.float32 if np.dtype(dtype).kind == "f" else np.uint16).astype(dtype)
    binning = _Binning.for_dtype(volume.dtype)
    assert not wants(binning)
    _summaries_agree(summarize_on("cpu")(binning, volume), binning.summarize(volume))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_the_gpu_bins_as_numpy_does(dtype):
    volume = _volume(dtype, (64, 256, 256))
    numpy_stats = volume_stats(volume)
    gpu = volume_stats(volume, summarize=summarize_on("cuda"))
    assert gpu.mean == pytest.approx(numpy_stats.mean, rel=1e-13)
    assert gpu.std == pytest.approx(numpy_stats.std, rel=1e-13)
    assert (gpu.voxels, gpu.outliers, gpu.nodata) == (numpy_stats.voxels, numpy_stats.outliers, numpy_stats.nodata)
