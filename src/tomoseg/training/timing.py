"""Where a training step's time goes: cutting and augmenting the batch (data) or the network's step (compute).

On the CPU the phases are timed with the wall clock. On CUDA the work is queued and runs later, so the
host's clock says little; there each phase boundary records a CUDA event in the stream, and the times are
read once at the end of an epoch (no synchronization per step). A gap in which the GPU waits for the host
counts towards the phase the host was preparing, which is what "the data path keeps the GPU waiting" means.
"""

from __future__ import annotations

import time

import torch


class PhaseClock:
    """Seconds per phase, summed over an epoch: ``start()``, then ``lap(name)`` after each phase of a step.

    Examples
    --------
    >>> clock = PhaseClock(torch.device("cpu"))
    >>> clock.start(); _ = sum(range(1000)); clock.lap("data"); _ = sum(range(1000)); clock.lap("compute")
    >>> sorted(clock.totals())
    ['compute', 'data']
    """

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self._marks: list = []   # (name of the phase that ends here, clock mark); name None at a start

    def _now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._marks.append((None, self._now()))

    def lap(self, name: str) -> None:
        self._marks.append((name, self._now()))

    def totals(self) -> dict[str, float]:
        """Seconds per phase since the last call (waits for the GPU on CUDA), and starts afresh."""
        if self.cuda and self._marks:
            self._marks[-1][1].synchronize()
        out: dict[str, float] = {}
        for (_, a), (name, b) in zip(self._marks, self._marks[1:]):
            if name is None:
                continue
            seconds = a.elapsed_time(b) / 1e3 if self.cuda else b - a
            out[name] = out.get(name, 0.0) + seconds
        self._marks = []
        return out
