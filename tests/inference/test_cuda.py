"""The CUDA pipeline: exact against a whole-volume pass and against the CPU, through files and Dask.

Marked ``gpu``: skipped where no CUDA device is visible (CI), run wherever one is.
"""

import numpy as np
import pytest

import tomoseg
from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig, predict, segment
from tomoseg.inference.engine import predict_whole, to_uint8
from tomoseg.io import read_volume, write_volume

pytestmark = pytest.mark.gpu

CUDA = BackendConfig(backend="torch", device="cuda")


@pytest.fixture(scope="module")
def phantom():
    return tomoseg.make_phantom((64, 160, 176), rng=11)


def test_tiled_on_the_gpu_equals_one_whole_volume_pass(phantom):
    model = tomoseg.load_model()
    tiled = to_uint8(predict(phantom.image, model, tiling=TilingConfig(tile_size=48, halo=48), backend=CUDA))
    whole = to_uint8(predict_whole(phantom.image, model, backend=CUDA))
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3


def test_gpu_and_cpu_agree_within_one_level(phantom):
    model = tomoseg.load_model()
    gpu = to_uint8(predict(phantom.image, model, tiling=TilingConfig(tile_size=64), backend=CUDA))
    cpu = to_uint8(predict(phantom.image, model, tiling=TilingConfig(tile_size=64),
                           backend=BackendConfig(backend="torch", device="cpu")))
    assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 1


@pytest.mark.parametrize("variant", [{"channels_last": True, "rewrite": False}, {},
                                     {"channels_last": True}])
def test_gpu_variants_agree_with_the_plain_network(phantom, variant):
    """The rewritten decoder (the CUDA default, ``{}``) and the channels-last memory order give the same cores as
    the plain network as trained (BatchNorms folded), within one level, through the whole pipeline."""
    from tomoseg.inference.cuda_pipeline import CudaBackend
    from tomoseg.inference.engine import _Stream
    from tomoseg.inference.normalization import volume_stats
    from tomoseg.inference.tiling import read_padded, tile_grid

    model = tomoseg.load_model()
    tiles = tile_grid(phantom.image.shape, TilingConfig(tile_size=64), model.config.divisor)
    stats = volume_stats(phantom.image)
    outs = []
    for options in ({"channels_last": False, "rewrite": False}, variant):
        backend = CudaBackend(model, device="cuda", **options)
        windows = ((t, read_padded(phantom.image, t.read, phantom.image.shape)) for t in tiles)
        out = np.zeros(phantom.image.shape, np.uint8)
        for tile, core in backend.run_windows(_Stream(windows, len(tiles)), stats):
            out[tile.core] = core
        outs.append(out)
    diff = np.abs(outs[0].astype(int) - outs[1].astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000
    assert outs[0].max() > 127  # objects found: not two empty maps


def test_segment_through_files_on_the_gpu_pipeline_and_dask(phantom, tmp_path):
    write_volume(tmp_path / "scan.tif", phantom.image, voxel_size=(29.33,) * 3)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=64), backend=CUDA)
    record = segment(tmp_path / "scan.tif", tmp_path / "prob.zarr", mask_output=tmp_path / "mask.zarr",
                     options=opts, progress=False)
    assert record["backend"].startswith("torch-cuda")
    prob = read_volume(tmp_path / "prob.zarr")
    ref = to_uint8(predict(phantom.image, tiling=TilingConfig(tile_size=64), backend=CUDA))
    assert np.array_equal(prob, ref)
    assert np.array_equal(read_volume(tmp_path / "mask.zarr"), (prob > 127).astype(np.uint8))
    from dataclasses import replace

    segment(tmp_path / "scan.tif", tmp_path / "prob-dask.zarr", options=replace(opts, workers=1), progress=False)
    assert np.array_equal(read_volume(tmp_path / "prob-dask.zarr"), prob)
    # --gpus: one local worker per GPU (all the GPUs of this machine), byte-identical again
    import torch

    rec = segment(tmp_path / "scan.tif", tmp_path / "prob-gpus.zarr", progress=False,
                  options=replace(opts, gpus=torch.cuda.device_count()))
    assert rec["distributed"]["gpus"] == torch.cuda.device_count()
    # smaller batches per task here: cuDNN may pick other kernels for them, whose float rounding differs, so a
    # voxel on a .5 boundary of the 0-255 scale can round the other way. Exact means within 1/255.
    diff = np.abs(read_volume(tmp_path / "prob-gpus.zarr").astype(int) - prob)
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000


