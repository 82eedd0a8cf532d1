"""The cores tomoseg uses are those its process may run on (taskset, a SLURM allocation), not the machine's."""

import os
import subprocess
import sys

import pytest

from tomoseg.inference.distributed import local_threads
from tomoseg.io import blocks


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_usable_cores_follow_the_affinity():
    code = ("from tomoseg.io.blocks import usable_cores, worker_threads\n"
            "from tomoseg.inference.distributed import local_threads\n"
            "print(usable_cores(), worker_threads(16), local_threads(1))")
    cpu = sorted(os.sched_getaffinity(0))[0]
    out = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.split() == ["1", "2", "1"]  # one core: one thread per local worker; passes keep 2 at least


def test_local_workers_share_the_usable_cores(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 8)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's count is not what this run may use
    assert [local_threads(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert blocks.worker_threads(16) == 8 and blocks.worker_threads(4) == 4
