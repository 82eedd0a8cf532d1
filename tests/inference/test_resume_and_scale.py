"""Slow end-to-end checks: resume after kill -9, Dask on a real LocalCluster, bounded memory."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.inference.backends import BackendConfig
from tomoseg.inference.engine import work_dir_for
from tomoseg.io import read_volume, write_volume

pytestmark = pytest.mark.slow


def _cmd(src, out, model, *extra):
    return [sys.executable, "-m", "tomoseg", "-q", "segment", str(src), str(out), "--model", str(model),
            "--tile-size", "16", "--halo", "8", "--backend", "torch", *extra]


def test_resume_after_kill_gives_identical_bytes(tmp_path, random_model_path, small_phantom):
    src = tmp_path / "in.tif"
    write_volume(str(src), small_phantom.image, voxel_size=(29.33,) * 3)
    ref = tmp_path / "ref.tif"
    subprocess.run(_cmd(src, ref, random_model_path, "--mask", str(tmp_path / "ref_mask.tif")), check=True)

    out = tmp_path / "out.tif"
    mask = tmp_path / "mask.tif"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_cmd(src, out, random_model_path, "--mask", str(mask)), env=env)
    done = work_dir_for(out) / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.exists() and len(os.listdir(done)) >= 5):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(os.listdir(done))
    assert 5 <= n_done < 105, "the kill should land mid-run"
    assert not out.exists() and not mask.exists()  # nothing that looks complete

    # without --resume the user is told what to do
    result = subprocess.run(_cmd(src, out, random_model_path, "--mask", str(mask)), capture_output=True,
                            encoding="utf-8")
    assert result.returncode == 1 and "--resume" in result.stderr
    subprocess.run(_cmd(src, out, random_model_path, "--mask", str(mask), "--resume"), check=True)
    assert out.read_bytes() == ref.read_bytes()
    assert mask.read_bytes() == (tmp_path / "ref_mask.tif").read_bytes()
    assert not work_dir_for(out).exists()
    # the provenance tells both invocations apart (it held only the resume's timings): the killed one's tiles
    # counted from its done markers' times
    record = json.loads((tmp_path / "out.tif.provenance.json").read_text(encoding="utf-8"))
    runs = record["invocations"]
    assert len(runs) == 2 and all(r["tiles_computed"] >= 1 for r in runs), runs
    assert sum(r["tiles_computed"] for r in runs) == record["sample_mask"]["tiles_computed"]
    assert runs[0]["started"] < record["started"] == runs[1]["started"] or runs[0]["started"] <= runs[1]["started"]


def test_dask_local_cluster_equals_single_process(tmp_path, random_model_path, small_phantom):
    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image)
    opts = dict(tiling=TilingConfig(tile_size=32, halo=16))
    segment(src, tmp_path / "single.zarr", model=random_model_path, options=SegmentOptions(**opts), progress=False)
    environ = dict(os.environ)
    segment(src, tmp_path / "dask.zarr", model=random_model_path, options=SegmentOptions(workers=2, **opts),
            progress=False)
    np.testing.assert_array_equal(read_volume(tmp_path / "dask.zarr"), read_volume(tmp_path / "single.zarr"))
    # Dask's nannies set OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_... in this process for their workers
    assert dict(os.environ) == environ, {k: v for k, v in os.environ.items() if environ.get(k) != v}


def test_dask_survives_a_killed_worker(tmp_path, random_model_path, small_phantom):
    from dask.distributed import Client, LocalCluster

    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image)
    opts = dict(tiling=TilingConfig(tile_size=16, halo=8))
    segment(src, tmp_path / "single.zarr", model=random_model_path, options=SegmentOptions(**opts), progress=False)
    from tomoseg.inference.distributed import QUIET_SCHEDULER

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER) as cluster, \
            Client(cluster) as client:
        import threading

        out = tmp_path / "dask.zarr"
        done = work_dir_for(out) / "done"
        killed = []

        def killer():
            deadline = time.time() + 120
            while time.time() < deadline:
                if done.exists() and len(os.listdir(done)) >= 10:
                    pid = next(iter(client.run(os.getpid).values()))
                    os.kill(pid, signal.SIGKILL)
                    killed.append(len(os.listdir(done)))
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=killer)
        thread.start()
        record = segment(src, out, model=random_model_path,
                         options=SegmentOptions(scheduler=cluster.scheduler_address, **opts), progress=False)
        thread.join()
    # the provenance names the workers that were checked, with their own host and packages (not the client's)
    import platform

    import tomoseg

    workers = record["distributed"]["workers_checked"]
    assert len(workers) == 2 and {w["host"] for w in workers} == {platform.node()}
    assert all(w["tomoseg_version"] == tomoseg.__version__ and "numpy" in w["packages"] for w in workers)
    from tomoseg.inference.tiling import tile_grid

    n_tiles = len(tile_grid(small_phantom.image.shape, opts["tiling"], 8))
    assert killed and killed[0] < n_tiles - 8, "a worker should have been killed mid-run, its task run again"
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / "single.zarr"))


_RSS = """
import sys
from tomoseg.cpu_memory import peak_rss
from tomoseg.inference import normalization, segment, SegmentOptions, TilingConfig
# the statistics pass reads blocks of up to 2^24 voxels, a few at once: a bound, but the small volume's blocks
# (96 slices) would be smaller than the large one's; blocks of 2^20 voxels are whole in both
normalization.volume_stats.__kwdefaults__["slab_voxels"] = 2**20
segment(sys.argv[1], sys.argv[2], model=sys.argv[3],
        options=SegmentOptions(tiling=TilingConfig(tile_size=64, halo=16)), progress=False)
