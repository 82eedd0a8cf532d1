"""An existing Dask cluster that cannot do the work: said in one line, before the work or when it happens, never
a hang or a traceback (review of the Dask path, findings K1-K4, K7, K8). Real clusters on localhost, real files."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.inference.engine import work_dir_for
from tomoseg.io import open_volume, read_volume, write_volume

# Each test here runs a real cluster; one that hangs fails in 5 minutes (they take seconds) instead of holding CI.
pytestmark = pytest.mark.timeout(300)

SRC = str(Path(__file__).resolve().parents[2] / "src")
OPTS = dict(tiling=TilingConfig(tile_size=16, halo=8))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_said_at_once_and_as_what_it_is():
    """K8: a refused port and an unknown host each took 30 s and were reported as timeouts."""
    from tomoseg.inference.distributed import connect_scheduler

    for address, said in ((f"tcp://127.0.0.1:{_free_port()}", "connection refused"),
                          ("tcp://nosuchhost.invalid:8786", "unknown host 'nosuchhost.invalid'")):
        t0 = time.monotonic()
        with pytest.raises(TomosegError, match=said):
            connect_scheduler(address)
        assert time.monotonic() - t0 < 5, address


@pytest.fixture
def scheduler():
    """A scheduler with no workers of its own (they are started by each test)."""
    from dask.distributed import LocalCluster

    from tomoseg.inference.distributed import QUIET_SCHEDULER

    with LocalCluster(n_workers=0, processes=True, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER) as cluster:
        yield cluster.scheduler_address


def _worker(address, tmp_path, pythonpath, name):
    """A `dask worker` process without a nanny (killed, it stays dead), in a folder of its own."""
    folder = tmp_path / f"worker-{name}"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=pythonpath, TOMOSEG_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                             "--no-nanny", "--no-dashboard", "--name", name], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def _pause(proc, timeout: float = 10) -> None:
    """SIGSTOP ``proc`` and wait until the kernel has stopped it: ``kill`` returns once the signal is queued, and
    a worker running on another core can still finish a tile in between (CI once counted 8 tiles, then found 9)."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(f"/proc/{proc.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.005)
    raise AssertionError(f"process {proc.pid} did not stop within {timeout} s")


def _wait_workers(address, n, timeout=60):
    from dask.distributed import Client

    with Client(address) as client:
        client.wait_for_workers(n, timeout=timeout)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _count(folder) -> int:
    """The files in ``folder`` now; 0 where it is not there (yet, or any more: a run that ended removed it)."""
    try:
        return len(os.listdir(folder))
    except FileNotFoundError:
        return 0


