"""glibc keeps freed memory within freed_memory_kept, and goes back to its defaults after."""

import pytest

from tomoseg.cpu_memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc")
CHILD = r"""
import ctypes, resource
from tomoseg.cpu_memory import freed_memory_kept

SIZE = 64 << 20  # above glibc's largest mmap threshold (32 MB): served by mmap by default
PAGES = SIZE // resource.getpagesize()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def faults_of_two_rounds():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()


assert faults_of_two_rounds() > PAGES  # each round maps fresh pages (glibc's default)
with freed_memory_kept() as kept:
    assert kept
    base = rss()
    faults_of_two_rounds()  # the heap grows once
    with freed_memory_kept():  # nested: still kept
        assert faults_of_two_rounds() < PAGES // 10
    assert faults_of_two_rounds() < PAGES // 10  # the inner exit did not restore
    assert rss() - base > SIZE * 0.9  # freed, and still held by the process
assert rss() - base < SIZE * 0.1  # the outer exit gave it back (malloc_trim)
print("ok")
"""


def test_freed_memory_is_reused_within_and_returned_after():
    """In a fresh process, so that glibc's heap holds nothing of earlier tests."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


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


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux /proc only")
def test_peak_rss_of_a_child_is_its_own_not_its_parents():
    """A child started while the parent holds 300 MB: ru_maxrss reports the parent's RSS (it survives exec),
    peak_rss the child's own peak; a child that allocates 100 MB reports that."""
    import subprocess
    import sys

    import numpy as np

    held = np.ones(300 * 2**20 // 8)  # held while the children run
    code = ("import resource, sys; import numpy as np; from tomoseg.cpu_memory import peak_rss; "
            "a = np.ones(int(sys.argv[1]) * 2**20 // 8) if int(sys.argv[1]) else None; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, peak_rss())")
    def child(mb):
        return subprocess.run([sys.executable, "-c", code, str(mb)], capture_output=True, encoding="utf-8",
                              check=True).stdout.split()

    idle, busy = ([int(v) / 2**20 for v in child(mb)] for mb in (0, 100))
    assert idle[0] >= 300 and idle[1] < 150, idle  # ru_maxrss: the parent's; peak_rss: Python + NumPy
    assert busy[1] - idle[1] == pytest.approx(100, abs=10), (idle, busy)
    del held


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append((option, value))

    def malloc_trim(self, pad):
        pass


@pytest.mark.parametrize("env, expected", [
    ({}, (65536, 128 * 1024)),  # glibc's defaults
    ({"MALLOC_TRIM_THRESHOLD_": "65536"}, (65536, 65536)),  # what a Dask nanny starts its workers with
    ({"MALLOC_MMAP_MAX_": "1000", "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=4096"}, (1000, 4096)),
])
def test_leaving_restores_the_settings_the_process_started_with(monkeypatch, env, expected):
    """Review B7: not glibc's compiled-in defaults over the environment's (a Dask worker's trim threshold)."""
    from tomoseg import cpu_memory

    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    libc = _FakeLibc()
    monkeypatch.setattr(cpu_memory, "_glibc", lambda: libc)
    with cpu_memory.freed_memory_kept():
        pass
    assert libc.calls[-2:] == [(cpu_memory.M_MMAP_MAX, expected[0]), (cpu_memory.M_TRIM_THRESHOLD, expected[1])]