print(peak_rss() // 1024)
"""


def test_peak_memory_does_not_grow_with_volume_size(tmp_path, random_model_path, monkeypatch):
    """Depth grows 4x; the windows (and so the memory) stay those of the voxel budget.

    Each run's peak is its own (``peak_rss``: ``ru_maxrss`` would start from pytest's RSS at the fork, which
    made this test fail after the Dask tests had grown pytest to 0.5 GB). OpenVINO's peak also depends on its
    cache of compiled models (compiling from the model in memory, from the converted file, or loading a
    compiled blob), so the test has a cache of its own, two warm-up runs fill it, and the small volume runs
    before and after the large one. The statistics pass's blocks are capped at 2^20 voxels in the child, so
    that both volumes' blocks are full ones (at the default 2^24, those of 96 slices are smaller than those of
    384: +29 MiB of bounded buffers that made this test fail on a clean clone)."""
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    rss = {}
    rng = np.random.default_rng(0)
    for name, z in (("warm-up", 96), ("warm-up 2", 96), ("small", 96), ("large", 384), ("small again", 96)):
        src = tmp_path / f"{name}.zarr"
        write_volume(str(src), rng.integers(0, 255, (z, 256, 256), dtype=np.uint8), chunks=(16, 256, 256))
        result = subprocess.run([sys.executable, "-c", _RSS, str(src), str(tmp_path / f"{name}_out.zarr"),
                                 str(random_model_path)], capture_output=True, encoding="utf-8", check=True)
        rss[name] = int(result.stdout.strip().splitlines()[-1]) / 1024  # MiB
    # held whole, the large volume would add 19 MiB as uint8 and 75 MiB as float32; what may grow is the cache
    # of decompressed input chunks, up to its budget (one row of windows: set by the slice size, not the depth)
    from tomoseg.inference.engine import _cached
    from tomoseg.inference.tiling import tile_grid
    from tomoseg.io import open_volume

    with open_volume(str(tmp_path / "large.zarr")) as vol:
        cache = _cached(vol, tile_grid(vol.shape, TilingConfig(tile_size=64, halo=16), 8), vol.shape)
        budget = cache.max_bytes / 2**20
    assert budget < 16 and rss["large"] < max(rss["small"], rss["small again"]) + 12 + budget, (rss, budget)


def test_dask_progress_moves_tile_by_tile_within_tasks(tmp_path, random_model_path, small_phantom, monkeypatch):
    """A Dask task holds a run of tiles; the bar follows the workers' done markers, not the tasks."""
    from tomoseg.inference import distributed, engine

    class Recorder:
        def __init__(self, total):
            self.total, self.n, self.updates = total, 0, []

        def update(self, n):
            self.n += n
            self.updates.append(n)

        def reset(self, total=None, desc=None):
            self.total, self.n, self.updates = total or self.total, 0, []

        def set_description(self, desc):
            pass

        def close(self):
            pass

    bars = []
    monkeypatch.setattr(engine, "_progress_bar", lambda enabled, total: bars.append(Recorder(total)) or bars[-1])
    monkeypatch.setattr(distributed._DoneWatcher, "interval", 0.02)
    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image)
    opts = SegmentOptions(workers=2, sample_mask="off", tiling=TilingConfig(tile_size=16, halo=8),
                          backend=engine.BackendConfig(device="cpu", backend="torch"))
    segment(src, tmp_path / "dask.zarr", model=random_model_path, options=opts, progress=True)
    bar = bars[-1]
    assert bar.n == small_phantom.image.size
    tiles = engine.tile_grid(small_phantom.image.shape, opts.tiling, 8)
    tasks = distributed.task_batches(tiles, 2)
    assert len(tasks) < len(tiles) / 4  # tasks hold many tiles ...
    assert len(bar.updates) > len(tasks) + 1  # ... and the bar moved more often than tasks finished


