"""Robust normalization (review G3, G2/G9): outliers, voxels without data and bright objects, the same on the
CPU path, the CUDA pipeline's device-side normalization and training."""

import numpy as np
import pytest

from tomoseg.inference.normalization import CLIP, normalize, volume_stats
from tomoseg.synthetic import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((32, 64, 64), rng=7)


def _plain(values):
    values = np.asarray(values, np.float64).ravel()
    return values.mean(), values.std()


@pytest.mark.parametrize("kind", ["float32", "uint16"])
def test_hot_voxels_are_left_out_of_the_statistics(phantom, kind):
    """Zingers: 20 voxels at 1.0 in float32 data of ~1e-3, or 1000 (0.8 %) at 65535 in 12-bit data, once
    halved or wiped out the detections (the s.d. grew 5x). They lie beyond the fences and are left out: the
    moments are exactly those of the other voxels, and the normalized hot voxels are clipped to +10."""
    image = phantom.image
    rng = np.random.default_rng(0)
    if kind == "float32":
        data, hot, n = image.astype(np.float32) * np.float32(1e-5), np.float32(1.0), 20
    else:
        data, hot, n = image.astype(np.uint16) * np.uint16(16), np.uint16(65535), 1000
    clean = volume_stats(data)
    assert clean.outliers == 0 and (clean.mean, clean.std) == pytest.approx(_plain(data), rel=1e-12)
    where = rng.choice(data.size, n, replace=False)
    others = np.delete(data.ravel(), where)
    data.flat[where] = hot
    stats = volume_stats(data)
    assert stats.outliers == n and stats.voxels == data.size - n
    assert (stats.mean, stats.std) == pytest.approx(_plain(others), rel=1e-12)
    z = normalize(data, stats)
    assert np.all(z.flat[where] == CLIP) and np.abs(z).max() == CLIP


def test_a_clean_8_bit_volume_keeps_its_plain_statistics_bit_for_bit(phantom):
    """No voxel of a phantom lies beyond the fences: its statistics are the plain ones, to the last bit (the
    shipped model sees what it saw before)."""
    data = phantom.image
    stats = volume_stats(data)
    hist = np.bincount(data.ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64)
    mean = float((hist * values).sum() / data.size)  # the formula of the histogram path before the fences
    assert stats.mean == mean and stats.std == float(np.sqrt((hist * (values - mean) ** 2).sum() / data.size))
    assert stats.limits[0] < data.min() and stats.limits[1] > data.max()


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint16, np.float64])
@pytest.mark.parametrize("objects", ["dark", "bright"])
def test_cpu_path_and_cuda_pipeline_normalize_alike(phantom, dtype, objects, random_model_path):
    """Hot voxels (clipped), NaN and ±inf (float), the fill value, a flipped sign: the CUDA pipeline's
    device-side normalization (run on the CPU here) gives the CPU path's bytes, window by window."""
    from tomoseg.checkpoint import load_model
    from tomoseg.inference.backends import TorchBackend, run_windows_one_by_one
    from tomoseg.inference.cuda_pipeline import CudaBackend
    from tomoseg.inference.tiling import TilingConfig, read_padded, tile_grid

    volume = (phantom.image[:16, :40, :40].astype(np.float64) * 10 + 1000).astype(dtype)
    fill = {"i": -32768, "u": 0, "f": -1}[np.dtype(dtype).kind]
    volume[:, :6, :6] = fill
    volume[3, 20, 20] = 30000
    if np.dtype(dtype).kind == "f":
        volume[5, 10, 30], volume[6, 11, 31], volume[7, 12, 32] = np.nan, np.inf, -np.inf
    stats = volume_stats(volume, fill=fill, objects=objects)
    assert stats.nodata == 6 * 6 * 16 + (3 if np.dtype(dtype).kind == "f" else 0) and stats.outliers >= 1
    tiles = tile_grid(volume.shape, TilingConfig(tile_size=8, halo=8), 8)
    windows = [(t, read_padded(volume, t.read, volume.shape)) for t in tiles]
    model = load_model(random_model_path)
    key = lambda t: tuple((s.start, s.stop) for s in t.core)  # noqa: E731
    cpu = {key(t): c for t, c in run_windows_one_by_one(TorchBackend(model, "cpu"), iter(windows), stats)}
    gpu_path = CudaBackend(model, device="cpu")
    gpu_path.batch_limit_for = lambda shape, total: 3
    batched = {key(t): c for t, c in gpu_path.run_windows(iter(windows), stats)}
    assert cpu.keys() == batched.keys() and all(np.array_equal(cpu[k], batched[k]) for k in cpu)


def test_a_run_of_an_earlier_version_resumes_with_its_own_normalization():
    """state.json of a run started before the fences: its statistics have no clip, and are applied as they were
    (plain z-score), so its tiles share one normalization; its fingerprint, without objects and fill_value,
    compares as dark objects without a fill value (another --objects or --fill-value is refused)."""
    from tomoseg.inference.normalization import Stats
    from tomoseg.inference.work_folder import _as_resolved

    saved = {"mean": 100.0, "std": 10.0, "voxels": 5, "method": "full"}
    stats = Stats(**saved)
    assert normalize(np.array([300.0, 50.0], np.float32), stats).tolist() == [20.0, -5.0]  # not clipped
    assert stats.to_dict() == saved
    resolved = _as_resolved({"input": "/x.npy", "input_shape": [4, 4, 4]})
    assert (resolved["objects"], resolved["fill_value"]) == ("dark", None)
