"""The exception type for mistakes a user can fix, and the warning for results that may mislead.

The CLI turns a :class:`TomosegError` into a one-line message and exit code 1;
every other exception is a bug and keeps its traceback. A
:class:`TomosegWarning` is printed once as ``tomoseg: warning: ...`` by the CLI
and is an ordinary Python warning for API users; a :class:`TomosegNote` likewise
as ``tomoseg: note: ...``.
"""

import contextlib
import contextvars
import threading
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
    """Emit a :class:`TomosegNote` attributed to the caller of the public function (kept for the run's record
    within :func:`recording_said`)."""
    _keep(f"note: {message}")
    warnings.warn(message, TomosegNote, stacklevel=3)


def warn(message: str) -> None:
    """Emit a :class:`TomosegWarning` attributed to the caller of the public function (kept for the run's record
    within :func:`recording_said`)."""
    _keep(f"warning: {message}")
    warnings.warn(message, TomosegWarning, stacklevel=3)


# what the run said (notes and warnings), for its record: a list while recording_said is active
_SAID: contextvars.ContextVar = contextvars.ContextVar("tomoseg_said", default=None)


@contextlib.contextmanager
def recording_said():
    """Within this block the notes and warnings tomoseg gives are also kept, once each and in order, so that a
    run's record (segment's provenance, analyze's summary.json, ...) lists what the run assumed: a z spacing a
    reader took for granted, an empty map, a voxel size unknown. A block within another shares its list. Kept on
    the thread that opened the block and on the worker threads of tomoseg's pools (:mod:`tomoseg.thread_pool`),
    which run their tasks in the context of the thread that submits them."""
    said_so_far = _SAID.get()
    if said_so_far is not None:
        yield said_so_far
        return
    token = _SAID.set([])
    try:
        yield _SAID.get()
    finally:
        _SAID.reset(token)


def recording(function):
    """``function`` run within :func:`recording_said` (a public function whose record lists what it said)."""
    import functools

    @functools.wraps(function)
    def run(*args, **kwargs):
        with recording_said():
            return function(*args, **kwargs)

    return run


def said() -> list:
    """The notes and warnings given so far within :func:`recording_said` ("note: ...", "warning: ..."; [] outside
    it), each on one line."""
    return list(_SAID.get() or [])


_KEEPING = threading.Lock()  # worker threads of one run keep into the same list (thread_pool.ThreadPool)


def _keep(message: str) -> None:
    kept = _SAID.get()
    message = " ".join(message.split())
    if kept is not None:
        with _KEEPING:
            if message not in kept:
                kept.append(message)


# the extra of tomoseg that brings each optional package (pyproject.toml, [project.optional-dependencies])
EXTRAS = {"onnx": "onnx", "openvino": "openvino", "hdf5plugin": "hdf5", "imagecodecs": "codecs",
          "scikit-learn": "ablation", "napari": "napari"}


def install_hint(package: str) -> str:
    """How to install ``package``, in one style: the extra of tomoseg that brings it (``pip install
    'tomoseg[onnx]'``), or the package itself where no extra does (a dependency missing from this
    environment, or one for some Python versions only)."""
    extra = EXTRAS.get(package)
    return f"pip install 'tomoseg[{extra}]'" if extra else f"pip install {package}"


def needs_package(what: str, package: str, then: str = "") -> TomosegError:
    """The error for a missing optional package: "``what`` needs the ``package`` package: pip install
    'tomoseg[extra]'", and ``then`` (an alternative, a limit) after it.

    >>> str(needs_package("export-onnx", "onnx"))
    "export-onnx needs the onnx package: pip install 'tomoseg[onnx]'"
    """
    return TomosegError(f"{what} needs the {package} package: {install_hint(package)}" + (f"; {then}" if then else ""))


def have_module(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
