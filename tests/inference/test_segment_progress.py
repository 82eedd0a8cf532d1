"""segment's progress: plain lines in logs, and Ctrl-C says how to resume."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace

import numpy as np
import pytest

from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.inference.engine import work_dir_for
from tomoseg.interrupt import catching_ctrl_c
from tomoseg.io import write_volume


def test_progress_in_a_log_is_plain_lines(tmp_path, random_model_path, capsys):
    image = np.random.default_rng(0).normal(100, 10, (16, 48, 48)).astype(np.float32)
    write_volume(tmp_path / "in.npy", image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8))
    segment(tmp_path / "in.npy", tmp_path / "p.zarr", model=random_model_path, options=opts, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # captured stderr is not a terminal
    lines = err.strip().splitlines()
    assert lines[0].startswith("statistics:") and lines[-1].startswith("segment: 100% (36.9 kvox of 36.9 kvox)")
    assert "vox/s" in lines[-1] and len(lines) <= 6


def test_a_resumed_run_says_what_was_done_before(tmp_path, monkeypatch, capsys):
    """Review C12: a resumed run's log read "segment: 0%" and nothing about the interrupted run; its first line
    now says it resumed and how much was done before, which is where the bar starts."""
    import re

    import tomoseg
    from tomoseg.inference import engine

    model = tomoseg.UNet3D(levels=2, base_features=2).eval()
    write_volume(tmp_path / "in.npy", np.random.default_rng(0).normal(100, 10, (32, 64, 64)).astype(np.float32))
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    plain, calls = engine.write_done_marker, []

    def marker(*args):  # Ctrl-C (the CLI's handler) once 2 of the 32 tiles are done
        plain(*args)
        calls.append(1)
        if len(calls) == 2:
            with contextlib.suppress(KeyboardInterrupt):  # raised again at the next tile
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)

    with monkeypatch.context() as patch, catching_ctrl_c():
        patch.setattr(engine, "write_done_marker", marker)
        with pytest.raises(KeyboardInterrupt):
            segment(tmp_path / "in.npy", tmp_path / "p.zarr", model=model, options=opts, progress=False)
    assert 2 <= len(calls) < 32
    segment(tmp_path / "in.npy", tmp_path / "p.zarr", model=model, options=replace(opts, resume=True),
            progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    first = re.match(r"segment \(resumed: (\d+)% done before\): +(\d+)% \(.* of 131 kvox\), starting", lines[0])
    assert first and first[1] == first[2] and 0 < int(first[1]) < 100, lines
    assert lines[-1].startswith(f"segment (resumed: {first[1]}% done before): 100%"), lines


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--workers", "1"]], ids=["one-process", "local-cluster"])
def test_ctrl_c_says_how_to_resume(tmp_path, random_model_path, small_phantom, extra):
    """Ctrl-C as a terminal sends it, to every process of the group (a local cluster's workers too): exit 130,
    the resume hint said once (the progress bar said it as well as the CLI), and no traceback or Dask log of
    the workers' cancelled tasks (a --workers run printed each worker's KeyboardInterrupt traceback and
    "ended with CancelledError" warnings)."""
    src = tmp_path / "in.tif"
    write_volume(str(src), small_phantom.image, voxel_size=(29.33,) * 3)
    # no sample mask: the done markers then count computed tiles only (a skipped tile's marker is written before
    # the network is loaded, so waiting for two markers could send Ctrl-C before any tile was computed)
    cmd = [sys.executable, "-m", "tomoseg", "segment", str(src), "OUT", "--model", str(random_model_path),
           "--tile-size", "16", "--halo", "8", "--backend", "torch", "--sample-mask", "off", *extra]
    missed = []
    for attempt in range(3):
        out = tmp_path / f"out{attempt}.zarr"
        # a session of its own: the signal goes to its group as a terminal's Ctrl-C does, not to pytest's
        proc = subprocess.Popen([str(out) if a == "OUT" else a for a in cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, encoding="utf-8", start_new_session=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        done = work_dir_for(out) / "done"
        deadline = time.time() + 120
        while time.time() < deadline and not (done.exists() and len(os.listdir(done)) >= 2):
            time.sleep(0.05)
        markers, sent = len(os.listdir(done)), time.time()
        os.killpg(proc.pid, signal.SIGINT)
        stdout, err = proc.communicate(timeout=60)
        if proc.returncode == 130:
            break
        # The child once ran to the end after the signal in about a third of full-suite runs (never alone): those
        # suites ran as background jobs of a non-interactive shell, which start with SIGINT ignored, and the child
        # inherited that (tests/conftest.py now restores Ctrl-C first). Recorded, tried again; a segment that
        # ignores Ctrl-C every time still fails here
        missed.append((markers, round(time.time() - sent, 2), proc.returncode))
    if missed:
        warnings.warn(f"Ctrl-C missed before it took: (done markers at the signal, s to exit, exit code) {missed}")
    assert proc.returncode == 130, (missed, err[-500:])
    assert err.count("--resume") == 1, err
    assert err.rstrip().splitlines()[-1].startswith("tomoseg: interrupted; the same command with --resume"), err
    assert "Traceback" not in err and "CancelledError" not in err and "KeyboardInterrupt" not in err, err


def test_the_finish_step_has_a_bar_of_its_own(tmp_path, random_model_path, capsys):
    """Review S6: the conversion of the work store into an HDF5, TIFF, NRRD or npy output, and an OME-Zarr's
    pyramid, ran after the bar had closed: at a terabyte, hours with nothing printed."""
    from tomoseg.io.ome_zarr import have_models

    image = np.random.default_rng(0).normal(100, 10, (16, 48, 48)).astype(np.float32)
    write_volume(tmp_path / "in.npy", image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8))
    mask = tmp_path / "m.ome.zarr"
    segment(tmp_path / "in.npy", tmp_path / "p.h5", mask_output=mask, model=random_model_path, options=opts,
            progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("write p.h5: 100% (36.9 kvox of 36.9 kvox)") for line in lines), lines
    if have_models():  # the pyramid's levels: each read from the one before
        assert any(line.startswith("write m.ome.zarr: 100%") for line in lines), lines
    segment(tmp_path / "in.npy", tmp_path / "q.tif", model=random_model_path, options=opts, progress=False)
    assert capsys.readouterr().err == ""  # -q: silent


@pytest.mark.slow
def test_ctrl_c_during_openvinos_requests_never_hangs(tmp_path):
    """Review D2: Ctrl-C during segment on OpenVINO (the CPU default) printed "interrupted" and then hung for
    good in 6 of 16 tries on a loaded machine: the compiled model, freed with the KeyboardInterrupt's traceback
    on the main thread (holding Python's lock), joined a stream thread that waited for that lock to run a
    Python callback. The requests now run without Python callbacks. Ctrl-C at ten moments of the tiles, with
    two other processes keeping the cores busy: every run ends. (The hang depends on timing: by hand, with the
    suite running beside, 4-6 hangs in 12 before the change and none in 30 after; this test did not catch it
    in 5 runs before the change, so it guards Ctrl-C at many moments rather than reproducing D2 each time.)"""
    pytest.importorskip("openvino")
    from tomoseg.synthetic import make_phantom

    src = tmp_path / "in.tif"
    write_volume(str(src), make_phantom((96, 256, 256), rng=7).image, voxel_size=(29.33,) * 3)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        codes = []
        for attempt, delay in enumerate((0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5)):
            out = tmp_path / f"out{attempt}.tif"
            proc = subprocess.Popen([sys.executable, "-m", "tomoseg", "segment", str(src), str(out), "-q"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                                    start_new_session=True)
            work = work_dir_for(out)  # made once the statistics are done: the tiles start
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and not work.exists():
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                pytest.fail(f"segment hung after Ctrl-C (attempt {attempt}, {delay} s after the first tile)")
            codes.append(proc.returncode)
        # 130: stopped by Ctrl-C; 0: the tiles were done first; -2: the signal came as the finished process
        # was exiting (Python puts SIGINT's default action back then)
        assert set(codes) <= {0, 130, -signal.SIGINT} and 130 in codes, codes
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
