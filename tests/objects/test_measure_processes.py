"""Objects measured in worker processes (objects/measure_processes.py): the same tables as on threads, and the
workers end with the run however it ends (finished, Ctrl-C, killed)."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from tomoseg.errors import TomosegError
from tomoseg.objects import AnalysisOptions, analyze


@pytest.mark.parametrize("given", ["mask", "probability map"])
def test_objects_measured_in_processes_equal_those_measured_on_threads(rng, given):
    """On threads the GIL held the measuring to about one core (marching cubes and the small NumPy steps of each
    object hold it): every column, the summary and the fractions from worker processes equal the threads' to the
    bit."""
    from tomoseg.synthetic import make_phantom

    ph = make_phantom((48, 128, 128), rng=4)
    prob = np.where(ph.labels > 0, 150, 20).astype(np.uint8) + rng.integers(0, 100, ph.labels.shape, np.uint8)
    volume = prob if given == "probability map" else ph.labels
    chunked = AnalysisOptions(in_memory_voxels=0, chunks=(16, 40, 40))
    a = analyze(volume, intensity=ph.image, voxel_size=(29.33,) * 3, options=chunked)
    b = analyze(volume, intensity=ph.image, voxel_size=(29.33,) * 3,
                options=dataclasses.replace(chunked, processes=2))
    assert len(a.objects["label"]) == len(ph.objects["label"])
    assert a.summary == b.summary
    np.testing.assert_array_equal(a.fraction_along_z, b.fraction_along_z)
    for c in a.objects:
        np.testing.assert_array_equal(a.objects[c], b.objects[c], err_msg=c)


def test_the_cli_measures_on_threads_and_a_script_may_ask_for_processes(monkeypatch):
    """analyze and evaluate (the CLI's analysis options) measure on the labelling's threads: since objects are
    measured all at once, worker processes were slower (0.78x on 2 cores); a library call may ask for one process
    a core, up to 16 (a script then needs multiprocessing's main guard)."""
    from tomoseg.cli import build_parser
    from tomoseg.cli.analysis import _options
    from tomoseg.objects import measure_processes

    monkeypatch.setattr("tomoseg.io.blocks.usable_cores", lambda: 6)
    assert measure_processes.measure_processes() == 6
    assert measure_processes.measure_processes(1) == 0 and measure_processes.measure_processes(64) == 16
    for command in (["analyze", "m.zarr", "--csv", "o.csv"], ["evaluate", "p.zarr", "t.zarr", "--out", "o"]):
        assert _options(build_parser().parse_args(command)).processes == 0
    assert AnalysisOptions().processes == 0
    with pytest.raises(TomosegError, match="processes -1 must be a non-negative integer"):
        AnalysisOptions(processes=-1)


SCRIPT = """
import numpy as np
from tomoseg.objects import AnalysisOptions, analyze

if __name__ == "__main__":
    v = np.zeros((384, 128, 128), np.uint8)
    for z in range(0, 384, 4):     # 2x2x2 cubes 2 voxels apart: 73,728 objects, in 8x16x16 chunks: a minute
        for y in range(0, 128, 4):
            v[z:z + 2, y:y + 2] = np.tile([1, 1, 0, 0], 32)
    analyze(v, options=AnalysisOptions(in_memory_voxels=0, chunks=(8, 16, 16), processes=2))
"""


def _run_until_workers(tmp_path):
    """The script in a session of its own, once its worker processes measure; (process, its workers' pids)."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            encoding="utf-8", start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and proc.poll() is None:
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        workers = [k.pid for k in kids if "resource_tracker" not in " ".join(_cmdline(k))]
        if len(workers) >= 2:
            time.sleep(3)          # their start done (a signal while they import is theirs to print)
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 2, proc.communicate()
    return proc, workers


def _cmdline(p) -> list:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _gone(pids, within: float) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_its_workers_without_their_tracebacks(tmp_path):
    proc, workers = _run_until_workers(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert err.count("Traceback") == 1 and "Process" not in err, err  # the script's own, none from a worker
    assert _gone(workers, 10)


@pytest.mark.slow
def test_workers_end_when_the_run_is_killed(tmp_path):
    """SIGKILL (the OOM killer, a hard job limit) leaves the workers no word: they ended on their own once their
    parent was gone (they waited on their queue forever)."""
    proc, workers = _run_until_workers(tmp_path)
    proc.kill()
    proc.communicate(timeout=120)
    assert _gone(workers, 10)
