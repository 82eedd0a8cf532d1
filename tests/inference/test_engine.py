import json
import warnings

import numpy as np
import pytest

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig, predict, predict_whole, segment
from tomoseg.io import read_volume, write_volume


def test_tiled_equals_whole_volume_with_default_settings(random_model_path, small_phantom):
    model = tomoseg.load_model(random_model_path)
    whole = predict_whole(small_phantom.image, model)
    assert predict(small_phantom.image, model).shape == whole.shape
    # many tiles, default halo
    tiled = predict(small_phantom.image, model, tiling=TilingConfig(tile_size=32))
    assert np.abs(tiled - whole).max() <= 1 / 255


def test_thin_volume_in_several_windows_equals_whole_volume(random_model_path, rng):
    """A thin, long volume: windows are as thin as the volume (not cubes) and split only along x."""
    from tomoseg.inference.tiling import tile_grid

    image = rng.normal(100, 20, (12, 64, 1400)).astype(np.float32)
    tiling = TilingConfig(tile_size=8, halo=48)
    tiles = tile_grid(image.shape, tiling, 8)
    assert len(tiles) > 1 and {t.read[0].stop - t.read[0].start for t in tiles} == {16}
    assert {t.read[1].stop - t.read[1].start for t in tiles} == {64}
    model = tomoseg.load_model(random_model_path)
    whole = predict_whole(image, model)
    assert np.abs(predict(image, model, tiling=tiling) - whole).max() <= 1 / 255


@pytest.mark.slow
def test_shipped_weights_tiled_equals_whole_volume_inside_the_sample(tmp_path):
    """Default settings (exact halo, sample mask on), the real weights, several windows: within 1/255 of
    one PyTorch pass over the whole volume wherever the sample is."""
    ph = tomoseg.make_phantom((32, 192, 192), rng=4243)
    src = tmp_path / "in.zarr"
    write_volume(str(src), ph.image, voxel_size=(29.33,) * 3)
    tiling = TilingConfig(tile_size=8)  # windows of at most 104^3 voxels: the volume needs several
    rec = segment(src, tmp_path / "p.zarr", options=SegmentOptions(tiling=tiling), progress=False)
    import importlib.util

    default = "openvino" if importlib.util.find_spec("openvino") else "torch"  # (OpenVINO is an extra)
    assert rec["tiling"]["tiles"] > 1 and rec["backend"].startswith(default)
    whole = np.rint(predict_whole(ph.image, backend=BackendConfig(backend="torch")) * 255)
    diff = np.abs(read_volume(tmp_path / "p.zarr").astype(int) - whole)
    assert diff[ph.pillar].max() <= 1


def test_tiled_is_exact_with_a_halo_beyond_the_receptive_field(random_model_path, small_phantom):
    model = tomoseg.load_model(random_model_path)
    image = small_phantom.image[:32, :64, :64]
    whole = predict_whole(image, model, backend=BackendConfig(backend="torch"))
    tiled = predict(image, model, tiling=TilingConfig(tile_size=16, halo=56), backend=BackendConfig(backend="torch"))
    assert np.abs(tiled - whole).max() < 1e-5


def test_tile_sizes_agree(random_model_path, small_phantom):
    model = tomoseg.load_model(random_model_path)
    a = predict(small_phantom.image, model, tiling=TilingConfig(tile_size=32, halo=24))
    b = predict(small_phantom.image, model, tiling=TilingConfig(tile_size=64, halo=24))
    assert np.abs(a - b).max() <= 1 / 255


def test_backends_agree(random_model_path, small_phantom):
    pytest.importorskip("openvino")
    model = tomoseg.load_model(random_model_path)
    image = small_phantom.image[:, :64, :64]
    t = predict(image, model, backend=BackendConfig(backend="torch"))
    o = predict(image, model, backend=BackendConfig(backend="openvino"))
    assert np.abs(t - o).max() < 1e-5  # f32 on both
    o16 = predict(image, model, backend=BackendConfig(backend="openvino", precision="bf16"))
    assert np.abs(t - o16).max() < 0.02  # bf16: documented tolerance


