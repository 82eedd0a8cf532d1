"""Review PH (docs/phantoms.md): odd requests to the phantom generator and what its outputs record."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import numpy as np
import pytest

from tomoseg.synthetic import make_phantom


@contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging the test run) where the body does not return within ``seconds``."""
    def stop(signum, frame):
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------ PH1
@pytest.mark.parametrize("overrides", [
    {"radius_min": 3.5},                       # every draw above a quarter of the budget
    {"radius_sd": 0.0, "radius_mean": 3.5},   # a fixed radius: the same draw every time
])
def test_objects_too_large_for_the_budget_do_not_hang(overrides):
    """32x96x96 holds 590 object voxels; a radius of 3.5 is 180, above a quarter: the sampler redrew for ever."""
    with time_limit(20):
        ph = make_phantom((32, 96, 96), rng=0, large_fraction=0.0, **overrides)
    assert len(ph.objects["label"]) >= 1
    r = ph.objects["equivalent_radius_vox"]
    assert r.min() >= 3.5 - 1e-9
