"""The volume kept on the GPU for segment's windows (inference/device_volume.py; the CUDA backend's
``device_input``): filled by the statistics pass, windows sliced there, padded and holed as on the host, and
``segment`` writes what the host path writes, byte for byte. Run here with the CUDA backend on the CPU device
(its logic; the GPU itself: the ``gpu`` tests)."""

import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.inference.device_volume import DeviceVolume, DeviceWindow, holes, stored_type
from tomoseg.inference.normalization import nodata_mask, volume_stats
from tomoseg.inference.tiling import read_padded, tile_grid
from tomoseg.io import read_volume, write_volume


def _scan(dtype, shape=(21, 50, 44)):
    image = tomoseg.make_phantom(shape, rng=4).image.astype(np.float64)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = (image * 1e-5 + 2e-3).astype(dtype)
        v[3, 4:7, 5:9] = np.nan
        v[4, 0, 0] = np.inf
        v[:, -2:, :] = -1.0  # a fill value along one face
    elif dtype == np.uint8:
        v = image.astype(dtype)
        v[:, -2:, :] = 7  # a fill value along one face
    else:
        v = (image * 100 + (-20000 if dtype.kind == "i" else 1000)).clip(np.iinfo(dtype).min, np.iinfo(dtype).max)
        v = v.astype(dtype)
        v[:, -2:, :] = 7  # a fill value along one face
    return v


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_windows_are_those_read_from_the_host(dtype, mode):
    volume = _scan(dtype)
    copy = DeviceVolume(volume.shape, volume.dtype, "cpu")
    volume_stats(volume, slab_voxels=2048, visit=copy)  # filled by the statistics pass's blocks, on its threads
    assert copy.complete
    tiles = tile_grid(volume.shape, TilingConfig(tile_size=16, halo=8), 8)
    assert any(t.read[0].stop > volume.shape[0] for t in tiles)  # windows past the far faces: padded
    for tile in tiles:
        window = copy.window(tile.read, mode)
        assert isinstance(window, DeviceWindow) and window.dtype == volume.dtype
        host = read_padded(volume, tile.read, volume.shape, mode)
        np.testing.assert_array_equal(window.tensor.numpy(), host.astype(window.tensor.numpy().dtype))
        found = holes(window.tensor, -1.0 if volume.dtype.kind == "f" else 7)
        expected = nodata_mask(host, type("S", (), {"fill": -1.0 if volume.dtype.kind == "f" else 7})())
        if expected is None:
            assert found is None or not found.any()
        else:
            np.testing.assert_array_equal(found.numpy(), expected)


def test_types_the_gpu_does_not_hold_exactly_stay_on_the_host():
    assert stored_type(np.float64) is None and stored_type(np.int32) is None and stored_type(np.uint32) is None
    assert DeviceVolume.fitting((4, 4, 4), np.float64, "cpu") is None
    assert stored_type(np.uint16) == torch.int32 and stored_type(np.dtype(">f4")) == torch.float32


@pytest.mark.parametrize("dtype, fill", [(np.uint16, 7), (np.float32, -1.0), (np.uint8, None)])
def test_segment_from_the_volume_on_the_device_writes_what_the_host_path_writes(tmp_path, monkeypatch,
                                                                                 random_model_path, dtype, fill):
    """The CUDA backend on the CPU device, its windows from the volume it keeps (device_input) and from the host
    copy (device_input=False): the same bytes, holes (NaN, ±inf, the fill value) at probability 0 in both."""
    from tomoseg.inference import engine
    from tomoseg.inference.cuda_pipeline import CudaBackend

    volume = _scan(dtype)
    write_volume(tmp_path / "scan.zarr", volume, voxel_size=(29.33,) * 3)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**34, 2**36))
    runs = {}
    for on_device in (True, False):
        monkeypatch.setattr(engine, "make_backend", lambda model, config, d=on_device: CudaBackend(
            model, "cpu", config.precision, device_input=d))
        out = tmp_path / f"out-{on_device}.zarr"
        opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), fill_value=fill, sample_mask="off")
        record = segment(tmp_path / "scan.zarr", out, model=random_model_path, options=opts, progress=False)
        assert record["input_in_memory"] and record["input_on_device"] is on_device
        runs[on_device] = (read_volume(out), record["normalization"])
    np.testing.assert_array_equal(runs[True][0], runs[False][0])
    assert runs[True][1]["mean"] == pytest.approx(runs[False][1]["mean"], rel=1e-13)
    if fill is not None:
        no_data = ~np.isfinite(volume) if volume.dtype.kind == "f" else np.zeros(volume.shape, bool)
        no_data |= volume == fill
        assert no_data.any() and not runs[True][0][no_data].any()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_read_only_blocks_are_taken_without_a_warning(dtype):
    """A memory-mapped file's blocks are read-only; PyTorch warns on such memory (an error under -W error):
    they are copied first."""
    import warnings

    from tomoseg.inference.device_stats import summarize_on

    volume = _scan(dtype)
    volume.flags.writeable = False
    copy = DeviceVolume(volume.shape, volume.dtype, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_device = volume_stats(volume, slab_voxels=2048, visit=copy, summarize=summarize_on("cpu", copy))
        plain = volume_stats(volume, slab_voxels=2048, summarize=summarize_on("cpu"))
    np.testing.assert_array_equal(copy.tensor.numpy(), volume.astype(copy.tensor.numpy().dtype))
    assert on_device.mean == pytest.approx(plain.mean, rel=1e-13)
