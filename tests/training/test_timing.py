"""The phase clock that splits a training step into data and compute time."""

import time

import pytest
import torch

from tomoseg.training.timing import PhaseClock


def test_phases_are_summed_per_name_on_the_cpu():
    clock = PhaseClock(torch.device("cpu"))
    for _ in range(3):
        clock.start()
        time.sleep(0.02)
        clock.lap("data")
        time.sleep(0.005)
        clock.lap("compute")
    t = clock.totals()
    assert 0.06 <= t["data"] < 1 and 0.015 <= t["compute"] < 1  # sleeps last at least as long as asked
    assert t["data"] > t["compute"]
    assert clock.totals() == {}  # read once, then afresh


@pytest.mark.gpu
def test_phases_are_timed_in_the_cuda_stream():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    a = torch.randn(4096, 4096, device="cuda")
    clock = PhaseClock(torch.device("cuda"))
    clock.start()
    a.add_(1)          # short
    clock.lap("data")
    for _ in range(20):
        a @ a           # long: queued, the host returns at once
    clock.lap("compute")
    t = clock.totals()
    assert 0 < t["data"] < t["compute"]


def test_auto_precision_is_bf16_on_the_gpu_and_on_cpus_with_bf16_units(monkeypatch):
    from tomoseg.training import step

    monkeypatch.setattr(step, "cpu_has_bf16", lambda: True)
    assert step.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(step, "cpu_has_bf16", lambda: False)
    assert step.resolve_precision("auto", torch.device("cpu")) == "f32"
    assert step.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert step.resolve_precision("f32", torch.device("cuda")) == "f32"
