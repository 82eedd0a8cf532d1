"""glibc keeps freed memory within freed_memory_kept, and goes back to its defaults after."""

import ctypes
import resource

import pytest

from tomoseg.cpu_memory import _glibc, freed_memory_kept

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc")
SIZE = 64 << 20  # above glibc's largest mmap threshold (32 MB): served by mmap by default


def _faults_of_two_rounds() -> int:
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_memory_is_reused_within_and_returned_after():
    pages = SIZE // resource.getpagesize()
    assert _faults_of_two_rounds() > pages  # each round maps fresh pages (by default)
    with freed_memory_kept() as kept:
        assert kept
        _faults_of_two_rounds()  # the heap grows once
        with freed_memory_kept():  # nested: still kept
            assert _faults_of_two_rounds() < pages // 10
        assert _faults_of_two_rounds() < pages // 10  # the inner exit did not restore
    assert _faults_of_two_rounds() > pages  # defaults back: fresh pages again


def test_the_torch_cpu_backend_runs_within_it(monkeypatch):
    import numpy as np

    import tomoseg
    from tomoseg.inference import backends

    seen = []
    real = backends.run_windows_one_by_one

    def spy(backend, windows, stats):
        from tomoseg import cpu_memory

        seen.append(cpu_memory._depth)
        yield from real(backend, windows, stats)

    monkeypatch.setattr(backends, "run_windows_one_by_one", spy)
    backend = backends.TorchBackend(tomoseg.UNet3D(levels=2, base_features=2), "cpu")
    stats = tomoseg.inference.normalization.Stats(mean=0.0, std=1.0, voxels=1, method="full")
    list(backend.run_windows(iter([]), stats))
    assert seen == [1]
    assert backend(np.zeros((1, 1, 8, 8, 8), np.float32)).shape == (1, 1, 8, 8, 8)
    from tomoseg import cpu_memory

    assert cpu_memory._depth == 0  # left: glibc's defaults back