@pytest.mark.parametrize("name", ["out.tif", "slices", "out.h5:/entry/data/data", "out.nrrd", "out.npy"])
def test_outputs_in_other_formats_are_copied_in_bounded_blocks(tmp_path, rng, monkeypatch, name):
    """The finished work store is copied to a TIFF, a folder of slices, HDF5, NRRD or NumPy output in blocks of
    whole chunk rows (not whole slabs of slices: a 16384^2 slice times a chunk's depth would not fit), each
    block partial along y here; the output equals the store voxel for voxel."""
    from tomoseg.inference import outputs
    from tomoseg.io.zarr_store import create_zarr

    from tomoseg.io import blocks

    monkeypatch.setattr(outputs, "FINISH_BLOCK_VOXELS", 2000)
    copied, plain = [], blocks.block_grid

    def grid(*a, **k):
        out = plain(*a, **k)
        copied.extend(out)
        return out

    monkeypatch.setattr(blocks, "block_grid", grid)
    data = rng.integers(0, 256, (20, 70, 45)).astype(np.uint8)
    sink = create_zarr(tmp_path / "work.zarr", data.shape, np.uint8, chunks=(8, 16, 16))
    sink.array[:] = data
    final = str(tmp_path / name)
    assert outputs.finish_output(tmp_path / "work.zarr", final, data.shape, (29.33,) * 3, False) == 1
    np.testing.assert_array_equal(read_volume(final), data)
    assert copied and all(b[1].stop - b[1].start < 70 for b in copied)  # never a whole slice


def test_a_second_run_into_one_output_is_refused_while_the_first_runs(tmp_path, random_model_path, small_phantom):
    """DK3: a second segment into the output of one running now was told "an interrupted run left its work here;
    pass --resume"; that resume computed the same tiles, finished and removed the work folder, and the first run
    ended in "No such file or directory" (an --overwrite removed the first run's work under it). Each is now
    refused, naming the running process; the first run then finishes, its bytes those of a run alone."""
    src = tmp_path / "in.tif"
    write_volume(str(src), small_phantom.image)
    ref = tmp_path / "ref.zarr"
    segment(src, ref, model=random_model_path, progress=False,
            options=SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), backend=BackendConfig(backend="torch")))
    out = tmp_path / "out.zarr"
    proc = subprocess.Popen(_cmd(src, out, random_model_path), env=dict(os.environ, OMP_NUM_THREADS="1"))
    done = work_dir_for(out) / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.exists() and len(os.listdir(done)) >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # running still (not heard from for a moment, as on a loaded machine)
    try:
        for extra in ((), ("--resume",), ("--overwrite",)):
            second = subprocess.run(_cmd(src, out, random_model_path, *extra), capture_output=True, encoding="utf-8")
            assert second.returncode == 1, (extra, second.stderr)
            assert f"another tomoseg is running this run now (process {proc.pid} on" in second.stderr, second.stderr
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.wait(120) == 0
    np.testing.assert_array_equal(read_volume(out), read_volume(ref))
    assert not work_dir_for(out).exists()


def test_a_run_gone_without_a_word_does_not_hold_its_work_folder(tmp_path):
    """DK3: the heartbeat of a run killed (kill -9: its process gone on this host) or silent for longer than
    STALE_S (on another host: its node lost) does not refuse the next invocation; a fresh one of another host
    does."""
    from tomoseg.errors import TomosegError
    from tomoseg.inference import work_folder
    from tomoseg.inference.work_folder import RUNNING, check_not_running

    work = tmp_path / "out.zarr.tomoseg-run"
    work.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (work / RUNNING).write_text(json.dumps({"host": __import__("platform").node(), "pid": gone.pid}))
    check_not_running(work)  # killed here: not running
    (work / RUNNING).write_text(json.dumps({"host": "node-elsewhere", "pid": 4242}))
    with pytest.raises(TomosegError, match=r"another tomoseg is running this run now \(process 4242 on "
                                           r"node-elsewhere, heard from 0 s ago\): wait for it"):
        check_not_running(work)
    old = time.time() - work_folder.STALE_S - 5
    os.utime(work / RUNNING, (old, old))
    check_not_running(work)  # silent for longer than STALE_S: gone
    other = subprocess.Popen(["sleep", "60"])  # alive on this host, its number reused by another program
    try:
        (work / RUNNING).write_text(json.dumps({"host": __import__("platform").node(), "pid": other.pid}))
        with pytest.raises(TomosegError, match=rf"process {other.pid} on "):
            check_not_running(work)  # heard from just now
        os.utime(work / RUNNING, (old, old))
        check_not_running(work)  # silent for long, and not tomoseg: not the run's
    finally:
        other.kill()
        other.wait()