def test_windows_from_the_copy_in_memory_on_the_gpu(phantom, tmp_path, monkeypatch):
    """The CUDA backend's default resident_input reads its windows from the statistics pass's copy and writes
    what reading the file gives, byte for byte."""
    from tomoseg.inference import engine
    from tomoseg.inference.cuda_pipeline import CudaBackend

    write_volume(tmp_path / "scan.zarr", phantom.image, voxel_size=(29.33,) * 3)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=64), backend=CUDA)
    rec = segment(tmp_path / "scan.zarr", tmp_path / "b.zarr", options=opts, progress=False)
    monkeypatch.setattr(engine, "make_backend",
                        lambda model, config: CudaBackend(model, "cuda", config.precision, resident_input=False))
    plain = segment(tmp_path / "scan.zarr", tmp_path / "a.zarr", options=opts, progress=False)
    assert not plain["input_in_memory"] and rec["input_in_memory"]
    assert np.array_equal(read_volume(tmp_path / "a.zarr"), read_volume(tmp_path / "b.zarr"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_windows_from_the_volume_on_the_gpu(phantom, tmp_path, monkeypatch, dtype):
    """The CUDA backend keeps the volume on the GPU (device_input) and slices its windows there: the map is the
    host copy's, byte for byte, holes (the fill value) at probability 0."""
    from tomoseg.inference import engine
    from tomoseg.inference.cuda_pipeline import CudaBackend

    image = phantom.image.astype(dtype) * (np.float32(1e-3) if np.dtype(dtype).kind == "f" else 1)
    image[:, :3, :] = 9
    write_volume(tmp_path / "scan.zarr", image, voxel_size=(29.33,) * 3)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=64), backend=CUDA, fill_value=9)
    rec = segment(tmp_path / "scan.zarr", tmp_path / "b.zarr", options=opts, progress=False)
    monkeypatch.setattr(engine, "make_backend",
                        lambda model, config: CudaBackend(model, "cuda", config.precision, device_input=False))
    host = segment(tmp_path / "scan.zarr", tmp_path / "a.zarr", options=opts, progress=False)
    assert rec["input_on_device"] and not host["input_on_device"] and host["input_in_memory"]
    on_gpu = read_volume(tmp_path / "b.zarr")
    assert np.array_equal(read_volume(tmp_path / "a.zarr"), on_gpu) and not on_gpu[:, :3, :].any()


def test_float_statistics_on_the_gpu_give_what_numpy_gives(phantom, tmp_path, monkeypatch):
    """The CUDA backend bins a float32 volume's statistics on the GPU (device_stats): the run's statistics
    match NumPy's to about 1e-13 and the map is the one NumPy's statistics give (within one level)."""
    from tomoseg.inference import engine
    from tomoseg.inference.cuda_pipeline import CudaBackend

    image = (phantom.image.astype(np.float32) * np.float32(1e-5) + np.float32(2e-3))
    write_volume(tmp_path / "scan.zarr", image, voxel_size=(29.33,) * 3)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=64), backend=CUDA)
    gpu = segment(tmp_path / "scan.zarr", tmp_path / "b.zarr", options=opts, progress=False)
    monkeypatch.setattr(engine, "make_backend",
                        lambda model, config: CudaBackend(model, "cuda", config.precision, device_stats=False))
    host = segment(tmp_path / "scan.zarr", tmp_path / "a.zarr", options=opts, progress=False)
    for key in ("mean", "std"):
        assert gpu["normalization"][key] == pytest.approx(host["normalization"][key], rel=1e-12)
    diff = np.abs(read_volume(tmp_path / "a.zarr").astype(int) - read_volume(tmp_path / "b.zarr").astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 10000


def test_default_tile_size_on_the_gpu_is_large_and_exact(phantom):
    from tomoseg.inference.tiling import resolve_tiling

    tiling = resolve_tiling(TilingConfig(), (256, 1024, 1024), 8, device="cuda")
    assert tiling.tile_size >= 128 and tiling.tile_size % 8 == 0


def test_a_few_training_steps_on_the_gpu(tmp_path):
    from tomoseg.table import read_csv
    from tomoseg.training import train

    run = train({"output": str(tmp_path / "run"), "epochs": 2, "device": "cuda",
                 "data": {"phantoms": {"count": 2, "shape": [64, 128, 128], "validation_count": 1}},
                 "sampling": {"patch_size": 64, "batch_size": 4, "steps_per_epoch": 5, "validation_patches": 4}},
                progress=False)
    metrics = read_csv(run / "metrics.csv")
    assert list(metrics["step"]) == [5, 10]
    assert np.all(np.isfinite(metrics["train_loss"]))
    assert tomoseg.load_model(run / "last.safetensors").metadata["training"]["config"]["precision"] == "auto"