def _wait_tiles(done, n: int, timeout: float = 120) -> None:
    """Until ``n`` tiles are done (files in the work folder's ``done``), at most ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline and _count(done) < n:
        time.sleep(0.05)


def _once_done(done, n: int, action) -> threading.Thread:
    """A started thread that runs ``action`` once ``n`` tiles are done (a worker killed or stopped mid-run)."""
    thread = threading.Thread(target=lambda: (_wait_tiles(done, n), action()))
    thread.start()
    return thread


@pytest.fixture
def scan(tmp_path, small_phantom):
    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image)
    return src


@pytest.mark.slow
def test_no_worker_is_an_error_not_a_hang(tmp_path, scan, random_model_path, scheduler, monkeypatch):
    """K2: a scheduler without workers was waited on for ever, with no message."""
    monkeypatch.setenv("TOMOSEG_DASK_WAIT", "1")
    out = tmp_path / "out.zarr"
    with pytest.raises(TomosegError, match=r"no Dask worker is connected .* start workers with `dask worker tcp"):
        segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                progress=False)
    assert not work_dir_for(out).exists() and not out.exists()


@pytest.mark.slow
def test_a_worker_without_this_tomoseg_is_named_before_the_work(tmp_path, scan, random_model_path, scheduler):
    """K1: a worker whose tomoseg is another (here: a package holding only a version) was shut down by Dask
    while unpickling the first task, and the run waited for ever."""
    old = tmp_path / "oldpkg" / "tomoseg"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("__version__ = '0.0.1'\n")
    proc = _worker(scheduler, tmp_path, str(old.parent), "old")
    try:
        _wait_workers(scheduler, 1)
        out = tmp_path / "out.zarr"
        with pytest.raises(TomosegError, match=r"Dask worker tcp://\S+ cannot run tomoseg's code .*No module named "
                                               r"'tomoseg.inference.*install tomoseg, the same version"):
            segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                    progress=False)
        assert not work_dir_for(out).exists()
        assert proc.poll() is None, "the worker is left alive"
        assert not list(tmp_path.glob(".tomoseg-probe-*"))  # the check's files are removed
    finally:
        _stop(proc)


@pytest.mark.slow
def test_workers_are_checked_for_input_memory_and_device(tmp_path, scan, random_model_path, small_phantom):
    """K1, K3, K4 on one local cluster: a worker that cannot open the input is named (the probe), a worker
    whose memory limit cannot hold its threads' windows is refused before the work, and the device is the
    workers' (``--device cuda`` is refused by the workers, not by this machine)."""
    from dask.distributed import Client, LocalCluster

    from tomoseg.inference.backends import BackendConfig, cuda_available
    from tomoseg.inference.cluster_probe import check_workers
    from tomoseg.inference.distributed import QUIET_SCHEDULER

    tif = tmp_path / "scan.tif"
    write_volume(str(tif), small_phantom.image)
    with LocalCluster(n_workers=1, threads_per_worker=2, memory_limit="300MB", processes=True,
                      dashboard_address=None, scheduler_kwargs=QUIET_SCHEDULER) as cluster, Client(cluster) as client:
        volume = open_volume(str(tif))
        tif.rename(tmp_path / "moved.tif")  # open here, gone for the worker
        try:
            with pytest.raises(TomosegError, match=r"Dask worker tcp://\S+ cannot open the input .*scan.tif.* "
                                                   "every worker sees"):
                check_workers(client, volume, tmp_path, BackendConfig())
        finally:
            volume.close()
        assert not list(tmp_path.glob(".tomoseg-probe-*"))

        out = tmp_path / "out.zarr"
        big = SegmentOptions(scheduler=cluster.scheduler_address, tiling=TilingConfig(tile_size=64, halo=48))
        with pytest.raises(TomosegError, match=r"would run out of memory: .* 0.3 GB for 2 threads; .*--nthreads 1"):
            segment(scan, out, model=random_model_path, options=big, progress=False)
        assert not work_dir_for(out).exists()
        if not cuda_available():
            cuda = SegmentOptions(scheduler=cluster.scheduler_address, backend=BackendConfig(device="cuda"), **OPTS)
            with pytest.raises(TomosegError, match=r"Dask worker tcp://\S+ .*--device cuda: no CUDA GPU"):
                segment(scan, out, model=random_model_path, options=cuda, progress=False)


@pytest.mark.slow
def test_a_worker_killed_for_memory_is_one_line_with_the_resume_hint(tmp_path):
    """K3: a task whose workers keep dying ended in a raw KilledWorker traceback."""
    import dask
    from dask.distributed import Client, LocalCluster

    from tomoseg.inference.distributed import QUIET_SCHEDULER, _result

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                         scheduler_kwargs=QUIET_SCHEDULER) as cluster, Client(cluster) as client:
        future = client.submit(os._exit, 1, pure=False)
        while not future.done():
            time.sleep(0.1)
        with pytest.raises(TomosegError, match=r"Dask workers died .*out of memory.*--nthreads 1.*--resume"):
            _result(future)