def test_segment_files_and_provenance(tmp_path, random_model_path, small_phantom):
    src = tmp_path / "in.tif"
    write_volume(str(src), small_phantom.image, voxel_size=(29.33,) * 3)
    rec = segment(src, tmp_path / "prob.zarr", model=random_model_path, mask_output=tmp_path / "mask.tif",
                  options=SegmentOptions(tiling=TilingConfig(tile_size=32)), progress=False)
    prob = read_volume(tmp_path / "prob.zarr")
    mask = read_volume(tmp_path / "mask.tif")
    assert prob.dtype == np.uint8 and prob.shape == small_phantom.image.shape
    np.testing.assert_array_equal(mask, (prob > 127).astype(np.uint8))
    expected = np.rint(predict(small_phantom.image, random_model_path, tiling=TilingConfig(tile_size=32)) * 255)
    assert np.abs(prob.astype(int) - expected).max() <= 1
    assert tomoseg.open_volume(tmp_path / "prob.zarr").voxel_size == pytest.approx((29.33,) * 3)
    saved = json.loads((tmp_path / "prob.zarr.provenance.json").read_text(encoding="utf-8"))
    assert saved == rec
    assert saved["model"]["sha256"] == tomoseg.load_model(random_model_path).sha256
    assert saved["model"]["shipped"] is None  # a file of its own, not a shipped model
    assert saved["threshold"] == 127 and saved["tiling"]["tile_size"] == 32
    assert saved["normalization"]["std"] > 0
    assert not list(tmp_path.glob("*.tomoseg-run")) and not list(tmp_path.glob("*.partial"))
    # the stages' parts, in the order they ran, adding up to the stages (a fresh run: every part)
    parts, stages = saved["timings_detail_s"], saved["timings_s"]
    assert list(parts) == ["open_and_check_paths", "model", "checks", "work_folder", "backend", "statistics",
                           "sample_mask", "gray_value_checks", "tile_plan", "backend_ready", "tiles",
                           "flooding_check", "outputs"]
    assert all(v >= 0 for v in parts.values())
    start = sum(parts[k] for k in ("open_and_check_paths", "model", "checks", "work_folder", "backend"))
    assert start == pytest.approx(stages["start"], abs=0.005)
    assert parts["statistics"] + parts["sample_mask"] + parts["gray_value_checks"] == pytest.approx(
        stages["statistics_and_sample_mask"], abs=0.005)
    assert parts["backend_ready"] + parts["tiles"] == pytest.approx(stages["tiles"], abs=0.005)
    assert parts["flooding_check"] + parts["outputs"] == pytest.approx(stages["finish"], abs=0.005)


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_cli_segment_bad_inputs(tmp_path, random_model_path, capsys):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32))
    nan = tmp_path / "nan.npy"
    a = np.ones((8, 16, 16), np.float32)
    a[2, 3, 4] = np.nan
    np.save(nan, a)
    const = tmp_path / "const.npy"
    np.save(const, np.full((8, 16, 16), 7, np.uint8))
    other = tmp_path / "other.safetensors"
    tomoseg.save_model(tomoseg.UNet3D(3, 4), other)
    import json as _json
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(other), framework="pt") as f:
        meta = _json.loads(f.metadata()["tomoseg"])
    meta["architecture"]["levels"] = 4
    wrong = tmp_path / "wrong.safetensors"
    save_file(load_file(str(other)), str(wrong), metadata={"tomoseg": _json.dumps(meta)})
    existing = tmp_path / "exists.zarr"
    existing.mkdir()
    m = ["--model", str(random_model_path), "-q"]
    cases = [
        ([str(nan), str(tmp_path / "o1.zarr")] + m, "constant"),  # NaN: no data; the rest is constant
        ([str(const), str(tmp_path / "o2.zarr")] + m, "constant"),
        ([str(good), str(tmp_path / "o3.zarr"), "--model", str(wrong)], "do not fit the architecture"),
        ([str(good), str(good)] + m, "equals the input"),
        ([str(good), str(existing)] + m, "already exists"),
        ([str(good), str(tmp_path / "o4.zarr"), "--mask", str(tmp_path / "o4.zarr")] + m, "different paths"),
        ([str(good), str(tmp_path / "o5.xyz")] + m, "unknown volume format"),
        ([str(good), str(tmp_path / "o6.zarr"), "--threshold", "300"] + m, "threshold"),
    ]
    for argv, pattern in cases:
        code, err = _cli(["segment"] + argv, capsys)
        assert code == 1, (argv, err)
        assert pattern in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.npy", "nan.npy", "const.npy", "other.safetensors", "wrong.safetensors", "exists.zarr"])


