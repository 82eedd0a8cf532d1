"""The ``tomoseg`` command: a thin adapter over the Python API, one sub-command per verb.

User errors (:class:`~tomoseg.errors.TomosegError`) print one line and exit 1;
bad usage exits 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..errors import TomosegError

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
        return int(args.run(args) or 0)
    except TomosegError as exc:
        if debug:
            raise
        print(f"tomoseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tomoseg: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        print(f"tomoseg: error: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def progress_enabled(args) -> bool:
    return not getattr(args, "quiet", False) and os.environ.get("TOMOSEG_NO_PROGRESS") != "1"
