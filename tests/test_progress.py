import io

import pytest

from tomoseg.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr("tomoseg.progress.time.monotonic", c)
    return c


def test_plain_lines_when_not_a_terminal(clock):
    out = io.StringIO()
    bar = Progress(1000, desc="segment", stream=out, interval=10)
    for _ in range(100):  # one update a second, 10 vox each
        clock.t += 1
        bar.update(10)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 10 <= len(lines) <= 12  # one line per 10 s, not one per update
    assert lines[-1].startswith("segment: 100% (1 kvox of 1 kvox), 10 vox/s")


def test_time_left_settles(clock):
    bar = Progress(10_000, stream=io.StringIO(), interval=1e9)
    etas = []
    for i in range(60):  # a steady 100 vox/s with one slow second
        clock.t += 1
        bar.update(20 if i == 30 else 100)
        etas.append(bar.eta())
    # after a few updates the time left is within 10 % of the truth, even after the hiccup
    for i in (5, 29, 35, 59):
        truth = (10_000 - bar_done(i)) / 100
        assert etas[i] == pytest.approx(truth, rel=0.1)
    assert 95 < bar.rate < 105
    bar.close()


def bar_done(i):
    return 100 * (i + 1) - (80 if i >= 30 else 0)


def test_terminal_redraws_one_line():
    out = io.StringIO()
    with Progress(100, desc="x", stream=out, tty=True) as bar:
        bar.update(100)
    assert out.getvalue().count("\n") == 1
    assert "\r" in out.getvalue() and "100%" in out.getvalue()


def test_ctrl_c_says_how_to_resume():
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(100, stream=out, interval=0, resume_hint="run again with --resume"):
            raise KeyboardInterrupt
    assert "Ctrl-C. run again with --resume" in out.getvalue()


def test_durations_do_not_flicker():
    assert format_duration(8.4) == "8 s"
    assert format_duration(131) == "2 min 10 s"
    assert format_duration(3 * 3600 + 300) == "3 h 05 min"


def test_a_bar_that_starts_with_a_zero_update_reports_the_true_rate_at_the_end():
    import io
    import time

    from tomoseg.progress import Progress

    stream = io.StringIO()
    bar = Progress(total=1_000_000, unit="vox", stream=stream)
    bar.update(0)  # the engine's catch-up update for tiles already done
    time.sleep(0.2)
    bar.update(1_000_000)
    rate = 1_000_000 / (time.monotonic() - bar.start)
    text = bar.line()
    bar.close()
    shown = float(text.split(", ")[1].split(" ")[0])  # e.g. "4.9 Mvox/s"
    assert "Mvox/s" in text and abs(shown - rate / 1e6) / (rate / 1e6) < 0.3


def test_skipped_work_moves_the_bar_but_not_its_rate_or_time_left(clock):
    """Review K5: tiles already done (a resume) or outside the sample were counted as work done in no time:
    hundreds of Mvox/s and "0 s left" for the whole run."""
    out = io.StringIO()
    bar = Progress(10_000, desc="segment", stream=out, interval=0)
    clock.t += 0.001
    bar.skip(6_000)  # done by the interrupted run
    assert bar.n == 6_000 and bar.rate is None
    assert "left" not in bar.line() and "starting" in bar.line()  # no time left before real work is seen
    for _ in range(10):  # then a steady 100 vox/s
        clock.t += 1
        bar.update(100)
    assert bar.rate == pytest.approx(100, rel=0.05)
    assert bar.eta() == pytest.approx(3_000 / 100, rel=0.05)
    for _ in range(30):
        clock.t += 1
        bar.update(100)
    assert bar.line().startswith("segment: 100% (10 kvox of 10 kvox), 100 vox/s")
    bar.close()


def test_a_note_during_a_terminal_bar_gets_a_line_of_its_own():
    """A note printed while a bar is drawn landed inside the bar's line ("|####---| segment: 40% ...tomoseg: note:
    ..."), and the bar's next redraw wrote over it: the bar's line is cleared, the note written, the bar redrawn."""
    import io

    from tomoseg.progress import print_line

    out = io.StringIO()
    bar = Progress(100, desc="segment", stream=out, tty=True)
    bar.update(40)
    print_line("tomoseg: note: something", out)
    bar.update(10)
    bar.close()
    print_line("tomoseg: note: after", out)
    lines = out.getvalue().split("\n")
    assert [line.split("\r")[-1] for line in lines[:1]] == ["tomoseg: note: something"]
    assert lines[0].split("\r")[-2].strip() == ""  # the bar's text cleared before the note
    assert "segment:  50%" in lines[1] and lines[2:] == ["tomoseg: note: after", ""]


def test_a_resumed_run_says_so_at_once_and_how_much_was_done_before(clock):
    """Review C12: a resumed run's log began with "0%" and its next line came 30 s later; now the line after the
    skip says it resumed and what was done before, at once, and every line after says it too."""
    out = io.StringIO()
    bar = Progress(1000, desc="segment", stream=out, interval=30)
    clock.t += 1
    bar.skip(370, resumed=True)
    clock.t += 31
    bar.update(630)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("segment (resumed: 37% done before):  37% (370 vox of 1 kvox), starting"), lines
    assert lines[-1].startswith("segment (resumed: 37% done before): 100% (1 kvox of 1 kvox), 20 vox/s"), lines
    assert len(lines) == 2


def test_a_stop_by_sigterm_is_named_by_the_bar():
    from tomoseg.interrupt import Stopped

    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(100, stream=out, resume_hint="Run again with --resume."):
            raise Stopped(15)
    assert "tomoseg: stopped by SIGTERM (a job time limit, or kill?). Run again with --resume." in out.getvalue()


def test_one_step_is_singular():
    from tomoseg.progress import format_count

    assert [format_count(n, "steps") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert format_count(1, "vox") == "1 vox" and format_count(1500, "vox") == "1.5 kvox"


def test_a_stage_with_no_work_says_so(clock):
    """A label image too small for a pyramid reset its bar to a stage of 0 voxels, which ended with
    "label image pyramid: 100% (0 vox of 0 vox), starting, 0 s elapsed"."""
    out = io.StringIO()
    bar = Progress(10, desc="label image", stream=out, interval=10)
    bar.update(10)
    bar.reset(total=0, desc="label image pyramid")
    bar.close()
    assert out.getvalue().splitlines()[-1] == "label image pyramid: nothing to do"
