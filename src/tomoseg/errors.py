"""The exception type for mistakes a user can fix, and the warning for results that may mislead.

The CLI turns a :class:`TomosegError` into a one-line message and exit code 1;
every other exception is a bug and keeps its traceback. A
:class:`TomosegWarning` is printed once as ``tomoseg: warning: ...`` by the CLI
and is an ordinary Python warning for API users; a :class:`TomosegNote` likewise
as ``tomoseg: note: ...``.
"""

import warnings


class TomosegError(Exception):
    """A problem with the user's input: the message says what to do."""


class TomosegWarning(UserWarning):
    """The run goes on, but the result may be wrong or misleading: the message says why and what to do."""


def checked_options(options, kind: type, name: str = "options"):
    """``options`` of a public function: ``kind()`` where None, else as given, an options dataclass (a dict or
    another object is refused, naming how to build a ``kind``)."""
    from dataclasses import is_dataclass

    if options is None:
        return kind()
    if not is_dataclass(options) or isinstance(options, type):  # (a test may stand a factory in for the class)
        shown = f"{kind.__name__}(**{name})" if isinstance(options, dict) else f"{kind.__name__}(...)"
        raise TomosegError(f"{name}: give a {kind.__name__}, not a {type(options).__name__} ({shown})")
    return options


class TomosegNote(UserWarning):
    """What the run assumed or changed, for the record (a voxel size unknown, a tile size rounded up, voxels
    without data): printed by the CLI as ``tomoseg: note: ...``; in library use an ordinary Python warning, so
    ``warnings.filterwarnings("ignore", category=tomoseg.errors.TomosegNote)`` silences it."""


def note(message: str) -> None:
    """Emit a :class:`TomosegNote` attributed to the caller of the public function."""
    warnings.warn(message, TomosegNote, stacklevel=3)


def warn(message: str) -> None:
    """Emit a :class:`TomosegWarning` attributed to the caller of the public function."""
    warnings.warn(message, TomosegWarning, stacklevel=3)