@pytest.mark.slow
def test_the_last_worker_gone_stops_the_run_and_resume_finishes_it(tmp_path, scan, random_model_path, scheduler,
                                                                   monkeypatch):
    """K2: when the last worker left mid-run (SLURM's time limit, Dask shutting workers down) the run waited for
    ever. Now it stops after TOMOSEG_DASK_WAIT seconds with the resume hint, and --resume on a new worker gives
    the bytes of a one-process run."""
    from tomoseg.inference import distributed

    segment(scan, tmp_path / "single.zarr", model=random_model_path, options=SegmentOptions(**OPTS), progress=False)
    monkeypatch.setenv("TOMOSEG_DASK_WAIT", "2")
    monkeypatch.setattr(distributed, "POLL_WORKERS_S", 0.5)
    out = tmp_path / "out.zarr"
    done = work_dir_for(out) / "done"
    proc = _worker(scheduler, tmp_path, SRC, "first")
    try:
        _wait_workers(scheduler, 1)

        thread = _once_done(done, 10, proc.kill)
        with pytest.raises(TomosegError, match=r"no Dask worker was connected to .* for 2 s, with \d+ tasks? left; "
                                               r".*--resume continues"):
            segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                    progress=False)
        thread.join()
    finally:
        _stop(proc)
    assert work_dir_for(out).exists()
    proc = _worker(scheduler, tmp_path, SRC, "second")
    try:
        _wait_workers(scheduler, 1)
        segment(scan, out, model=random_model_path,
                options=SegmentOptions(scheduler=scheduler, resume=True, **OPTS), progress=False)
    finally:
        _stop(proc)
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / "single.zarr"))


@pytest.mark.slow
def test_a_finished_task_whose_worker_is_gone_is_read_without_waiting(tmp_path, scheduler):
    """CI hung here: a task seen finished was asked for its result just as its worker was killed; Dask then
    waited for ever for the task to run again, with no worker left. A task's outcome is read from the
    scheduler's record of it (status, exception), never fetched from the worker."""
    from dask.distributed import Client

    from tomoseg.inference.distributed import _result

    proc = _worker(scheduler, tmp_path, SRC, "gone")
    try:
        with Client(scheduler) as client:
            client.wait_for_workers(1, timeout=60)
            future = client.submit(sum, [1, 2], pure=False)
            while not future.done():
                time.sleep(0.05)
            proc.kill()
            proc.wait()
            deadline = time.time() + 30
            while client.nthreads() and time.time() < deadline:  # the scheduler has seen the worker go
                time.sleep(0.1)
            assert not client.nthreads()
            answered = threading.Event()
            thread = threading.Thread(target=lambda: (_result(future), answered.set()), daemon=True)
            thread.start()
            thread.join(20)
            assert answered.is_set(), "_result waited for a worker that is gone"
            future.release()
    finally:
        _stop(proc)