@pytest.mark.parametrize("shape", [(3, 5, 7), (9, 17, 12)])
def test_volumes_smaller_than_a_tile_or_not_multiple_of_8(tmp_path, random_model_path, capsys, shape):
    data = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    np.save(tmp_path / "v.npy", data)
    code, err = _cli(["segment", str(tmp_path / "v.npy"), str(tmp_path / "p.npy"), "--model",
                      str(random_model_path), "-q"], capsys)
    assert code == 0, err
    out = np.load(tmp_path / "p.npy")
    assert out.shape == shape
    ref = np.rint(predict_whole(data, random_model_path) * 255)
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_export_onnx_matches_torch(tmp_path, random_model_path, capsys):
    onnx = pytest.importorskip("onnx")
    code, err = _cli(["export-onnx", str(random_model_path), str(tmp_path / "m.onnx")], capsys)
    assert code == 0, err
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    import openvino as ov
    import torch

    model = tomoseg.load_model(random_model_path)
    x = np.random.default_rng(0).normal(size=(1, 1, 16, 24, 32)).astype(np.float32)
    compiled = ov.Core().compile_model(str(tmp_path / "m.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(compiled(x)[0] - ref).max() < 1e-4


@pytest.mark.gpu
def test_cuda_segment_equals_whole_volume_on_the_cpu(tmp_path):
    """The one exactness test every backend passes, on CUDA: shipped weights, several windows, sample mask on;
    within 1/255 of one f32 PyTorch pass on the CPU inside the sample."""
    ph = tomoseg.make_phantom((32, 192, 192), rng=4243)
    src = tmp_path / "in.zarr"
    write_volume(str(src), ph.image, voxel_size=(29.33,) * 3)
    rec = segment(src, tmp_path / "p.zarr", progress=False,
                  options=SegmentOptions(tiling=TilingConfig(tile_size=8), backend=BackendConfig(device="cuda")))
    assert rec["tiling"]["tiles"] > 1 and "cuda" in rec["backend"]
    whole = np.rint(predict_whole(ph.image, backend=BackendConfig(backend="torch", device="cpu")) * 255)
    diff = np.abs(read_volume(tmp_path / "p.zarr").astype(int) - whole)
    assert diff[ph.pillar].max() <= 1


def test_gpus_option_is_checked_before_any_work(tmp_path, capsys):
    from tomoseg.inference.distributed import gpu_of_worker

    for bad, message in [(0, "at least 1"), (True, "at least 1")]:
        with pytest.raises(TomosegError, match=message):
            SegmentOptions(gpus=bad)
    with pytest.raises(TomosegError, match="without --workers"):
        SegmentOptions(gpus=1, workers=2)
    with pytest.raises(TomosegError, match="--device cpu"):
        SegmentOptions(gpus=1, backend=BackendConfig(device="cpu"))
    assert [gpu_of_worker(n, 2) for n in (0, 1, "1", 3)] == ["cuda:0", "cuda:1", "cuda:1", "cuda:1"]
    with pytest.raises(TomosegError, match="--gpus cluster"):
        gpu_of_worker("tcp://10.0.0.1:1234", 2)
    np.save(tmp_path / "in.npy", np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8))
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    code = main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), "--gpus", str(have + 1), "-q"])
    assert code == 1 and f"--gpus {have + 1}: this machine has {have} CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.zarr.tomoseg-run").exists()


def test_segment_writes_a_pyramid_for_ome_zarr_outputs(tmp_path, random_model_path):
    pytest.importorskip("ome_zarr_models")  # Python 3.11 to 3.13
    from tomoseg.io.ome_zarr import downsample_mean, downsample_mode, read_pyramid, validate_ome_zarr

    image = tomoseg.make_phantom((24, 160, 160), rng=3).image
    write_volume(tmp_path / "scan.tif", image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=64, halo=16), sample_mask="off")
    rec = segment(tmp_path / "scan.tif", tmp_path / "prob.ome.zarr", mask_output=tmp_path / "mask.ome.zarr",
                  model=random_model_path, options=opts, progress=False)
    assert rec["resolution_levels"] == {"probability": 3, "mask": 3}
    assert validate_ome_zarr(tmp_path / "prob.ome.zarr")["levels"] == 3
    prob, mask = read_pyramid(tmp_path / "prob.ome.zarr"), read_pyramid(tmp_path / "mask.ome.zarr")
    assert [lv.shape for lv in prob] == [(24, 160, 160), (12, 80, 80), (6, 40, 40)]
    np.testing.assert_array_equal(np.asarray(prob[1]), downsample_mean(np.asarray(prob[0])))
    np.testing.assert_array_equal(np.asarray(mask[1]), downsample_mode(np.asarray(mask[0])))
    # the same run into a plain .zarr: one level, the same full-resolution bytes
    rec = segment(tmp_path / "scan.tif", tmp_path / "plain.zarr", model=random_model_path, options=opts,
                  progress=False)
    assert rec["resolution_levels"] == {"probability": 1}
    np.testing.assert_array_equal(read_volume(tmp_path / "plain.zarr"), np.asarray(prob[0]))


