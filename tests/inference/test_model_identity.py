"""A model's identity follows its weights (review B1): runs, resumes, provenance and a worker's backend cache
never take a changed or in-memory model for another."""

import json

import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.inference.model_file import model_identity
from tomoseg.errors import TomosegError
from tomoseg.inference import BackendConfig, SegmentOptions, TilingConfig, segment
from tomoseg.io import read_volume, write_volume
from tomoseg.model import weights_digest

pytestmark = pytest.mark.filterwarnings("ignore::tomoseg.errors.TomosegWarning")  # floods: the bias shifted
TORCH = dict(tiling=TilingConfig(tile_size=32, halo=16), backend=BackendConfig(backend="torch"))


def _shifted(model, bias=6.0):
    with torch.no_grad():
        model.head.bias += bias
    return model


def test_identity_is_the_file_until_the_weights_change():
    model = tomoseg.load_model()
    shipped = model.sha256
    assert model_identity(model) == shipped
    _shifted(model)
    assert model.sha256 == shipped  # the attribute stays: the file's
    assert model_identity(model) == weights_digest(model) != shipped
    _shifted(model, -6.0)
    assert model_identity(model) == shipped  # the weights are the file's again


def test_models_made_in_memory_differ_by_their_weights():
    torch.manual_seed(0)
    a, b = tomoseg.UNet3D(2, 2), tomoseg.UNet3D(2, 2)
    assert model_identity(a) != model_identity(b)
    assert model_identity(a) == model_identity(a)


def test_changed_model_is_not_recorded_as_its_file(tmp_path, random_model_path, small_phantom):
    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image[:24, :48, :48])
    model = tomoseg.load_model(random_model_path)
    rec_a = segment(src, tmp_path / "a.zarr", model=model, options=SegmentOptions(**TORCH), progress=False)
    assert rec_a["model"]["sha256"] == model.sha256 and rec_a["model"]["sha256_of"] == "file"
    _shifted(model)
    rec_b = segment(src, tmp_path / "b.zarr", model=model, options=SegmentOptions(**TORCH), progress=False)
    assert rec_b["model"]["sha256"] == weights_digest(model) != model.sha256
    assert rec_b["model"]["sha256_of"].startswith("weights")
    assert not np.array_equal(read_volume(tmp_path / "a.zarr"), read_volume(tmp_path / "b.zarr"))


def test_shipped_model_changed_in_memory_is_not_shipped(tmp_path, small_phantom):
    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image[:24, :48, :48])
    model = _shifted(tomoseg.load_model())
    rec = segment(src, tmp_path / "p.zarr", model=model, options=SegmentOptions(**TORCH), progress=False)
    assert rec["model"]["shipped"] is None and rec["model"]["sha256"] != model.sha256


def test_resume_refuses_the_work_of_another_in_memory_model(tmp_path, random_model_path, small_phantom):
    from tomoseg.inference.work_folder import prepare_work, run_fingerprint, write_state

    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image[:24, :48, :48])
    volume = tomoseg.open_volume(src)
    options = SegmentOptions(resume=True, **TORCH)
    model = tomoseg.load_model(random_model_path)
    work = tmp_path / "work"
    work.mkdir()
    write_state(work, {"fingerprint": run_fingerprint(volume, model, options, "torch-cpu", False), "stats": {}})
    assert prepare_work(work, run_fingerprint(volume, model, options, "torch-cpu", False), options) is not None
    _shifted(model)
    with pytest.raises(TomosegError, match="model_sha256"):
        prepare_work(work, run_fingerprint(volume, model, options, "torch-cpu", False), options)
    volume.close()


def test_worker_backend_cache_follows_the_weights(tmp_path, random_model_path, small_phantom):
    """The backend a process keeps between runs (a Dask worker's) is that of the job's weights."""
    from tomoseg.checkpoint import save_model
    from tomoseg.inference import engine
    from tomoseg.inference.normalization import volume_stats

    image = small_phantom.image[:16, :32, :32]
    stats = volume_stats(image)
    a = tomoseg.load_model(random_model_path)
    b = _shifted(tomoseg.load_model(random_model_path))
    results = []
    for name, model in (("a", a), ("b", b)):
        path = save_model(model, tmp_path / f"{name}.safetensors")
        job = engine.TileJob(volume=image, shape=image.shape, model_path=str(path), model_sha256=model_identity(model),
                             stats=stats, tiling=TORCH["tiling"], backend=TORCH["backend"], threshold=127,
                             work=str(tmp_path), write_mask=False)
        x = engine.normalize(image, stats)[None, None]
        results.append(engine._backend_for(job)(x))
    engine._BACKENDS.clear()
    expected = tomoseg.inference.predict_whole(image, b, backend=TORCH["backend"], stats=stats)
    np.testing.assert_allclose(results[1][0, 0], expected, atol=1e-5)
    assert not np.allclose(results[0], results[1])


@pytest.mark.slow
def test_persistent_dask_cluster_runs_each_runs_model(tmp_path, random_model_path, small_phantom):
    """Two runs on the same workers, model A then model B (A changed in memory): B's output is B's."""
    pytest.importorskip("distributed")
    from dask.distributed import LocalCluster

    from tomoseg.inference.distributed import QUIET_SCHEDULER

    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image[:24, :64, :64])
    model = tomoseg.load_model(random_model_path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER) as cluster:
        remote = SegmentOptions(scheduler=cluster.scheduler_address, **TORCH)
        segment(src, tmp_path / "a.zarr", model=model, options=remote, progress=False)
        _shifted(model)
        segment(src, tmp_path / "b.zarr", model=model, options=remote, progress=False)
    segment(src, tmp_path / "b_local.zarr", model=model, options=SegmentOptions(**TORCH), progress=False)
    b, a = read_volume(tmp_path / "b.zarr"), read_volume(tmp_path / "a.zarr")
    assert not np.array_equal(a, b)
    assert np.abs(b.astype(int) - read_volume(tmp_path / "b_local.zarr").astype(int)).max() <= 1
    prov = json.loads((tmp_path / "b.zarr.provenance.json").read_text(encoding="utf-8"))
    assert prov["model"]["sha256"] == weights_digest(model)
