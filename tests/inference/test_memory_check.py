"""segment with too little memory: refused before the work with a tile size that fits, and an allocation that
fails anyway said in one line (review S8: a 30-line OpenVINO traceback, no check of the free memory or of a
cgroup's limit)."""

import re

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.inference.memory_check import (check_memory, fitting_tile, is_out_of_memory, out_of_memory_error,
                                            window_peak)
from tomoseg.inference.tiling import TilingConfig


def _volume(tmp_path, shape=(128, 256, 256)):
    path = tmp_path / "scan.npy"
    np.save(path, np.random.default_rng(0).integers(90, 110, shape, dtype=np.uint8))
    return str(path)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_segment_refuses_windows_larger_than_the_memory_left_naming_a_tile_size_that_fits(
        tmp_path, random_model_path, monkeypatch, cli_error, backend):
    import tomoseg.host_memory
    import tomoseg.inference.engine as engine
    from tomoseg.inference.backends import openvino_available

    if backend == "openvino" and not openvino_available():
        pytest.skip("openvino is not installed")
    monkeypatch.setattr(tomoseg.host_memory, "memory_headroom", lambda: (5 * 10**8, "the cgroup's memory limit"))

    def started(*a, **k):
        raise AssertionError("the work started")

    monkeypatch.setattr(engine, "volume_stats", started)
    code = main(["segment", _volume(tmp_path), str(tmp_path / "prob.zarr"), "--model", str(random_model_path),
                 "--backend", backend, "--device", "cpu"])
    line = cli_error(code)
    assert "not enough memory for segment's windows" in line and "0.5 GB is free (the cgroup's memory limit)" in line
    size = int(re.search(r"use --tile-size (\d+)", line).group(1))
    assert 8 <= size < (224 if backend == "openvino" else 160)
    assert not (tmp_path / "prob.zarr").exists() and not list(tmp_path.glob("*.tomoseg-run"))


def test_an_allocation_that_fails_while_the_network_runs_is_one_line(tmp_path, random_model_path, monkeypatch,
                                                                       cli_error):
    import tomoseg.inference.engine as engine

    def allocation_failed(*a, **k):  # what OpenVINO raised under `prlimit --as=2.5e9` in the review
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:112:\nException from "
                           "src/plugins/intel_cpu/src/memory.cpp:45:\nFailed to allocate 2151677952 bytes\n")

    monkeypatch.setattr(engine, "run_tiles", allocation_failed)
    code = main(["segment", _volume(tmp_path), str(tmp_path / "prob.zarr"), "--model", str(random_model_path),
                 "--backend", "torch", "--device", "cpu", "--tile-size", "128"])
    line = cli_error(code)
    assert "out of memory while running the network (PyTorch, tile size 128" in line
    assert "Failed to allocate 2151677952 bytes" in line
    assert re.search(r"use --tile-size (\d+) \(about [\d.]+ GB at its peak\) and --overwrite", line), line


def test_other_runtime_errors_are_not_taken_for_memory():
    assert is_out_of_memory(MemoryError()) and is_out_of_memory(RuntimeError("CUDA out of memory. Tried ..."))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                                         "memory: you tried to allocate 4294967296 bytes"))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))