def test_cuda_batches_are_balanced_to_one_shape():
    from tomoseg.inference.cuda_pipeline import balanced_batch

    for n in range(1, 60):
        for limit in range(1, 12):
            b = balanced_batch(n, limit)
            batches = -(-n // b)
            assert b <= limit
            if n % b == 0:  # all of one size (one shape for cuDNN to tune), at least half the limit
                assert 2 * b >= min(limit, n) or b == n
            else:  # no such size: as few batches as the limit allows, the last at most (batches - 1) short
                assert batches == -(-n // limit) and n - (batches - 1) * b >= b - batches + 1
    assert balanced_batch(10, 8) == 5 and balanced_batch(16, 8) == 8 and balanced_batch(10, 3) == 2
    assert balanced_batch(7, 4) == 4  # 7 is prime: 4 + 3, not seven batches of one


def test_the_engine_tells_the_backend_how_many_windows_come(tmp_path, random_model_path):
    from tomoseg.inference import engine

    seen = {}

    class Counting:
        readers, name = 1, "counting"

        def run_windows(self, windows, stats):
            seen["len"] = len(windows)
            for tile, _ in windows:
                yield tile, np.zeros([c.stop - c.start for c in tile.core], np.uint8)

    src = tmp_path / "in.npy"
    np.save(src, np.random.default_rng(1).integers(0, 255, (16, 80, 80), dtype=np.uint8))
    plain = engine.make_backend
    engine.make_backend = lambda model, config: Counting()
    try:
        rec = segment(src, tmp_path / "o.zarr", model=random_model_path, progress=False,
                      options=SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off"))
    finally:
        engine.make_backend = plain
    assert seen["len"] == rec["tiling"]["tiles"] > 1


def test_flooded_end_slices_are_named_with_the_roi_that_leaves_them_out(tmp_path):
    import zarr

    from tomoseg.errors import TomosegWarning
    from tomoseg.inference.domain import check_flooding

    prob = np.zeros((20, 32, 32), np.uint8)
    prob[:3] = 200          # the dark ends of a cone-beam scan, flooded
    prob[18:, :20] = 200
    prob[8, 5:7, 5:7] = 255  # a few real objects
    store = zarr.create_array(str(tmp_path / "p.zarr"), shape=prob.shape, chunks=(8, 32, 32), dtype=np.uint8)
    store[:] = prob
    counts = np.count_nonzero(prob > 127, axis=(1, 2))
    with pytest.warns(TomosegWarning, match=r"slices z 0-2 and 18-19 are up to 100% objects.*--roi 3:18,:,:"):
        found = check_flooding(store, 127, "p.zarr", counts)
    assert found["flooded_slices"] == [[0, 3], [18, 20]]
    assert found["object_fraction"] == pytest.approx(float((prob > 127).mean()), abs=1e-6)
    prob[18:] = 0
    prob[10] = 200          # flooded in the middle: no ROI to suggest
    store[:] = prob
    with pytest.warns(TomosegWarning, match="slices z 0-2 and 10 ") as caught:
        check_flooding(store, 127, "p.zarr", np.count_nonzero(prob > 127, axis=(1, 2)))
    assert "--roi" not in str(caught[0].message)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = np.zeros_like(prob)
        clean[8, 5:7, 5:7] = 255
        assert check_flooding(store, 127, "p.zarr", np.count_nonzero(clean > 127, axis=(1, 2)))["flooded_slices"] == []


def test_flooding_is_judged_against_the_volumes_own_slices(tmp_path):
    """The real concrete volume's profile under v2 (dark end slices at 27-43 %, the rest near 1 %) is flooded
    at both ends, though no slice passes 40 %; a porous sample with 10-20 % in every slice is not."""
    import zarr

    from tomoseg.errors import TomosegWarning
    from tomoseg.inference.domain import check_flooding

    shape = (100, 10, 10)
    store = zarr.create_array(str(tmp_path / "p.zarr"), shape=shape, chunks=(50, 10, 10), dtype=np.uint8)
    concrete = np.full(100, 0.01)
    concrete[:7] = [0.29, 0.43, 0.35, 0.34, 0.36, 0.27, 0.08]
    concrete[-4:] = [0.23, 0.29, 0.22, 0.14]
    counts = np.rint(concrete * 100).astype(int)
    with pytest.warns(TomosegWarning, match=r"slices z 0-5 and 96-98 are up to 43% objects.*--roi 6:96,:,:"):
        assert check_flooding(store, 127, "p.zarr", counts)["flooded_slices"] == [[0, 6], [96, 99]]
    porous = np.random.default_rng(0).uniform(0.1, 0.2, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_flooding(store, 127, "p.zarr", np.rint(porous * 100).astype(int))["flooded_slices"] == []
    one = np.full(100, 0.01)
    one[1] = 0.43
    # one slice, next to the end: the end slice itself may be less flooded, so the ROI cuts through it
    with pytest.warns(TomosegWarning, match=r"slice z 1 is up to 43% objects.*floods it.*--roi 2:100,:,:"):
        check_flooding(store, 127, "p.zarr", np.rint(one * 100).astype(int))
    one[1], one[50] = 0.01, 0.43
    with pytest.warns(TomosegWarning, match=r"slice z 50 is") as caught:  # in the middle: no ROI to suggest
        check_flooding(store, 127, "p.zarr", np.rint(one * 100).astype(int))
    assert "--roi" not in str(caught[0].message)


def test_object_counts_from_the_done_markers_equal_the_output(tmp_path, random_model_path):
    from tomoseg.inference.tiling import tile_grid
    from tomoseg.inference.work_folder import objects_per_slice

    image = tomoseg.make_phantom((24, 96, 96), rng=5).image
    np.save(tmp_path / "in.npy", image)
    rec = segment(tmp_path / "in.npy", tmp_path / "p.npy", model=random_model_path, progress=False,
                  options=SegmentOptions(tiling=TilingConfig(tile_size=32, halo=16), threshold=100,
                                         sample_mask="off"))
    prob = np.load(tmp_path / "p.npy")
    assert rec["objects"]["counted_from"] == "every voxel"
    assert rec["objects"]["object_fraction"] == pytest.approx(float((prob > 100).mean()), abs=1e-6)
    # a marker without counts (a run begun by an earlier version): unknown, so the check samples instead
    work = tmp_path / "w"
    (work / "done").mkdir(parents=True)
    tiles = tile_grid(image.shape, TilingConfig(tile_size=32, halo=16), 8)
    for t in tiles:
        (work / "done" / str(t.index)).write_text('{"z": %d, "objects": [1]}' % t.core[0].start)
    assert objects_per_slice(work, tiles, set(), image.shape).sum() == len(tiles)
    (work / "done" / "0").write_text("")
    assert objects_per_slice(work, tiles, set(), image.shape) is None
    assert objects_per_slice(work, tiles, {0}, image.shape).sum() == len(tiles) - 1


@pytest.mark.parametrize("total_gib,tile", [(80, 384), (141, 384), (24, 256), (16, 192), (12, 128)])
def test_the_gpu_tile_size_is_the_largest_whose_window_fits_the_card(monkeypatch, total_gib, tile):
    """On the paper's volume: tile 384 on an 80 GB card (4 windows of 256x560x560, the fastest on an H100),
    smaller ones where a window would not fit in half the card's memory."""
    import torch

    from tomoseg.inference.cuda_pipeline import BYTES_PER_VOXEL, _window_voxels, choose_tile_size

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1, total_gib * 2**30))
    shape = (256, 1024, 1024)
    chosen = choose_tile_size(shape, device="cuda", precision="f32", halo=48, divisor=8)
    assert chosen == tile
    assert _window_voxels(shape, chosen, 48, 8) * BYTES_PER_VOXEL["f32"] <= 0.5 * total_gib * 2**30


@pytest.mark.parametrize("tuned", ["0", "1"])
def test_the_cuda_backend_sets_cudnn_autotuning_only_around_its_own_forward(monkeypatch, tuned):
    """cuDNN's autotuning flag is process-wide: the backend must not change it for a training run or other code in
    the same process (it once turned a training run's autotuning off at its first whole-volume validation)."""
    import torch

    from tomoseg.inference.cuda_pipeline import CudaBackend

    monkeypatch.setenv("TOMOSEG_CUDNN_BENCHMARK", tuned)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    backend = CudaBackend(tomoseg.UNet3D(levels=2, base_features=2), device="cpu")
    assert torch.backends.cudnn.benchmark is True
    seen = []
    backend.model.register_forward_hook(lambda *_: seen.append(torch.backends.cudnn.benchmark))
    backend._logits(torch.zeros(1, 1, 8, 8, 8))
    assert seen == [tuned == "1"] and torch.backends.cudnn.benchmark is True


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_cuda_pipeline_logic_runs_on_the_cpu(monkeypatch, random_model_path, channels_last):
    """The CUDA backend's batching, balancing, halving on out-of-memory, core cutting and quantization, run
    with a CPU device so that CI checks them (the GPU itself: the gpu tests), in both memory orders."""
    import torch

    from tomoseg.inference.backends import to_uint8
    from tomoseg.inference.cuda_pipeline import CudaBackend
    from tomoseg.inference.engine import _Stream
    from tomoseg.inference.normalization import volume_stats
    from tomoseg.inference.tiling import read_padded, tile_grid

    image = np.random.default_rng(3).integers(0, 255, (16, 96, 96), dtype=np.uint8)
    tiling = TilingConfig(tile_size=16, halo=8)
    model = tomoseg.load_model(random_model_path)
    tiles = tile_grid(image.shape, tiling, model.config.divisor)
    stats = volume_stats(image)
    window = int(np.prod([r.stop - r.start for r in tiles[0].read]))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * window * 340 / 0.6, 10**12))
    backend = CudaBackend(model, device="cpu", channels_last=channels_last)
    sizes, plain_start, failed = [], backend._start, []

    def run(group, terms):
        if len(group) > 2 and not failed:  # the first large batch runs out of memory
            failed.append(len(group))
            raise torch.cuda.OutOfMemoryError("simulated")
        sizes.append(len(group))
        return plain_start(group, terms)

    backend._start = run
    windows = ((t, read_padded(image, t.read, image.shape)) for t in tiles)
    out = np.zeros(image.shape, np.uint8)
    for tile, core in backend.run_windows(_Stream(windows, len(tiles)), stats):
        out[tile.core] = core
    ref = to_uint8(predict(image, model, tiling=tiling, backend=BackendConfig(backend="torch", device="cpu")))
    assert len(tiles) >= 6 and failed[0] > 2 and sum(sizes) == len(tiles)
    assert max(sizes) <= failed[0] // 2 and backend.batch_limit == failed[0] // 2  # halved, and kept halved
    assert np.abs(out.astype(int) - ref).max() <= 1
    # read-only 16-bit windows (a memory-mapped uint16 scan) go through the pinned buffer as they are: same cores
    readonly = []
    for t in tiles:
        w = read_padded(image, t.read, image.shape).astype(np.uint16)
        w.flags.writeable = False
        readonly.append((t, w))
    out16 = np.zeros_like(out)
    for tile, core in backend.run_windows(_Stream(iter(readonly), len(readonly)), stats):
        out16[tile.core] = core
    assert np.array_equal(out16, out)