@pytest.mark.slow
def test_ctrl_c_cancels_the_tasks_on_the_cluster(tmp_path, scan, random_model_path):
    """K6: after Ctrl-C the cluster's running tasks went on writing tiles into the work folder (and, after an
    --overwrite, could have written them into the new run's). Now they are cancelled and stop before their next
    write; --resume then finishes the run."""
    from dask.distributed import LocalCluster

    from tomoseg.inference.distributed import QUIET_SCHEDULER

    out = tmp_path / "out.zarr"
    done = work_dir_for(out) / "done"
    cmd = [sys.executable, "-m", "tomoseg", "-q", "segment", str(scan), str(out), "--model", str(random_model_path),
           "--tile-size", "16", "--halo", "16", "--no-sample-mask", "--backend", "torch"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER) as cluster:
        env = dict(os.environ, PYTHONPATH=SRC)
        proc = subprocess.Popen(cmd + ["--dask-scheduler", cluster.scheduler_address], env=env,
                                stderr=subprocess.PIPE, encoding="utf-8")
        _wait_tiles(done, 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        at_exit = len(os.listdir(done))
        time.sleep(3)
        after = len(os.listdir(done))
        assert proc.returncode == 130, err
        assert "cancelled the run's tasks on the Dask cluster" in err and "--resume" in err, err
        assert after <= at_exit + 1, (at_exit, after)  # at most the write under way at the signal
        subprocess.run(cmd + ["--dask-scheduler", cluster.scheduler_address, "--resume"], env=env, check=True)
    assert read_volume(out).shape == read_volume(scan).shape
    assert not work_dir_for(out).exists()


def test_a_task_of_a_stopped_or_replaced_run_writes_no_tile(tmp_path, scan, random_model_path):
    """K6: a Dask task still running after Ctrl-C, or after --overwrite made the work folder again, must not
    write its tiles there (they would be mixed into the new run's): each write checks the run first."""
    from dataclasses import replace

    from tomoseg.inference import engine
    from tomoseg.inference.work_folder import STOPPED, check_run, write_state

    work = tmp_path / "work"
    work.mkdir()
    write_state(work, {"started": 1.5})
    check_run(work, 1.5)  # this run's: goes on
    with pytest.raises(TomosegError, match="no longer this run's"):
        check_run(work, 1.0)  # the folder made again by another run
    (work / STOPPED).touch()
    with pytest.raises(TomosegError, match="stopped"):
        check_run(work, 1.5)
    # in run_tiles: the first write refused, nothing written
    (work / "done").mkdir()
    from tomoseg.io.zarr_store import create_zarr

    volume = open_volume(str(scan))
    create_zarr(work / "prob.zarr", volume.shape, np.uint8, voxel_size=None, chunks=(16,) * 3, name="prob")
    from tomoseg.inference.normalization import volume_stats

    tiles = engine.tile_grid(volume.shape, OPTS["tiling"], 8)[:2]
    job = engine.TileJob(volume=volume, shape=volume.shape, model_path=str(random_model_path), model_sha256="x",
                         stats=volume_stats(volume), tiling=OPTS["tiling"],
                         backend=engine.BackendConfig(device="cpu", backend="torch"), threshold=127, work=str(work),
                         write_mask=False, run=1.5)
    with pytest.raises(TomosegError, match="stopped"):
        engine.run_tiles(replace(job), tiles)
    volume.close()
    assert os.listdir(work / "done") == []


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_the_others_to_finish_it(tmp_path, scan, random_model_path, scheduler):
    """One of two workers killed mid-run (a node lost, a SLURM job at its limit): its running task goes to the other
    worker, the tasks it had finished are not run again (their tiles are written), and the map is the bytes of a
    one-process run."""
    segment(scan, tmp_path / "single.zarr", model=random_model_path, options=SegmentOptions(**OPTS), progress=False)
    out = tmp_path / "out.zarr"
    done = work_dir_for(out) / "done"
    procs = [_worker(scheduler, tmp_path, SRC, name) for name in ("a", "b")]
    try:
        _wait_workers(scheduler, 2)

        thread = _once_done(done, 6, procs[0].kill)
        segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                progress=False)
        thread.join()
        assert procs[0].poll() is not None, "the first worker was killed during the run"
    finally:
        for proc in procs:
            _stop(proc)
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / "single.zarr"))
    assert not work_dir_for(out).exists()


@pytest.mark.slow
def test_a_scheduler_gone_mid_run_is_said_as_such(tmp_path, scan, random_model_path):
    """The scheduler's own job ended mid-run: after Dask's 30 s of reconnecting, the run said its tasks were
    cancelled "by another client"; it now says the scheduler is lost, and how to go on."""
    sched, address = _scheduler_process(tmp_path)
    proc = None
    try:
        proc = _worker(address, tmp_path, SRC, "w")
        _wait_workers(address, 1)
        out = tmp_path / "out.zarr"
        done = work_dir_for(out) / "done"

        thread = _once_done(done, 3, sched.kill)
        with pytest.raises(TomosegError, match=rf"lost the Dask scheduler at {address}: .*start it again, and its "
                                               "workers, then the same command with --resume"):
            segment(scan, out, model=random_model_path, progress=False,
                    options=SegmentOptions(scheduler=address, tiling=TilingConfig(tile_size=16, halo=16)))
        thread.join()
    finally:
        sched.kill()
        sched.wait()
        if proc is not None:
            _stop(proc)


