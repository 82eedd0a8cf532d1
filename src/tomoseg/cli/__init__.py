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
from ..errors import TomosegError, TomosegNote, TomosegWarning, recording_said
from .. import interrupt
from ..progress import resume_hint_left_to_caller

from .registry import COMMANDS as _COMMANDS


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="tomoseg", description="Find and measure precipitates and pores in 3D X-ray tomograms.",
        allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"tomoseg {__version__}")
    _global_flags(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, build in _COMMANDS.values():
        build(sub)
    for p in sub.choices.values():
        # an option written in part (--tile for --tile-size, --deb for --debug) is an error with a suggestion
        # (main), not taken for the whole or, for the global flags, dropped
        p.allow_abbrev = False
        p.formatter_class = DefaultsHelpFormatter
        _global_flags(p, default=argparse.SUPPRESS)
    parser.subcommands = sub.choices  # main: a typo is explained with its sub-command's usage
    return parser


def _global_flags(p: argparse.ArgumentParser, default) -> None:
    """``--debug`` and ``-q``, before or after the sub-command: in each sub-command's help too. A sub-command
    gives them with ``default=SUPPRESS``, so that it sets them only where given, never back to False."""
    group = p.add_argument_group("global options") if default is argparse.SUPPRESS else p
    group.add_argument("--debug", action="store_true", default=default,
                       help="show the traceback of an error (for a bug report)")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no progress bars (only the summary line on stdout)")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Each option's default said in its help, where the help does not say it already."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS) or action.const is not None
                or not action.option_strings or default == []):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


def _load_commands() -> None:
    """Sub-commands live in modules by topic and register themselves on import."""
    from . import ablation, analysis, data, segment, track, train  # noqa: F401


# what an ASCII (or Latin-1) stream gets for the characters tomoseg's messages hold
_ASCII_FOR = {"×": "x", "µ": "u", "μ": "u", "±": "+/-", "–": "-", "—": "-", "…": "...", "≥": ">=", "≤": "<=",
              "²": "^2", "³": "^3", "°": " deg", "→": "->", "≈": "~", "’": "'", "‘": "'", "“": '"', "”": '"',
              "█": "#", "▏": "|", "▎": "|", "▍": "|", "▌": "|", "▋": "|", "▊": "|", "▉": "|"}