@pytest.mark.parametrize("shape", [(9, 5, 7), (1, 3, 3), (4, 2, 2), (0, 3, 3), (130, 17, 3)])
def test_sigmoid_to_uint8_in_slabs_equals_the_plain_operations(rng, shape):
    """The OpenVINO path turns logits into 0-255 a few slices at a time; it must give the bytes of the plain
    operations (exactness against the whole-volume pass rests on it), at the extremes and at 0.5 / 255 steps."""
    from tomoseg.inference.backends import expit, sigmoid_uint8, to_uint8

    logits = (rng.normal(0, 6, shape)).astype(np.float32)
    flat = logits.reshape(-1)
    special = np.array([0, -0.0, 1e-8, 88.7, -88.7, 1e30, -1e30, np.float32(np.log(127.5 / 127.5))], np.float32)
    flat[:min(flat.size, special.size)] = special[:flat.size]
    steps = np.log((np.arange(256) + 0.5) / (255 - np.arange(256) + 0.5)).astype(np.float32)  # near rounding ties
    flat[special.size:special.size + steps.size] = steps[:max(0, flat.size - special.size)]
    got = sigmoid_uint8(logits)
    assert got.dtype == np.uint8 and got.shape == logits.shape
    np.testing.assert_array_equal(got, to_uint8(expit(logits)))
    view = logits[:, ::2]  # a non-contiguous core of a window, as the engine passes it
    np.testing.assert_array_equal(sigmoid_uint8(view), to_uint8(expit(view)))


