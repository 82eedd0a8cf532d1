"""Objects measured in worker processes, one chunk's objects at a time. No PyTorch here.

Measuring an object is many small steps (a crop, a few NumPy calls on a handful of voxels, scikit-image's marching
cubes), and each holds Python's global interpreter lock: on threads, ``analyze`` measured on about one core
whatever the machine had. A chunk's objects are measured instead in a pool of processes (the standard library's
``ProcessPoolExecutor``), fed by the labelling's worker threads: each sends its chunk (the labels, the gray
values, the probabilities: about 14 MB for 128^3) and waits for the table. The tables are those of
:func:`measure_block` run in this process, value for value. The processes are spawned: forking a process that
runs threads is not safe, and a forkserver's workers keep it alive after the main process is killed (they hold
its pipe), and it them.

The workers ignore Ctrl-C (the main process stops the run and the pool: no traceback from each worker); they end
with a SIGTERM, and on their own once the main process is gone (killed).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from ..errors import TomosegError

MAX_PROCESSES = 16   # as many as the labelling's threads (label_threads): each thread waits on one


def measure_processes(cores: int | None = None) -> int:
    """Worker processes for measuring: one per core (at most :data:`MAX_PROCESSES`); 0 (measure in the calling
    thread) on one core."""
    from ..io.blocks import usable_cores

    cores = usable_cores() if cores is None else int(cores)
    return 0 if cores < 2 else min(cores, MAX_PROCESSES)


def measure_block(labels: np.ndarray, gray, prob, region: tuple, wanted, voxel_size, shape) -> dict:
    """The table of the objects ``wanted`` (labels, each within ``region`` with a voxel of margin but at the
    volume's edge), from that region's labels and (optional) gray values and probabilities."""
    from .measure import measure_table

    return measure_table(labels, intensity=gray, probability=prob, voxel_size=voxel_size, shape=shape,
                         bboxes=wanted, region=region)


def _start_worker(main: int) -> None:
    """A worker's start: Ctrl-C reaches every process of the run, and the main process stops the run and the pool
    (a worker stopped on its own would end the pool as broken, with a traceback each); SIGTERM (a job's time
    limit) ends the worker. A worker whose parent is gone (the main process killed: SIGKILL, the OOM killer) would
    wait on its queue forever: it ends once its parent is no longer ``main``, the process that started the pool
    (a spawned worker's parent; the system gives it another at once when that dies, even before this runs)."""
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while os.getppid() == main:
            time.sleep(WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="tomoseg-parent-watch").start()


WATCH_S = 0.5   # how often a worker checks that its parent is still there


class MeasurePool:
    """``measure(...)`` = :func:`measure_block`, in one of ``processes`` worker processes (in the calling thread
    where ``processes`` is 0). Use as a context manager: the workers end with it."""

    def __init__(self, processes: int):
        self.processes = int(processes)
        self._pool = None
        if self.processes > 0:
            context = multiprocessing.get_context("spawn")  # see the module's notes
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                             initargs=(os.getpid(),))

    def measure(self, labels, gray, prob, region, wanted, voxel_size, shape) -> dict:
        if self._pool is None:
            return measure_block(labels, gray, prob, region, wanted, voxel_size, shape)
        if threading.current_thread() is not threading.main_thread():
            # a worker the pool spawns from this thread inherits its signal mask, through exec: born deaf to
            # Ctrl-C, it prints no traceback of its own when Ctrl-C comes while it still imports (before
            # _start_worker ignores it); the main thread still gets it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self._pool.submit(measure_block, labels, gray, prob, region, wanted, voxel_size, shape).result()
        except BrokenProcessPool:
            raise TomosegError("a process measuring the objects ended unexpectedly (killed, or out of memory?); "
                               "run again, with fewer cores for the run (taskset, or the job's CPU count) if the "
                               "memory is short") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "MeasurePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
