"""The ``tomoseg`` command: a thin adapter over the Python API, one sub-command per verb.

User errors (:class:`~tomoseg.errors.TomosegError`) print one line and exit 1;
bad usage exits 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings

from .._version import __version__
from ..errors import TomosegError, TomosegNote, TomosegWarning
from .. import interrupt
from ..progress import resume_hint_left_to_caller

from .registry import COMMANDS as _COMMANDS


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="tomoseg", description="Find and measure precipitates and pores in 3D X-ray tomograms.")
    parser.add_argument("--version", action="version", version=f"tomoseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, build in _COMMANDS.values():
        build(sub)
    return parser


def _load_commands() -> None:
    """Sub-commands live in modules by topic and register themselves on import."""
    from . import ablation, analysis, data, segment, track, train  # noqa: F401


def _printable_anywhere() -> None:
    """Messages hold µ, × and dashes: on a terminal whose encoding lacks them (an ASCII locale, Windows' cp1252)
    they are escaped instead of ending the run in a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if "utf" not in str(getattr(stream, "encoding", "") or "").lower() and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured (closed, replaced)
                pass


def main(argv: list[str] | None = None) -> int:
    _printable_anywhere()
    parser = build_parser()
    program = argv is None  # the process's own command line: tomoseg as a program, about to exit
    argv = list(sys.argv[1:] if argv is None else argv)
    # global flags may come after the sub-command too
    debug = "--debug" in argv
    quiet = "-q" in argv or "--quiet" in argv
    argv = [a for a in argv if a not in ("--debug", "-q", "--quiet")]
    args = parser.parse_args(argv)
    args.debug, args.quiet = debug, quiet
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            # tomoseg's warnings: printed once each as one line, never turned into errors
            warnings.simplefilter("default", TomosegWarning)
            warnings.simplefilter("default", TomosegNote)
            warnings.showwarning = _show_warning
            check_environment()
            # a KeyboardInterrupt swallowed on the way is raised again (interrupt.py); the resume hint is said once,
            # below, not also by the progress bar that Ctrl-C closed. SIGTERM (a job's time limit) and SIGHUP (a
            # closed terminal) end the run as Ctrl-C does; run as the program (argv None), a signal after the
            # command ended no longer makes it a death by signal or a traceback at exit (interrupt.py)
            with interrupt.catching_ctrl_c(until_exit=program), resume_hint_left_to_caller():
                code = int(args.run(args) or 0)
                interrupt.finished()
                return code
    except TomosegError as exc:
        if debug:
            raise
        print(f"tomoseg: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (interrupt.Stopped): 128 + the signal
        with contextlib.suppress(OSError, ValueError):  # SIGHUP: the terminal may be gone
            print(f"tomoseg: {interrupt.stopped_by(exc)}{_resume_hint(args)}", file=sys.stderr)
        return interrupt.exit_code(exc)
    except BrokenPipeError:  # the reader of our output closed it (tomoseg info ... | head): not an error to show
        _quiet_stdout()
        return 141  # as a process killed by SIGPIPE reports it (128 + 13), so `set -o pipefail` still sees it
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        print(f"tomoseg: error: {_system_error(exc, args)} (run with --debug for details)", file=sys.stderr)
        return 1


def _quiet_stdout() -> None:
    """Standard output pointed at the null device, so that Python's flush at exit does not fail on the closed
    pipe again ("Exception ignored ... BrokenPipeError")."""
    import os

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (pytest's capture): nothing to flush
        pass


_RESUMABLE = {"segment": "the same command with --resume continues where it stopped",
              "train": "the same command with --resume continues from the last finished epoch"}


def _resume_hint(args) -> str:
    hint = _RESUMABLE.get(getattr(args, "command", None))
    if getattr(args, "command", None) == "train" and not getattr(args, "resumable", True):
        hint = ("no epoch had finished, so there is nothing to resume: the same command (without --resume) starts "
                "again")
    if getattr(args, "command", None) == "track" and getattr(args, "before_labels", None) is None:
        hint = ("the same command with --resume keeps the finished probability maps in the output folder and "
                "continues a segmentation cut short")
    if getattr(args, "command", None) == "segment" and getattr(args, "stage", None) == "labels":
        threshold = "" if args.threshold == 127 else f" --threshold {args.threshold}"
        hint = (f"the probability map {args.output} is complete; write its label image with: tomoseg analyze "
                f"{args.output}{threshold} --labels {args.labels}")
    return f"; {hint}" if hint else ""


_MORE_MEMORY = "or run on a machine with more memory (or with fewer other programs running)"
_MEMORY_ADVICE = {
    "segment": f"use a smaller --tile-size, {_MORE_MEMORY}",
    "train": f"use a smaller sampling.patch_size or sampling.batch_size in the config, {_MORE_MEMORY}",
    "analyze": f"its memory grows with the number of objects (docs/analysis.md, Memory); {_MORE_MEMORY}",
    "evaluate": f"its memory grows with the number of objects (docs/analysis.md, Memory); {_MORE_MEMORY}",
    "track": f"its memory grows with the number of objects (docs/tracking.md, Limits); {_MORE_MEMORY}",
}


def _memory_advice(args) -> str:
    """What a command that ran out of memory can do about it: only options that command has."""
    command = getattr(args, "command", None)
    advice = _MEMORY_ADVICE.get(command, _MORE_MEMORY.removeprefix("or "))
    if command == "track" and getattr(args, "before_labels", None) is None:
        advice = ("segment the scans first (tomoseg segment, with a smaller --tile-size) and give them as "
                  f"--before-labels and --after-labels, {_MORE_MEMORY}")
    return advice


# the options naming what a command writes, for a write error that names no file
_OUTPUT_OPTIONS = (("output", None), ("image", None), ("mask", "--mask"), ("labels", "--labels"),
                   ("ome_zarr", "--ome-zarr"), ("csv", "--csv"), ("out", "--out"), ("objects", "--objects"))


def _written_by(args) -> str:
    """Where the command writes (``prob.tif, --mask m.h5:/mask``), for a message about a failed write."""
    if getattr(args, "command", None) in ("evaluate", "track", "analyze", "segment", "phantom"):
        named = [f"{opt} {value}" if opt else str(value) for attr, opt in _OUTPUT_OPTIONS
                 if isinstance(value := getattr(args, attr, None), (str, os.PathLike))]
        # evaluate's positional "labels" is an input, not an output
        named = [n for n in named if not (args.command == "evaluate" and n.startswith("--labels"))]
        return ", ".join(named)
    return ""


def _system_error(exc: BaseException, args) -> str:
    """A system error in one line: what happened, to which file (the error's, else the command's outputs),
    what to do, and where the run can be continued, how."""
    if isinstance(exc, MemoryError):
        return f"out of memory; {_memory_advice(args)}"
    code = getattr(exc, "errno", None)
    if code not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        return str(exc)
    named = getattr(exc, "filename", None)
    outputs = _written_by(args) if not named else ""
    where = f" writing {named}" if named else f" while writing an output ({outputs})" if outputs else ""
    if code == errno.EFBIG:
        what = (f"a file grew past the largest size allowed{where} (the limit on file size of this shell or job: "
                "ulimit -f; or the file system's: FAT32 holds 4 GiB at most); raise the limit or write to another "
                "disk, and run again")
    elif code == errno.EROFS:
        what = f"the file system is read-only{where}; write to a folder on a writable disk, and run again"
    else:
        what = f"the disk is full{where}; no finished output was put in place. Free space and run again"
    return what + _resume_hint(args)


def one_line(text: str) -> str:
    """A message on one line (parsers' messages may span several)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings and notes on stderr, each on a line of its own above a progress bar being drawn."""
    from ..progress import print_line

    if issubclass(category, TomosegWarning):
        print_line(f"tomoseg: warning: {one_line(str(message))}")
    elif issubclass(category, TomosegNote):
        print_line(f"tomoseg: note: {one_line(str(message))}")
    else:
        print_line(warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n"))


def check_environment() -> None:
    """Settings from the environment, checked before any work."""
    threads = os.environ.get("TOMOSEG_THREADS")
    if threads not in (None, ""):
        try:
            ok = int(threads) >= 1
        except ValueError:
            ok = False
        if not ok:
            raise TomosegError(f"TOMOSEG_THREADS={threads!r}: give a positive whole number of threads, "
                               "or unset it")


def progress_enabled(args) -> bool:
    off = os.environ.get("TOMOSEG_NO_PROGRESS", "").strip().lower() not in ("", "0", "false", "no", "off")
    return not getattr(args, "quiet", False) and not off
