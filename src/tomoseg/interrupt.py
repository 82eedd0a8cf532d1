"""Ctrl-C, a job's time limit and a closed terminal: a long run that is stopped says so and loses nothing.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be, and code that
catches too much there (a finalizer, a library's ``except BaseException``) can swallow it: the run then goes
on to the end. :func:`catching_ctrl_c` (the CLI's) also records the signal, and the long loops call
:func:`raise_if_interrupted` between units of work (``segment``'s tiles), so a swallowed interrupt is raised
again at the next tile.

SIGTERM (what SLURM sends at a job's time limit, some seconds before SIGKILL; ``kill``'s default) and SIGHUP (a
closed terminal) are handled the same way within the block: they raise :class:`Stopped`, a ``KeyboardInterrupt``
that names its signal, so every clean-up written for Ctrl-C (the work folder kept, a local Dask cluster closed, a
half-written file removed) runs for them too, and the CLI says which signal stopped the run (:func:`stopped_by`)
and exits with 128 + its number (:func:`exit_code`): 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP, as a
shell reports a process killed by that signal. A signal whose handler someone else installed (``nohup``'s
SIGHUP ignored, a caller's own handler) is left alone.

Once a command's outputs are complete (:func:`finished`), a signal no longer stops it: it is recorded, the
command ends as it would have (its summary, exit 0), and only a second one ends the process at once.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

__all__ = ["Stopped", "catching_ctrl_c", "raise_if_interrupted", "finished", "exit_code", "stopped_by"]

_INTERRUPTED = threading.Event()
_FINISHED = threading.Event()
_SIGNUM: list[int] = []  # the signals received inside the block, first first

# the signals that stop a run, and what usually sent them (said in the CLI's line)
STOP_SIGNALS = {signal.SIGINT: None, signal.SIGTERM: "a job time limit, or kill?"}
if hasattr(signal, "SIGHUP"):  # not on Windows
    STOP_SIGNALS[signal.SIGHUP] = "the terminal closed?"


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives inside :func:`catching_ctrl_c`: a
    ``KeyboardInterrupt``, so that what cleans up after Ctrl-C cleans up after it too."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _interruption(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def _on_signal(signum, frame):
    _SIGNUM.append(int(signum))
    if _FINISHED.is_set():
        if len(_SIGNUM) > 1:  # asked twice while the finished command ends (a hang at exit?): at once
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return  # the outputs are complete: the command ends as it would have
    _INTERRUPTED.set()
    raise _interruption(signum)


def _default(signum) -> object:
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


@contextmanager
def catching_ctrl_c(*, until_exit: bool = False):
    """Within this block (main thread only; elsewhere it does nothing), Ctrl-C raises ``KeyboardInterrupt`` as
    usual, SIGTERM and SIGHUP raise :class:`Stopped`, and each is also recorded for :func:`raise_if_interrupted`.
    A handler someone else installed (or an ignored signal) is left alone.

    ``until_exit``: the handlers stay after the block (the process is about to exit: the ``tomoseg`` command), in
    the state :func:`finished` puts them in, so that a signal while Python shuts down (its threads joined, its
    ``atexit`` functions) neither prints a ``KeyboardInterrupt`` traceback after a run that ended nor turns its
    exit status into a death by signal. Otherwise the handlers found are put back."""
    found = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is _default(signum):
                found[signum] = signal.signal(signum, _on_signal)
    _INTERRUPTED.clear()
    _FINISHED.clear()
    _SIGNUM.clear()
    try:
        yield
    finally:
        if until_exit:
            _FINISHED.set()
        else:
            for signum, handler in found.items():
                signal.signal(signum, handler)
            _FINISHED.clear()
            _SIGNUM.clear()
        _INTERRUPTED.clear()


def finished() -> None:
    """The command's outputs are complete: from now on a stop signal is recorded, not raised (the run is not
    reported as interrupted, nor its complete outputs as work to resume); a second one ends the process."""
    _FINISHED.set()


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` (:class:`Stopped` for SIGTERM, SIGHUP) if a stop signal came inside
    :func:`catching_ctrl_c` (even if its exception was swallowed)."""
    if _INTERRUPTED.is_set():
        raise _interruption(_SIGNUM[0] if _SIGNUM else signal.SIGINT)


def signal_of(exc: BaseException) -> int:
    """The signal behind a ``KeyboardInterrupt`` (SIGINT unless it is a :class:`Stopped`)."""
    return getattr(exc, "signum", signal.SIGINT)


def exit_code(exc: BaseException) -> int:
    """128 + the signal's number: what a shell reports for a process that signal killed (130 for Ctrl-C)."""
    return 128 + int(signal_of(exc))


def stopped_by(exc: BaseException) -> str:
    """How the run ended, for a message: ``interrupted`` (Ctrl-C) or ``stopped by SIGTERM (a job time limit, or
    kill?)``."""
    signum = signal_of(exc)
    if signum == signal.SIGINT:
        return "interrupted"
    why = STOP_SIGNALS.get(signum)
    return f"stopped by {signal.Signals(signum).name}" + (f" ({why})" if why else "")