def _scheduler_process(tmp_path):
    """A `dask scheduler` process (killed, it is gone, as when its job ends) and its address, once it listens."""
    port = _free_port()
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port),
                              "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return sched, f"tcp://127.0.0.1:{port}"


def _said_to(monkeypatch, module, seen: list, event: threading.Event, needle: str):
    """``module.print_line`` still printing, with the lines holding ``needle`` kept in ``seen`` (and ``event``
    set): a test thread waits on what the user is told, not on a fixed time."""
    said = getattr(module, "print_line", None) or __import__("tomoseg.progress").progress.print_line

    def print_line(text, *args, **kwargs):
        said(text, *args, **kwargs)
        if needle in text:
            seen.append(text)
            event.set()
    monkeypatch.setattr(module, "print_line", print_line, raising=False)


@pytest.mark.slow
def test_a_scheduler_gone_while_waiting_for_workers_is_said_as_lost(tmp_path, scan, random_model_path, monkeypatch):
    """DK2: the scheduler killed while tomoseg waited for a first worker ended, after Dask's reconnecting, in
    "tomoseg: error: ConnectionPool closing." (Dask's words), nothing on what happened or what to do."""
    from tomoseg.inference import cluster_probe, distributed

    monkeypatch.setenv("TOMOSEG_DASK_WAIT", "120")
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 3)  # Dask's reconnecting (30 s) cut to 3
    waiting = threading.Event()
    _said_to(monkeypatch, cluster_probe, [], waiting, "waiting for Dask workers")
    sched, address = _scheduler_process(tmp_path)
    try:
        def killer():
            waiting.wait(60)
            sched.kill()

        thread = threading.Thread(target=killer)
        thread.start()
        out = tmp_path / "out.zarr"
        with pytest.raises(TomosegError, match=rf"lost the Dask scheduler at {address}: .*start it again, and its "
                                               "workers, then run the same command again"):
            segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=address, **OPTS),
                    progress=False)
        thread.join()
        assert waiting.is_set()
        assert not work_dir_for(out).exists()
    finally:
        sched.kill()
        sched.wait()


@pytest.mark.slow
def test_a_worker_that_stops_answering_mid_run_is_said(tmp_path, scan, random_model_path, scheduler, monkeypatch):
    """DK1: a worker stopped mid-task (SIGSTOP; a node swapping or hung on a file system) held the run's last tasks
    and the bar stood still, without a word, until Dask's worker-ttl check gave it up 5 to 10 minutes later. Now
    the worker is named once it has been silent for SILENT_S; woken up, it finishes the run, byte-identical."""
    from tomoseg.inference import distributed

    monkeypatch.setattr(distributed, "SILENT_S", 2.0, raising=False)
    monkeypatch.setattr(distributed, "POLL_WORKERS_S", 0.5)
    seen: list = []
    told = threading.Event()
    _said_to(monkeypatch, distributed, seen, told, "has not answered")
    segment(scan, tmp_path / "single.zarr", model=random_model_path, options=SegmentOptions(**OPTS), progress=False)
    out = tmp_path / "out.zarr"
    done = work_dir_for(out) / "done"
    proc = _worker(scheduler, tmp_path, SRC, "sleepy")
    try:
        _wait_workers(scheduler, 1)

        def stopper():
            _pause(proc)
            told.wait(40)  # told, or (before the fix) never: woken up either way, for the run to end
            proc.send_signal(signal.SIGCONT)

        thread = _once_done(done, 3, stopper)
        segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                progress=False)
        thread.join()
    finally:
        proc.send_signal(signal.SIGCONT)
        _stop(proc)
    assert told.is_set(), "the silent worker was never said"
    assert "(sleepy)" in seen[0] and "end that worker" in seen[0] and "--resume" in seen[0], seen
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / "single.zarr"))


def _segment_with_the_checked_worker_replaced(scan, out, model, scheduler, tmp_path, start_joined, match) -> list:
    """``segment`` on ``scheduler`` whose one worker, checked before the run, is stopped after two tiles and
    killed once the worker ``start_joined()`` starts has joined, so that the joined worker gets the run's tasks;
    the run must fail as ``match`` says. Returns [the tiles done when the checked worker was stopped]."""
    done = work_dir_for(out) / "done"
    procs = [_worker(scheduler, tmp_path, SRC, "checked")]
    stopped_at: list = []
    try:
        _wait_workers(scheduler, 1)

        def joiner():
            _pause(procs[0])
            stopped_at.append(_count(done))
            procs.append(start_joined())
            _wait_workers(scheduler, 2)
            procs[0].kill()

        thread = _once_done(done, 2, joiner)
        with pytest.raises(TomosegError, match=match):
            segment(scan, out, model=model, options=SegmentOptions(scheduler=scheduler, **OPTS), progress=False)
        thread.join()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
            _stop(proc)
    return stopped_at


@pytest.mark.slow
def test_a_worker_joining_with_another_tomoseg_computes_no_tile(tmp_path, scan, random_model_path, scheduler):
    """DK4: the workers are checked before the run, not those that join during it (SLURM scaling up from another
    environment): one with another tomoseg computed its tiles without a word. Now it refuses its tasks, in one
    line naming it and both versions. Here the checked worker is stopped and killed once the other has joined,
    so that the other gets the run's tasks."""
    import shutil

    import tomoseg

    other = tmp_path / "other"
    shutil.copytree(Path(SRC) / "tomoseg", other / "tomoseg", ignore=shutil.ignore_patterns("__pycache__"))
    (other / "tomoseg" / "_version.py").write_text("__version__ = '0.0.1+other'\n")
    out = tmp_path / "out.zarr"
    stopped_at = _segment_with_the_checked_worker_replaced(
        scan, out, random_model_path, scheduler, tmp_path,
        lambda: _worker(scheduler, tmp_path, str(other), "joined"),
        r"Dask worker tcp://\S+ \(joined\), which joined during the run, runs "
        rf"tomoseg 0.0.1\+other .*not tomoseg {tomoseg.__version__} .*install "
        "the same versions on every worker; the same command with --resume")
    done = work_dir_for(out) / "done"
    assert _count(done) == stopped_at[0] > 0  # the joined worker wrote no tile: the run is left to resume


@pytest.mark.slow
def test_workers_with_another_backend_version_are_refused_before_the_work(tmp_path, scan, random_model_path,
                                                                          scheduler):
    """DK4: the check compared the workers' backends and devices, not the versions of the packages that compute
    the tiles: a worker with another OpenVINO (or PyTorch) gave tiles whose bytes could differ. Here one worker's
    environment says it has version 0.0.1 of the backend's package (metadata first on its path)."""
    from tomoseg.inference.backends import BackendConfig

    fake = tmp_path / "fake"
    for name in ("openvino", "torch"):
        info = fake / f"{name}-0.0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    procs = [_worker(scheduler, tmp_path, SRC, "a"), _worker(scheduler, tmp_path, f"{fake}{os.pathsep}{SRC}", "b")]
    try:
        _wait_workers(scheduler, 2)
        out = tmp_path / "out.zarr"
        with pytest.raises(TomosegError, match=r"the Dask workers run different versions of what computes the "
                                               r"tiles \(.*torch 0\.0\.1.*\); their results could differ"):
            segment(scan, out, model=random_model_path, progress=False,
                    options=SegmentOptions(scheduler=scheduler, backend=BackendConfig(backend="torch"), **OPTS))
        assert not work_dir_for(out).exists()
    finally:
        for proc in procs:
            _stop(proc)


