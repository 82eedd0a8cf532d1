"""The statistics pass counts 8- and 16-bit values with PyTorch's bincount where the process has loaded PyTorch
(the CUDA and PyTorch backends) and with NumPy's elsewhere (OpenVINO never loads PyTorch): the same statistics.
Float values are binned with NumPy, their moments taken off one of the values: exact where they lie far from 0."""

import numpy as np
import pytest

from tomoseg.inference import normalization
from tomoseg.inference.normalization import _bincount, volume_stats


def _volume(dtype):
    rng = np.random.default_rng(5)
    small = np.dtype(dtype) == np.uint8
    v = rng.normal(120, 10, (24, 48, 40)) if small else rng.normal(1000, 40, (24, 48, 40))
    v[2, 3, 4] = 250 if small else 9000  # an outlier beyond the fences
    v[:, :4, :4] = 0   # the fill value
    if np.dtype(dtype).kind == "f":
        v = v * 1e-6 - 3e-4  # attenuation coefficients, far from 0 relative to their spread
        v[5, 6, 7], v[6, 7, 8] = np.nan, np.inf
    return v.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8])
def test_numpy_and_pytorch_binning_give_the_same_statistics(monkeypatch, dtype):
    import torch

    volume = _volume(dtype)
    fill = float(volume[0, 0, 0])
    with_torch = volume_stats(volume, fill=fill, slab_voxels=4096)  # many blocks, on the reader threads
    monkeypatch.setattr(normalization, "_loaded_torch", lambda: None)
    with_numpy = volume_stats(volume, fill=fill, slab_voxels=4096)
    monkeypatch.setattr(normalization, "_loaded_torch", lambda: torch)
    assert with_torch == volume_stats(volume, fill=fill, slab_voxels=4096)  # the same run to run
    a, b = with_torch.to_dict(), with_numpy.to_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    assert with_torch.outliers >= 1 and with_torch.nodata >= 4 * 4 * 24


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_moments_equal_those_of_the_voxels_kept(dtype):
    """Values far from 0 relative to their spread (a reconstruction's attenuation coefficients), NaN, inf, the
    fill value and an outlier: mean and standard deviation equal float64's over the voxels inside the fences."""
    volume = _volume(dtype)
    fill = float(volume[0, 0, 0])
    stats = volume_stats(volume, fill=fill, slab_voxels=4096)
    x = volume[np.isfinite(volume) & (volume != fill)].astype(np.float64)
    kept = x[(x >= stats.limits[0]) & (x <= stats.limits[1])]
    assert stats.outliers == x.size - kept.size >= 1 and stats.voxels == kept.size
    assert abs(stats.mean - kept.mean()) <= 1e-12 * kept.std()
    assert stats.std == pytest.approx(kept.std(), rel=1e-9)


@pytest.mark.parametrize("dtype, bins, offset", [(np.uint16, 65536, 0), (np.int16, 65536, -32768),
                                                 (np.uint8, 256, 0)])
def test_bincount_is_exact_on_both_paths(monkeypatch, dtype, bins, offset):
    import torch

    info = np.iinfo(dtype)
    values = np.random.default_rng(2).integers(info.min, int(info.max) + 1, 3 * 2**20 + 17).astype(dtype)
    reference = np.bincount(values.astype(np.int64) - offset, minlength=bins)
    monkeypatch.setattr(normalization, "_loaded_torch", lambda: torch)
    assert np.array_equal(_bincount(values, bins, offset), reference)
    monkeypatch.setattr(normalization, "_loaded_torch", lambda: None)
    assert np.array_equal(_bincount(values, bins, offset), reference)
