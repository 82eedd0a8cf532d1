"""Ctrl-C that something swallowed is raised again at the next tile."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tomoseg
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.inference.engine import work_dir_for
from tomoseg.interrupt import catching_ctrl_c, raise_if_interrupted


def test_a_swallowed_ctrl_c_is_raised_again():
    with catching_ctrl_c():
        handler = signal.getsignal(signal.SIGINT)
        assert handler is not signal.default_int_handler
        try:
            handler(signal.SIGINT, None)  # what Ctrl-C does, and a library that catches everything
        except BaseException:  # noqa: BLE001
            pass
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    raise_if_interrupted()  # and forgotten after the block


def test_segment_stops_at_the_next_tile_after_a_swallowed_ctrl_c(tmp_path, monkeypatch):
    from tomoseg.inference import engine

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    tomoseg.write_volume(str(tmp_path / "in.tif"), image, voxel_size=(29.33,) * 3)
    plain, calls = engine.write_done_marker, []

    def marker(work, tile, counts):  # after the first tile, a Ctrl-C that someone swallows
        plain(work, tile, counts)
        calls.append(tile)
        if len(calls) == 1:
            try:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass

    monkeypatch.setattr(engine, "write_done_marker", marker)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    with catching_ctrl_c(), pytest.raises(KeyboardInterrupt):
        segment(tmp_path / "in.tif", tmp_path / "p.zarr", options=opts, progress=False)
    assert 1 <= len(calls) < 16  # stopped long before the 32 tiles
    assert not (tmp_path / "p.zarr").exists()
    assert engine.work_dir_for(tmp_path / "p.zarr").exists()  # the work folder stays: --resume goes on


# ---------------------------------------------------------------- signals to a real `tomoseg` process
SRC = str(Path(__file__).resolve().parents[1] / "src")

# a sitecustomize for the processes a test starts (the local cluster's workers too): TOMOSEG_TEST_HOOK picks a
# hook that puts a signal at a chosen moment
HOOKS = '''
import os

hook = os.environ.get("TOMOSEG_TEST_HOOK")
if hook == "slow":  # each finished tile takes 0.1 s more, and from the second on the run waits for the test's
    import threading  # gate (the file it makes once its signal is sent): the signal lands in the middle of the
    import time       # run however slow the test's machine (a loaded one saw the run end before it was sent)
    from pathlib import Path

    from tomoseg.inference import engine

    plain = engine.write_done_marker
    gate = os.environ.get("TOMOSEG_TEST_GATE")
    written, lock = [0], threading.Lock()

    def write_done_marker(*args):
        plain(*args)
        with lock:
            written[0] += 1
        deadline = time.time() + 60
        while gate and written[0] >= 2 and not Path(gate).exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)

    engine.write_done_marker = write_done_marker
elif hook == "at-summary":  # Ctrl-C as the summary is printed: every output is in place
    import builtins
    import signal

    plain_print = builtins.print

    def print(*args, **kwargs):
        if args and str(args[0]).startswith("segmented "):
            os.kill(os.getpid(), signal.SIGINT)
        plain_print(*args, **kwargs)

    builtins.print = print
elif hook == "at-exit":  # Ctrl-C while Python shuts down after the run
    import atexit
    import signal
    import time

    def late():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)

    atexit.register(late)
'''


def _env(tmp_path, hook):
    folder = tmp_path / "hooks"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOOKS)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), SRC]), TOMOSEG_TEST_HOOK=hook,
                OMP_NUM_THREADS="1")


def _store_bytes(store: Path) -> dict:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture
def scan(tmp_path):
    src = tmp_path / "in.tif"
    tomoseg.write_volume(str(src), tomoseg.make_phantom((32, 64, 64), rng=3).image, voxel_size=(29.33,) * 3)
    return src


def _segment_args(scan, out, model):
    return ["segment", str(scan), str(out), "--model", model, "--tile-size", "16", "--halo", "8",
            "--no-sample-mask", "--backend", "torch"]


def _stop_after_two_tiles(tmp_path, args, signum):
    """``tomoseg args`` in a session of its own (the slow hook), ``signum`` sent to its group once two tiles are
    done, as SLURM sends SIGTERM to every process of a job and a closing terminal SIGHUP to its jobs' groups;
    returns (exit code, stderr)."""
    out = Path(args[2])
    gate = tmp_path / "signal-sent"
    # SIGHUP's default disposition given back before tomoseg starts: a suite run under nohup passes SIGHUP ignored
    # to its children, and tomoseg then rightly leaves it alone (the SIGHUP case ran to the end, exit 0)
    hup_default = ("import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
                   "os.execv(sys.executable, [sys.executable, '-m', 'tomoseg', *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", hup_default, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8", start_new_session=True,
                            env=dict(_env(tmp_path, "slow"), TOMOSEG_TEST_GATE=str(gate)))
    done = work_dir_for(out) / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.exists() and len(os.listdir(done)) >= 2) and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signum)
    gate.touch()  # the run's tiles go on (and see the signal's stop)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(tmp_path, scan, tiny_model_factory, capsys, signum):
    """C1: SLURM's time limit (SIGTERM) and a closed terminal (SIGHUP) killed the run without a word; now it stops
    as Ctrl-C does: one line naming the signal and the resume hint, exit 128 + the signal's number, and --resume
    finishes it byte for byte as an uninterrupted run."""
    from tomoseg.cli import main

    model = tiny_model_factory(2)
    code, err = _stop_after_two_tiles(tmp_path, _segment_args(scan, tmp_path / "out.zarr", model), signum)
    why = {signal.SIGTERM: "a job time limit, or kill?", signal.SIGHUP: "the terminal closed?"}[signum]
    assert code == 128 + signum, err
    assert err.rstrip().splitlines()[-1] == (f"tomoseg: stopped by {signal.Signals(signum).name} ({why}); the same "
                                             "command with --resume continues where it stopped"), err
    assert err.count("--resume") == 1 and "Traceback" not in err, err
    assert main(["-q", *_segment_args(scan, tmp_path / "out.zarr", model), "--resume"]) == 0
    assert main(["-q", *_segment_args(scan, tmp_path / "ref.zarr", model)]) == 0
    capsys.readouterr()
    assert _store_bytes(tmp_path / "out.zarr") == _store_bytes(tmp_path / "ref.zarr")


@pytest.mark.slow
def test_sigterm_closes_a_local_cluster_without_dask_noise(tmp_path, scan, tiny_model_factory, capsys):
    """C1 with --workers: the log held the workers' tracebacks ("Failed to communicate with scheduler") and a
    leaked-semaphore warning, no tomoseg line; now the one line, exit 143, and --resume (without workers)
    finishes it as an uninterrupted run."""
    from tomoseg.cli import main

    model = tiny_model_factory(2)
    args = [*_segment_args(scan, tmp_path / "out.zarr", model), "--workers", "1"]
    code, err = _stop_after_two_tiles(tmp_path, args, signal.SIGTERM)
    assert code == 143, err
    assert err.rstrip().splitlines()[-1] == ("tomoseg: stopped by SIGTERM (a job time limit, or kill?); the same "
                                             "command with --resume continues where it stopped"), err
    for noise in ("Traceback", "distributed", "leaked", "Error"):
        assert noise not in err, err
    assert main(["-q", *_segment_args(scan, tmp_path / "out.zarr", model), "--resume"]) == 0
    assert main(["-q", *_segment_args(scan, tmp_path / "ref.zarr", model)]) == 0
    capsys.readouterr()
    assert _store_bytes(tmp_path / "out.zarr") == _store_bytes(tmp_path / "ref.zarr")


@pytest.mark.parametrize("hook", ["at-summary", "at-exit"])
def test_ctrl_c_once_the_outputs_are_complete_is_a_finished_run(tmp_path, scan, tiny_model_factory, hook):
    """C11: Ctrl-C after the outputs were in place ended in a KeyboardInterrupt traceback with exit 0, or in a death
    by SIGINT after the success summary. The run is finished: its summary, exit 0, nothing else said."""
    out = tmp_path / "out.zarr"
    args = _segment_args(scan, out, tiny_model_factory(2))
    proc = subprocess.run([sys.executable, "-m", "tomoseg", "-q", *args, "--mask", str(tmp_path / "m.zarr")],
                          capture_output=True, encoding="utf-8", env=_env(tmp_path, hook), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("segmented 32x64x64"), proc.stdout
    # nothing said but notes (the tiny model's map is empty: "no voxel is above the threshold")
    assert [line for line in proc.stderr.splitlines() if not line.startswith("tomoseg: note: ")] == [], proc.stderr
    assert out.is_dir() and (tmp_path / "m.zarr").is_dir() and not work_dir_for(out).exists()