def _tomoseg_copy(tmp_path, name="copy"):
    """A copy of this tomoseg's package, for a worker to import its own (another install, changed later)."""
    import shutil

    root = tmp_path / name
    shutil.copytree(Path(SRC) / "tomoseg", root / "tomoseg", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _import_on_workers(address):
    """The workers import tomoseg's Dask code now, as a worker that has already run a task has."""
    import importlib

    from dask.distributed import Client

    with Client(address) as client:
        client.run(importlib.import_module, "tomoseg.inference.distributed")


@pytest.mark.slow
def test_a_task_that_fails_on_a_worker_is_one_line(tmp_path, scan, random_model_path, scheduler):
    """DK5: a task's failure other than tomoseg's own errors came as Dask's traceback; here a worker whose
    imported tomoseg is older code under the same version (started before an update; an editable install):
    "TypeError: _run_batch() takes from 2 to 3 positional arguments but 4 were given". Now one line, with what
    to do."""
    old = _tomoseg_copy(tmp_path, "old")
    code = old / "tomoseg" / "inference" / "distributed.py"
    text = code.read_text()
    assert "def _run_batch(job, tiles, gpus: int | None = None, software: dict | None = None)" in text
    code.write_text(text.replace("def _run_batch(job, tiles, gpus: int | None = None, software: dict | None = None)",
                                 "def _run_batch(job, tiles, gpus: int | None = None)"))
    proc = _worker(scheduler, tmp_path, str(old), "old")
    try:
        _wait_workers(scheduler, 1)
        out = tmp_path / "out.zarr"
        with pytest.raises(TomosegError, match=r"a task failed on a Dask worker \(TypeError: _run_batch\(\) takes "
                                               r".*restart them .*--debug shows the worker's traceback; the same "
                                               "command with --resume"):
            segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                    progress=False)
    finally:
        _stop(proc)


@pytest.mark.slow
def test_a_worker_started_before_tomoseg_changed_is_named_before_the_work(tmp_path, scan, random_model_path,
                                                                          scheduler):
    """DK5: a worker keeps the code it imported; tomoseg updated under it (same version string) was not seen by the
    check. Its imported files changed after it started: it is refused, saying to restart the workers."""
    copy = _tomoseg_copy(tmp_path)
    proc = _worker(scheduler, tmp_path, str(copy), "stale")
    try:
        _wait_workers(scheduler, 1)
        _import_on_workers(scheduler)
        later = time.time() + 120
        os.utime(copy / "tomoseg" / "inference" / "engine.py", (later, later))  # updated since
        out = tmp_path / "out.zarr"
        with pytest.raises(TomosegError, match=r"Dask worker tcp://\S+ runs tomoseg code older than its files \(\S+"
                                               r"engine.py changed since the worker started\): restart the workers"):
            segment(scan, out, model=random_model_path, options=SegmentOptions(scheduler=scheduler, **OPTS),
                    progress=False)
        assert not work_dir_for(out).exists()
    finally:
        _stop(proc)


def _can_hide_folders() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /tmp && true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _can_hide_folders(), reason="needs a mount namespace (unshare -m) to hide a folder")
def test_a_worker_joining_without_the_output_folder_is_named(tmp_path, scan, random_model_path, scheduler):
    """DK7: a worker that joins during the run on a node that does not see the output's file system (checked
    before the run are only the workers there then) failed its tasks with "model.safetensors: model file not
    found", a file the user never named. Now its task says which worker and what it does not see. The node is
    stood in for by a mount namespace in which the output's folder is an empty tmpfs."""
    outdir = tmp_path / "outputs"
    outdir.mkdir()
    out = outdir / "out.zarr"

    def blind():
        folder = tmp_path / "worker-blind"
        folder.mkdir()
        env = dict(os.environ, PYTHONPATH=SRC, TOMOSEG_THREADS="1", OMP_NUM_THREADS="1")
        return subprocess.Popen(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {outdir} && exec {sys.executable} -m "
             f"distributed.cli.dask_worker {scheduler} --nthreads 1 --no-nanny --no-dashboard --name blind"],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    _segment_with_the_checked_worker_replaced(
        scan, out, random_model_path, scheduler, tmp_path, blind,
        rf"Dask worker tcp://\S+ \(blind\) does not see the run's work folder {work_dir_for(out)}: the output "
        "must be on a file system every worker sees, at the same path .*--resume")