def test_the_estimate_follows_the_measured_figures_and_the_advice_fits(monkeypatch):
    tiling = TilingConfig(tile_size=224)
    assert abs(window_peak("openvino", 320**3) - 3.0e9) < 0.1e9  # docs/segment.md: 3.03 GB at tile 224
    assert abs(window_peak("torch", 256**3) - 4.1e9) < 0.3e9  # 4.06 GB at tile 160
    size, peak = fitting_tile((512, 512, 512), tiling, 8, "openvino", 8, 2 * 10**9)
    assert size % 8 == 0 and peak <= 2e9 < window_peak("openvino", (size + 8 + 96) ** 3)  # the largest that fits
    check_memory((512, 512, 512), tiling, 8, "openvino", headroom=(4 * 10**9, "available memory"))  # fits: quiet
    check_memory((512, 512, 512), tiling, 8, "openvino", headroom=None)  # no figure (here: some figure): no refusal
    with pytest.raises(TomosegError, match="not even --tile-size 8 fits"):
        check_memory((512, 512, 512), tiling, 8, "openvino", headroom=(10**8, "the address-space limit"))
    # a small volume is one window: the estimate is the volume's, not the budget's
    check_memory((16, 64, 64), tiling, 8, "torch", headroom=(3 * 10**8, "available memory"))
    error = str(out_of_memory_error(MemoryError(), (512, 512, 512), tiling, 8, "openvino"))
    size, peak = (float(v) for v in re.search(r"use --tile-size (\d+) \(about ([\d.]+) GB", error).groups())
    assert peak <= 1.5  # half of the 3.0 GB of the windows that failed
    # under an address-space limit the process maps more than its windows touch: 1.3 GB of it are kept aside
    import tomoseg.host_memory

    for mapped in (2 * 10**8, 6 * 10**8):  # measured under prlimit --as=2.5e9: tile 128 ran, 152 did not
        monkeypatch.setattr(tomoseg.host_memory, "mapped_bytes", lambda: mapped)
        with pytest.raises(TomosegError, match=r"maps about 1.3 GB beside its windows\); use --tile-size 128 "):
            check_memory((128, 512, 512), tiling, 8, "openvino",
                         headroom=(int(2.5e9) - mapped, "the address-space limit"))


def test_local_workers_share_of_memory_is_checked():
    """DK6: a --workers run was not checked against memory at all; each local Dask worker gets the machine's
    memory divided by their number, and one whose windows do not fit was restarted by Dask again and again,
    ending after minutes in "Dask workers died ...", with advice for a cluster of one's own."""
    from tomoseg.inference.memory_check import _window_voxels, check_local_workers_memory

    tiling = TilingConfig(tile_size=224)
    need = window_peak("openvino", _window_voxels((512, 512, 512), tiling, 8))
    check_local_workers_memory(2, (512, 512, 512), tiling, 8, "openvino", total=int(2 * need / 0.95) + 2)
    with pytest.raises(TomosegError, match=r"--workers 4: each local Dask worker gets 1\.0 GB \(this machine's 4\.0 GB"
                                           r" shared out.*need about 3\.0 GB at their peak; use fewer --workers, or "
                                           r"use --tile-size \d+"):
        check_local_workers_memory(4, (512, 512, 512), tiling, 8, "openvino", total=4 * 10**9)


@pytest.mark.slow
def test_segment_workers_refused_where_a_worker_share_cannot_hold_a_window(tmp_path):
    """DK6 end to end: the memory Dask shares out among local workers is its own figure, which a hard RLIMIT_RSS
    lowers (not enforced by Linux: the run would go on unharmed before the fix); the run is refused before any
    work, naming fewer --workers and a tile size."""
    import os
    import resource
    import subprocess
    import sys
    from pathlib import Path

    from tomoseg.io import write_volume

    src = tmp_path / "in.zarr"
    write_volume(str(src), np.random.default_rng(0).integers(0, 255, (64, 128, 128), dtype=np.uint8))
    out = tmp_path / "out.zarr"

    def limit():
        resource.setrlimit(resource.RLIMIT_RSS, (400 * 2**20, 400 * 2**20))

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    result = subprocess.run([sys.executable, "-m", "tomoseg", "segment", str(src), str(out), "--workers", "1",
                             "--tile-size", "64", "--halo", "16", "--backend", "torch", "--no-sample-mask", "-q"],
                            env=env, preexec_fn=limit, capture_output=True, encoding="utf-8", timeout=240)
    assert result.returncode == 1, result.stderr
    assert re.search(r"--workers 1: each local Dask worker gets 0\.4 GB .* use fewer --workers, or use --tile-size",
                     result.stderr), result.stderr
    assert not out.exists() and not (tmp_path / "out.zarr.tomoseg-run").exists()
