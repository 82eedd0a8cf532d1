"""``train.log`` in the run folder: the per-epoch lines and the warnings of a run, as they were said on stderr.

A batch job's stderr is often lost; the run folder keeps what the run said (review R12). Lines said before
the folder exists (the data's warnings) are kept until it does. A resume appends.
"""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import TomosegWarning

LOG = "train.log"


class RunLog:
    """Appends lines to ``train.log``; :meth:`say` also prints them on stderr (where ``echo``)."""

    def __init__(self, *, echo: bool = True):
        self.echo, self.path, self.pending, self.bar = echo, None, [], None

    def open(self, folder) -> None:
        """From now on the lines go to ``folder/train.log``, those said before it first."""
        self.path = Path(folder) / LOG
        pending, self.pending = self.pending, []
        for line in pending:
            self._append(line)

    def say(self, text: str, *, always: bool = False) -> None:
        """One line on stderr (beside the progress bar, where there is one; without ``echo`` only where
        ``always``: a note like a warning) and in the log."""
        if self.echo or always:
            if self.bar is not None:  # a line of its own above the terminal's bar (progress.print_line)
                from ..progress import print_line

                print_line(text, self.bar.stream)
            else:
                print(text, file=sys.stderr)
        self.note(text)

    def note(self, text: str) -> None:
        """One line in the log only (said elsewhere)."""
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}"
        if self.path is None:
            self.pending.append(line)
        else:
            self._append(line)

    def _append(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    @contextmanager
    def keeping_warnings(self):
        """tomoseg's warnings shown while this is open go to the log too (and are shown as before)."""
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, TomosegWarning):
                    self.note("warning: " + "; ".join(t.strip() for t in str(message).splitlines() if t.strip()))
                shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            yield self
