"""Ctrl-C that a long run cannot lose.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be, and code that
catches too much there (a finalizer, a library's ``except BaseException``) can swallow it: the run then goes
on to the end. :func:`catching_ctrl_c` (the CLI's) also records the signal, and the long loops call
:func:`raise_if_interrupted` between units of work (``segment``'s tiles), so a swallowed interrupt is raised
again at the next tile.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_INTERRUPTED = threading.Event()


def _on_sigint(signum, frame):
    _INTERRUPTED.set()
    raise KeyboardInterrupt


@contextmanager
def catching_ctrl_c():
    """Within this block (main thread only; elsewhere it does nothing), Ctrl-C raises ``KeyboardInterrupt`` as
    usual and is also recorded for :func:`raise_if_interrupted`. A handler someone else installed is left alone."""
    own = (threading.current_thread() is threading.main_thread()
           and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    _INTERRUPTED.clear()
    if own:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if own:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _INTERRUPTED.clear()


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came inside :func:`catching_ctrl_c` (even if it was swallowed)."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt
