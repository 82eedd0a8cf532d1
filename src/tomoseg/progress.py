"""Progress a person trusts: a bar with Mvox/s and a time left that settles, or plain lines in logs.

On a terminal, one line is redrawn (at most 5 times a second, and once a second
even when no work has finished, so the elapsed time moves from the first
seconds). When stderr is not a terminal (a log file, CI, a batch job) it prints
one plain line every ``interval`` seconds instead of hundreds of ``\\r``
fragments. Ctrl-C while a bar is open prints how to resume (unless the caller says it:
:func:`resume_hint_left_to_caller`).

The rate is an exponential moving average over about ``window`` seconds,
started from the mean rate of the run so far, so the time left settles within
a few updates instead of jumping with every tile.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> with Progress(1000, desc="demo", stream=out, interval=0) as bar:
...     bar.update(500)
...     bar.update(500)
>>> "demo: 100%" in out.getvalue()
True
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import sys
import threading
import time

__all__ = ["Progress", "Stage", "progress_bar", "format_duration", "format_count", "print_line"]

_HINT_LEFT_TO_CALLER = contextvars.ContextVar("tomoseg_resume_hint_left_to_caller", default=False)
_DRAWN: list = []  # the terminal bars open now (their line is on the screen)


def print_line(text: str, stream=None) -> None:
    """``text`` on a line of its own (default on stderr): where a terminal bar is drawn on that stream, its line
    is cleared first and the bar drawn again below, so a note or warning printed during a run never lands inside
    the bar's line (nor the bar's next redraw over the note)."""
    stream = stream if stream is not None else sys.stderr
    bars = [bar for bar in list(_DRAWN) if bar.stream is stream]
    for bar in bars:
        bar._lock.acquire()
    try:
        for bar in bars[:1]:  # one line holds them all: the one drawn last
            stream.write("\r" + " " * bar._width + "\r")
            bar._width = 0
        stream.write(text + "\n")
        stream.flush()
    finally:
        for bar in bars:
            bar._lock.release()
    for bar in bars:
        bar._draw(force=True)


@contextlib.contextmanager
def resume_hint_left_to_caller():
    """Within this block a bar closed by Ctrl-C prints no resume hint: the caller prints its own (the CLI's
    "tomoseg: interrupted; ..." line, which knows the command), so the hint is said once, not twice."""
    token = _HINT_LEFT_TO_CALLER.set(True)
    try:
        yield
    finally:
        _HINT_LEFT_TO_CALLER.reset(token)


def step(bar, starting: str | None = None) -> None:
    """On a bar over steps (or None, no bar): the step ``starting`` under way, named on the bar after the bar's
    own description, or with None one step done."""
    if bar is None:
        return
    if starting:
        bar.set_description(f"{bar.desc.split(' (')[0]} ({starting})")
    else:
        bar.update(1)


def format_count(n: float, unit: str = "vox") -> str:
    """``1234567`` -> ``'1.23 Mvox'``; a plural unit in the singular for one (``'1 step'``, ``'2 steps'``)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}{unit}"
    if unit.endswith("s") and f"{n:.0f}" in ("1", "-1"):
        unit = unit[:-1]
    return f"{n:.0f} {unit}"


def format_duration(seconds: float) -> str:
    """Rounded so that it does not flicker: ``'8 s'``, ``'2 min 10 s'``, ``'1 h 05 min'``."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 600:
        s = 5 * round(s / 5)
        return f"{s // 60} min {s % 60:02d} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    m = round(s / 60)
    return f"{m // 60} h {m % 60:02d} min"


class Progress:
    """A progress indicator with the tqdm methods tomoseg uses (``update``, ``reset``, ``set_description``,
    ``close``).

    Parameters
    ----------
    total : int
        Units of work (voxels).
    desc : str
        What is being done (``statistics``, ``segment``).
    unit : str
        Unit name; rates are shown per second with an SI prefix (Mvox/s).
    stream : file, optional
        Where to write; default ``sys.stderr``.
    tty : bool, optional
        Redraw one line (True) or print plain lines (False); default: whether ``stream`` is a terminal.
    interval : float, optional
        Seconds between plain lines (default 30); 0 prints at every update (for tests).
    window : float
        Seconds over which the rate is averaged (default 20).
    resume_hint : str, optional
        Printed when Ctrl-C stops the work while the bar is open (not within
        :func:`resume_hint_left_to_caller`).
    """

    def __init__(self, total: int, *, desc: str = "", unit: str = "vox", stream=None, tty: bool | None = None,
                 interval: float | None = None, window: float = 20.0, resume_hint: str | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(tty) if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = (30.0 if interval is None else float(interval))
        self.window = float(window)
        self.unit = unit
        self.resume_hint = resume_hint
        self._lock = threading.Lock()
        self._closed = False
        self._width = 0
        self.reset(total=total, desc=desc)
        self._ticker = None
        if self.tty:
            _DRAWN.append(self)
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="tomoseg-progress", daemon=True)
            self._ticker.start()

    # ------------------------------------------------------------- tqdm-like API
    def reset(self, total: int | None = None, desc: str | None = None) -> None:
        with getattr(self, "_lock", threading.Lock()):
            if total is not None:
                self.total = int(total)
            if desc is not None:
                self.desc = desc
            self.n = 0
            self.skipped = 0         # units counted by skip(): done before, not by this run's rate
            self.resumed = None      # the fraction done before a resumed run started (skip(resumed=True))
            self.start = time.monotonic()
            self._rate = None        # smoothed rate (units/s)
            self._last_t = self.start
            self._last_n = 0
            self._last_print = -float("inf")
            self._last_draw = -float("inf")

    def set_description(self, desc: str, *, log_line: bool = False) -> None:
        """``log_line``: where the bar prints plain lines (a log), one under the new description at once."""
        with self._lock:
            if log_line and desc != self.desc and self._last_print != float("inf"):
                self._last_print = -float("inf")
            self.desc = desc
        self._draw(force=True)

    def skip(self, n: int, *, resumed: bool = False) -> None:
        """Move the bar by ``n`` units that need no work (tiles done by an interrupted run, tiles outside the
        sample): they count in its position, not in its rate or time left (counted as work done in no time,
        they showed hundreds of Mvox/s and "0 s left" for a whole run: review K5).

        ``resumed``: the run continues an interrupted one, whose work these units are. The bar says so from now
        on (``segment (resumed: 37% done before): ...``), and in a log a line says it at once rather than with
        the next line, up to ``interval`` later."""
        with self._lock:
            self.n += int(n)
            self.skipped += int(n)
            self._last_n += int(n)
            if resumed:
                self.resumed = self.n / self.total if self.total else 1.0
                if self._last_print != float("inf"):
                    self._last_print = -float("inf")
        self._draw(force=resumed)

    def update(self, n: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            self.n += int(n)
            dt = now - self._last_t
            if dt > 0:
                inst = (self.n - self._last_n) / dt
                if not self._rate:  # unknown, or only zero-length updates so far
                    elapsed = now - self.start
                    self._rate = (self.n - self.skipped) / elapsed if elapsed > 0 else inst
                else:
                    a = min(1.0, dt / self.window)
                    self._rate = (1 - a) * self._rate + a * inst
                self._last_t, self._last_n = now, self.n
        self._draw()

    @property
    def rate(self) -> float | None:
        """Smoothed units per second (None before the first update)."""
        return self._rate

    def eta(self) -> float:
        """Seconds left (nan before the rate is known)."""
        if not self._rate:
            return float("nan")
        return max(self.total - self.n, 0) / self._rate

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join(timeout=2)
        stop = sys.exc_info()[1]
        interrupted = isinstance(stop, KeyboardInterrupt)  # Ctrl-C, or SIGTERM / SIGHUP (interrupt.Stopped)
        self._draw(force=True, final=True)
        if self.tty:
            self.stream.write("\n")
            with contextlib.suppress(ValueError):
                _DRAWN.remove(self)
        if interrupted and self.resume_hint and not _HINT_LEFT_TO_CALLER.get():
            from .interrupt import signal_of, stopped_by

            said = "stopped by Ctrl-C" if signal_of(stop) == signal.SIGINT else stopped_by(stop)
            self.stream.write(f"tomoseg: {said}. {self.resume_hint}\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------- drawing
    def line(self) -> str:
        """The status text: what, how far, how fast, how long ("nothing to do" for a stage of no work: a label
        image too small for a pyramid printed "100% (0 vox of 0 vox), starting")."""
        elapsed = time.monotonic() - self.start
        if not self.total and not self.n:
            return f"{self.desc + ': ' if self.desc else ''}nothing to do"
        pct = 100.0 * self.n / self.total if self.total else 100.0
        rate = self._rate
        if self.total and self.n >= self.total and elapsed > 0:
            rate = (self.n - self.skipped) / elapsed or None  # finished: the mean rate of the run
        speed = f"{format_count(rate, self.unit)}/s" if rate else "starting"
        left = self.eta()
        when = "" if left != left else f", {format_duration(left)} left"
        if self.n >= self.total and self.total:
            when = ""
        desc = self.desc
        if self.resumed is not None:
            desc += f"{' ' if desc else ''}(resumed: {_percent(self.resumed)} done before)"
        return (f"{desc + ': ' if desc else ''}{pct:3.0f}% ({format_count(self.n, self.unit)} of "
                f"{format_count(self.total, self.unit)}), {speed}, {format_duration(elapsed)} elapsed{when}")

    def _draw(self, *, force: bool = False, final: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if self.tty:
                if not force and now - self._last_draw < 0.2:
                    return
                self._last_draw = now
                text = self._bar() + " " + self.line()
                pad = max(0, self._width - len(text))
                self._width = len(text)
                self.stream.write("\r" + text + " " * pad)
                self.stream.flush()
                return
            done = self.n >= self.total > 0
            if not (force and final) and not done and now - self._last_print < self.interval:
                return
            if done and self._last_print == float("inf"):
                return  # the 100 % line was printed already
            self._last_print = float("inf") if done else now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def _bar(self, width: int = 20) -> str:
        frac = min(1.0, self.n / self.total) if self.total else 1.0
        full = int(frac * width)
        return "|" + "#" * full + "-" * (width - full) + "|"

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw(force=True)


def _percent(fraction: float) -> str:
    """``37%``; never ``0%`` for some work nor ``100%`` for not all of it."""
    pct = 100.0 * fraction
    if 0 < pct < 1:
        return "<1%"
    if 99 < pct < 100:
        return ">99%"
    return f"{pct:.0f}%"


class Stage:
    """One stage of a longer bar (one volume's pass, say) that may have to start over: a volume read again
    under a revised reading (:mod:`tomoseg.objects.reading`). Its ``reset`` does not restart the whole bar at
    0 %: the voxels the stage had counted are added to the bar's total as work to do again, and the bar's
    description says what is redone (``again``) until :meth:`finish`. Any bar with ``update`` works; ``total``
    and ``desc`` (:class:`Progress`, tqdm) are used where it has them.

    Examples
    --------
    >>> import io
    >>> bar = Progress(300, desc="track", stream=io.StringIO(), interval=0)
    >>> stage = Stage(bar, again="reading b.tif again")
    >>> stage.update(50); stage.reset(); stage.update(100); stage.finish()
    >>> bar.n, bar.total, bar.desc
    (150, 350, 'track')
    """

    def __init__(self, bar, *, again: str):
        self.bar, self.again, self.n = bar, again, 0
        self._desc = getattr(bar, "desc", None)

    # a bar itself (``total``, ``desc``, ``set_description`` of the bar under it): stages nest, one within a
    # caller's stage (a labelling read again within an evaluation read again), all on the one bar
    @property
    def total(self):
        return getattr(self.bar, "total", None)

    @total.setter
    def total(self, value) -> None:
        self.bar.total = value

    @property
    def desc(self):
        return getattr(self.bar, "desc", None)

    def set_description(self, desc: str, **kwargs) -> None:
        if hasattr(self.bar, "set_description"):
            self._describe(desc)

    def update(self, n: int) -> None:
        self.n += int(n)
        self.bar.update(n)

    def reset(self, *args, **kwargs) -> None:
        redo, self.n = self.n, 0
        if not redo:  # nothing counted yet: nothing to say
            return
        if getattr(self.bar, "total", None) is not None:
            self.bar.total += redo
        if self._desc is not None and hasattr(self.bar, "set_description"):
            self._describe(f"{self._desc} ({self.again})")

    def finish(self) -> None:
        """The stage is done: the bar's description as it was."""
        if self._desc is not None and getattr(self.bar, "desc", None) != self._desc:
            self._describe(self._desc)

    def _describe(self, desc: str) -> None:
        if isinstance(self.bar, Progress):  # in a log too: a line when the volume is read again, and when done
            self.bar.set_description(desc, log_line=True)
        else:
            self.bar.set_description(desc)


def progress_bar(enabled: bool, total: int, *, desc: str = "", resume_hint: str | None = None):
    """A :class:`Progress` on stderr, or None when progress is off (``-q``)."""
    if not enabled:
        return None
    return Progress(total, desc=desc, resume_hint=resume_hint)


def progress_while(enabled: bool, total: int, *, desc: str = ""):
    """:func:`progress_bar` for a ``with`` block: the bar, closed when the block ends, or None (``-q``)."""
    return progress_bar(enabled, total, desc=desc) or contextlib.nullcontext()
