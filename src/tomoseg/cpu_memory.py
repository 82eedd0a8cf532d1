"""Freed memory kept in the process while PyTorch runs the network on the CPU (Linux with glibc): ``segment``'s
windows with the PyTorch backend, and training steps on the CPU.

PyTorch's CPU allocator asks the C library for every tensor and gives it back when the tensor dies. glibc serves
requests above its mmap threshold (at most 32 MB) with fresh pages from the kernel and returns them on free, so
each layer's activations (hundreds of MB for one window) are page-faulted in and zeroed anew, layer after layer,
window after window: on 2 cores, a 320x512x512 volume spent 24.1 of its 38.9 s in the kernel. Within
:func:`freed_memory_kept` glibc serves them from its heap instead (``M_MMAP_MAX`` 0) and keeps what is freed
(``M_TRIM_THRESHOLD`` -1), so later layers and windows reuse pages already mapped: 38.9 s -> 25.8 s, peak RSS
2.85 -> 4.06 GB (docs/segment.md); a training step of 2 x 96^3, 1.43 -> 1.04 s. On leaving, glibc's
settings go back to those it started with (its defaults, or the environment's ``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``: a Dask worker's 64 KiB trim threshold) and the kept memory is
returned (``malloc_trim``). Elsewhere (macOS, Windows, musl) it does nothing. OpenVINO plans its memory once per
window shape and does not need it.

The settings are the process's, not the thread's: other threads' allocations meanwhile are served the same way.
glibc's dynamic mmap threshold stays off after the first use (explicit settings switch it off), and the heap's
free space, its pages returned by ``malloc_trim``, may serve later large requests that would have been mapped
afresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_MMAP_MAX = 65536           # glibc's defaults (malloc.c)
DEFAULT_TRIM_THRESHOLD = 128 * 1024
NEVER = -1                          # M_TRIM_THRESHOLD -1: never trim (mallopt(3))

_lock = threading.Lock()
_depth = 0


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc, not musl  # noqa: B018
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def kept_on(device):
    """:func:`freed_memory_kept` where ``device`` (a ``torch.device``) is the CPU, else a context that does
    nothing: what PyTorch's CPU work (``segment``'s windows, training steps) runs in."""
    return freed_memory_kept() if getattr(device, "type", str(device)) == "cpu" else contextlib.nullcontext()


@contextlib.contextmanager
def freed_memory_kept():
    """Within it, glibc keeps freed memory for reuse instead of returning it page by page (see the module);
    yields whether it could (Linux with glibc). Nests: the outermost exit restores the settings the process
    started with."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, NEVER)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                mmap_max, trim_threshold = _startup_settings()
                libc.mallopt(M_MMAP_MAX, mmap_max)
                libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
                libc.malloc_trim(0)


def _startup_settings() -> tuple[int, int]:
    """The ``M_MMAP_MAX`` and ``M_TRIM_THRESHOLD`` glibc started this process with: its defaults, or what the
    environment set (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, or ``GLIBC_TUNABLES``'
    ``glibc.malloc.mmap_max``/``trim_threshold``, which win). A Dask nanny starts its workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``: leaving :func:`freed_memory_kept` goes back to that, not to 128 KiB.
    (A program's own ``mallopt`` calls cannot be read back and are not restored.)"""
    import os

    values = {"mmap_max": os.environ.get("MALLOC_MMAP_MAX_"),
              "trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_")}
    for item in os.environ.get("GLIBC_TUNABLES", "").split(":"):
        name, _, value = item.partition("=")
        if name in ("glibc.malloc.mmap_max", "glibc.malloc.trim_threshold"):
            values[name.rsplit(".", 1)[1]] = value

    def number(text, default):
        try:
            value = int(str(text).strip())
        except (TypeError, ValueError):
            return default
        return value if 0 <= value < 2**31 else default

    return number(values["mmap_max"], DEFAULT_MMAP_MAX), number(values["trim_threshold"], DEFAULT_TRIM_THRESHOLD)


def peak_rss() -> int:
    """This process's peak resident memory, in bytes.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the peak of this process's own address space.
    ``getrusage``'s ``ru_maxrss`` is not that: it survives ``exec``, so a process started by ``subprocess``
    (fork, then exec) reports at least its parent's RSS at the fork. A benchmark or test measuring a child
    from a large parent (pytest after hundreds of tests: 0.5 GB) then measures the parent. Elsewhere,
    ``ru_maxrss`` (bytes on macOS, KiB on other systems).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