def test_openvino_threads_are_not_pinned_to_cores(random_model_path):
    """Pinned (OpenVINO's default), the one-thread Dask workers of `segment --workers N` all ran on the first
    core; the compiled model must say its threads are free to move."""
    pytest.importorskip("openvino")
    from tomoseg.inference.backends import OpenVINOBackend

    backend = OpenVINOBackend(tomoseg.load_model(random_model_path), threads=1, cache=None)
    compiled = backend._compile((1, 1, 16, 16, 16))
    assert compiled.get_property("ENABLE_CPU_PINNING") is False


def test_openvino_runs_the_rewritten_network_with_the_trained_ones_output(random_model_path, small_phantom):
    """OpenVINO converts the network with its decoder rewritten (tomoseg.inference_graph: no up-sampling, no
    concatenation) and still gives the probabilities of the network as trained, run as such by PyTorch."""
    pytest.importorskip("openvino")
    import torch

    from tomoseg.inference.backends import OpenVINOBackend
    from tomoseg.inference.normalization import normalize, volume_stats

    model = tomoseg.load_model(random_model_path).eval()
    backend = OpenVINOBackend(model, threads=1, cache=None)
    ops = {op.get_type_name() for op in backend._dynamic_model().get_ordered_ops()}
    assert "ConvolutionBackpropData" in ops and not ops & {"Concat", "Interpolate"}, ops
    image = small_phantom.image[:16, :32, :48]
    x = normalize(image, volume_stats(image))[None, None]
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert np.abs(backend(x) - expected).max() < 1e-5