def _readable(exc):
    """Encoding error handler ``tomoseg-readable``: ``×`` as ``x``, ``µ`` as ``u`` ..., anything else as a
    backslash escape; so a message stays readable (``32 x 128 x 128``, not ``32 \\xd7 128``)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    return "".join(_ASCII_FOR.get(ch, ch.encode("ascii", "backslashreplace").decode("ascii")) for ch in text), \
        exc.end


def _printable_anywhere() -> None:
    """Messages hold µ, × and dashes: on a terminal whose encoding lacks them (an ASCII locale, Windows' cp1252)
    they are written as x, u, - (else escaped) instead of ending the run in a UnicodeEncodeError."""
    import codecs

    try:
        codecs.lookup_error("tomoseg-readable")
    except LookupError:
        codecs.register_error("tomoseg-readable", _readable)
    for stream in (sys.stdout, sys.stderr):
        if "utf" not in str(getattr(stream, "encoding", "") or "").lower() and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="tomoseg-readable")
            except (ValueError, OSError):  # a stream that cannot be reconfigured (closed, replaced)
                pass


def _quiet_third_parties() -> None:
    """Where the home folder cannot be written (a read-only HOME on a cluster node), matplotlib would say so in
    two lines on every run, and OpenVINO's telemetry in six: matplotlib gets a temporary config folder
    (MPLCONFIGDIR, removed at exit) and the telemetry's complaints are dropped. Nothing changes where HOME is
    writable, or where the user set MPLCONFIGDIR."""
    import logging
    from pathlib import Path

    home = Path(os.path.expanduser("~"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    if _writable(config / "matplotlib") and _writable(home):
        return
    if not os.environ.get("MPLCONFIGDIR"):
        import atexit
        import shutil
        import tempfile

        try:
            folder = tempfile.mkdtemp(prefix="tomoseg-matplotlib-")
        except OSError:
            folder = None
        if folder:
            os.environ["MPLCONFIGDIR"] = folder
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
    root = logging.getLogger()
    if not any(isinstance(f, _NoTelemetryNoise) for f in root.filters):
        root.addFilter(_NoTelemetryNoise())


def _writable(path) -> bool:
    """Whether ``path`` can be written, or made: its nearest existing folder is writable."""
    for p in (path, *path.parents):
        if p.exists():
            return p.is_dir() and os.access(p, os.W_OK | os.X_OK)
    return False


class _NoTelemetryNoise:
    """Drops the log records of OpenVINO's telemetry (it cannot store its client ID in a read-only HOME)."""

    def filter(self, record) -> bool:
        return "openvino_telemetry" not in str(getattr(record, "pathname", ""))


def main(argv: list[str] | None = None) -> int:
    _printable_anywhere()
    parser = build_parser()
    program = argv is None  # the process's own command line: tomoseg as a program, about to exit
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unrecognized(parser, args, unknown)
    debug = args.debug
    _expand_home(args)
    _quiet_third_parties()
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
            # the notes and warnings said are also kept for the run's records (errors.recording_said)
            with interrupt.catching_ctrl_c(until_exit=program), resume_hint_left_to_caller(), recording_said():
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


def _unrecognized(parser, args, unknown: list) -> None:
    """Arguments no parser took: the error (exit 2) with the sub-command's usage, and for a misspelt or
    shortened option the option meant ("did you mean --tile-size?")."""
    import difflib

    target = parser.subcommands.get(getattr(args, "command", None), parser)
    known = [o for action in target._actions for o in action.option_strings if o.startswith("--")]
    message = f"unrecognized arguments: {' '.join(unknown)}"
    for arg in unknown:
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        whole = [o for o in known if o.startswith(name)]
        close = whole if len(whole) == 1 else difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            message += (f"; did you mean {close[0]}?"
                        + (" (options are written in full)" if close[0].startswith(name) else ""))
            break
    target.error(message)


def _expand_home(args) -> None:
    """``~`` at the start of a path given in quotes (a script, a SLURM file), which no shell expanded: as the
    shell would have. Every string argument is looked at, in this one place; a leading ``~`` means the home
    folder in any path, and the other strings (a title, a device name) do not start with one."""
    for name, value in vars(args).items():
        if name in ("title", "set", "command"):
            continue
        if isinstance(value, str) and value.startswith("~"):
            setattr(args, name, os.path.expanduser(value))
        elif isinstance(value, list) and any(isinstance(v, str) and v.startswith("~") for v in value):
            setattr(args, name, [os.path.expanduser(v) if isinstance(v, str) else v for v in value])


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
    if getattr(args, "command", None) == "segment" and getattr(args, "stage", None) != "labels" \
            and not _work_folder_left(args):
        hint = "nothing was kept to resume from: the same command (without --resume) starts again"
    if getattr(args, "command", None) == "segment" and getattr(args, "stage", None) == "labels":
        threshold = "" if args.threshold == 127 else f" --threshold {args.threshold}"
        hint = (f"the probability map {args.output} is complete; write its label image with: tomoseg analyze "
                f"{args.output}{threshold} --labels {args.labels}")
    return f"; {hint}" if hint else ""


def _work_folder_left(args) -> bool:
    """Whether segment's run left its work folder (finished tiles to resume from): a run stopped before making
    it, or whose making failed (removed: a disk full while setting it up), has none."""
    try:
        from ..inference.engine import work_dir_for

        return work_dir_for(args.output).exists()
    except Exception:  # noqa: BLE001 - an output path that does not even parse: say the usual hint
        return True


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
