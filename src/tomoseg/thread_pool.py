"""Thread pools whose tasks run in the context of the thread that submits them.

Python's ``ThreadPoolExecutor`` runs each task in its worker thread's own (empty) context, so a note or warning
said there fell outside the run's record (:func:`tomoseg.errors.recording_said`, kept in a context variable):
printed, but missing from segment's provenance and analyze's summary. Every pool of tomoseg is this one.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor


class ThreadPool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks see the submitter's context variables (a copy taken at submission)."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