def test_backend_prepared_meanwhile_for_the_first_window(random_model_path):
    """segment prepares its backend on a thread while the statistics pass reads: OpenVINO's model comes back
    compiled for the window asked for, and a failure comes out of result(), not lost on the thread."""
    pytest.importorskip("openvino")
    from tomoseg.inference.backends import make_backend, prepare_meanwhile

    backend = make_backend(tomoseg.load_model(random_model_path), BackendConfig(backend="openvino"))
    assert prepare_meanwhile(backend, (16, 24, 32)).result(timeout=120) is None
    assert backend._compiled[0] == (1, 1, 16, 24, 32)
    x = np.zeros((1, 1, 16, 24, 32), np.float32)
    assert backend(x).shape == x.shape

    class Failing:
        def prepare(self, window):
            raise TomosegError(f"cannot prepare {window}")

    with pytest.raises(TomosegError, match="cannot prepare"):
        prepare_meanwhile(Failing(), (8, 8, 8)).result(timeout=60)
    assert prepare_meanwhile(object(), (8, 8, 8)).result(timeout=1) is None  # nothing to prepare


def test_windows_from_the_copy_in_memory_equal_windows_from_the_file(tmp_path, random_model_path, monkeypatch):
    """A backend that reads faster from memory (a GPU's) gets its windows from the copy the statistics pass
    filled, not from the file again; the output is byte-identical to reading the file."""
    from tomoseg.inference import engine
    from tomoseg.inference.backends import TorchBackend

    ph = tomoseg.make_phantom((24, 96, 80), rng=5)
    src = tmp_path / "in.zarr"
    write_volume(str(src), ph.image, voxel_size=(29.33,) * 3)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=16), backend=BackendConfig(backend="torch"))
    plain = segment(src, tmp_path / "a.zarr", model=random_model_path, options=opts, progress=False)
    assert plain["input_in_memory"] is False  # the CPU's backends read the file

    monkeypatch.setattr(TorchBackend, "resident_input", True, raising=False)
    monkeypatch.setattr(engine, "_cached", lambda *a, **k: pytest.fail("windows read from the file"))
    rec = segment(src, tmp_path / "b.zarr", model=random_model_path, options=opts, progress=False)
    assert rec["input_in_memory"] is True and rec["tiling"]["tiles"] > 1
    np.testing.assert_array_equal(read_volume(tmp_path / "a.zarr"), read_volume(tmp_path / "b.zarr"))


def test_a_copy_in_memory_only_where_it_fits_and_is_read_whole():
    from tomoseg.inference.engine import resident_copy

    class Volume:
        shape, dtype, size = (64, 128, 128), np.dtype(np.uint16), 64 * 128 * 128

    class Gpu:
        resident_input = True

    nbytes = Volume.size * 2
    assert resident_copy(Volume, Gpu(), SegmentOptions(), available=8 * nbytes) is not None
    assert resident_copy(Volume, Gpu(), SegmentOptions(), available=8 * nbytes - 1) is None  # over 1/8
    assert resident_copy(Volume, Gpu(), SegmentOptions(stats="sample"), available=8 * nbytes) is None
    assert resident_copy(Volume, object(), SegmentOptions(), available=8 * nbytes) is None  # a CPU backend
    assert resident_copy(Volume, None, SegmentOptions(), available=8 * nbytes) is None  # Dask


def test_first_window_is_that_of_the_tile_grid():
    from tomoseg.inference.engine import _first_window
    from tomoseg.inference.tiling import tile_grid

    tiling = TilingConfig(tile_size=32, halo=16)
    shape = (40, 100, 70)
    read = tile_grid(shape, tiling, 8)[0].read
    assert _first_window(shape, tiling, 8) == tuple(r.stop - r.start for r in read)


@pytest.mark.slow
def test_a_fresh_segment_process_with_the_pytorch_backend_finishes(tmp_path):
    """The backend is prepared on another thread while the statistics pass counts; PyTorch must not be imported
    on that thread: half-imported, it hung (or crashed) the pass, which counts uint8 voxels with PyTorch where
    loaded. It happened where nothing imported PyTorch before the backend: the shipped model with its OpenVINO
    copy cached (so segment reads only its header), hence a first run with OpenVINO."""
    pytest.importorskip("openvino")
    import subprocess
    import sys

    src = tmp_path / "in.zarr"
    write_volume(str(src), np.random.default_rng(3).integers(0, 255, (64, 256, 256), dtype=np.uint8),
                 voxel_size=(29.33,) * 3)
    for backend in ("openvino", "torch"):
        out = tmp_path / f"{backend}.zarr"
        proc = subprocess.run([sys.executable, "-m", "tomoseg", "-q", "segment", str(src), str(out),
                               "--backend", backend], capture_output=True, encoding="utf-8", timeout=180)
        assert proc.returncode == 0, (backend, proc.returncode, proc.stderr[-2000:])
        assert read_volume(out).shape == (64, 256, 256)
        if backend == "openvino":  # with the converted model cached, OpenVINO's runs never import PyTorch
            code = (f"import sys; from tomoseg.cli import main; rc = main(['-q', 'segment', {str(src)!r}, "
                    f"{str(tmp_path / 'again.zarr')!r}]); print('torch' in sys.modules); sys.exit(rc)")
            again = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", timeout=180)
            assert again.returncode == 0 and again.stdout.split()[-1] == "False", again.stderr[-2000:]


def test_an_empty_map_is_said(tmp_path):
    """Review S2: following bad advice gave a map with no object and segment ended with its normal line. An
    exactly counted empty map gets a note; a map with one object voxel does not."""
    import zarr

    from tomoseg.errors import TomosegNote
    from tomoseg.inference.domain import check_flooding

    store = zarr.create_array(str(tmp_path / "p.zarr"), shape=(4, 8, 8), chunks=(4, 8, 8), dtype=np.uint8)
    store[:] = 0
    with pytest.warns(TomosegNote, match="p.zarr: no voxel is above the threshold 127: the map holds no object"):
        assert check_flooding(store, 127, "p.zarr", np.zeros(4, int))["object_fraction"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_flooding(store, 127, "p.zarr", np.array([0, 1, 0, 0]))


def test_the_cuda_pipeline_refuses_nan_probabilities(random_model_path):
    """Review MF13's leftover: the CUDA pipeline quantized on the device, where NaN (an fp16 overflow, a diverged
    model) became 0, an empty map without a word. Its logic run with a CPU device, one NaN logit in one batch."""
    import torch

    from tomoseg.errors import TomosegError
    from tomoseg.inference.cuda_pipeline import CudaBackend
    from tomoseg.inference.engine import _Stream
    from tomoseg.inference.normalization import volume_stats
    from tomoseg.inference.tiling import read_padded, tile_grid

    image = np.random.default_rng(4).integers(0, 255, (16, 64, 64), dtype=np.uint8)
    model = tomoseg.load_model(random_model_path)
    tiles = tile_grid(image.shape, TilingConfig(tile_size=16, halo=8), model.config.divisor)
    backend = CudaBackend(model, device="cpu")
    backend.batch_limit_for = lambda shape, total: 2
    plain, calls = backend._logits, []

    def one_nan(x):
        out = plain(x)
        calls.append(len(calls))
        if len(calls) == 2:  # the second batch
            out[-1, 0, 3, 5, 7] = torch.nan
        return out

    def run():
        windows = ((t, read_padded(image, t.read, image.shape)) for t in tiles)
        return list(backend.run_windows(_Stream(windows, len(tiles)), volume_stats(image)))

    assert len(run()) == len(tiles) >= 4  # finite: every core
    backend._logits, calls[:] = one_nan, []
    with pytest.raises(TomosegError, match="the model's output holds NaN .* --precision f32"):
        run()
