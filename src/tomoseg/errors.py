"""The exception type for mistakes a user can fix, and the warning for results that may mislead.

The CLI turns a :class:`TomosegError` into a one-line message and exit code 1;
every other exception is a bug and keeps its traceback. A
:class:`TomosegWarning` is printed once as ``tomoseg: warning: ...`` by the CLI
and is an ordinary Python warning for API users.
"""

import warnings


class TomosegError(Exception):
    """A problem with the user's input: the message says what to do."""


class TomosegWarning(UserWarning):
    """The run goes on, but the result may be wrong or misleading: the message says why and what to do."""


def warn(message: str) -> None:
    """Emit a :class:`TomosegWarning` attributed to the caller of the public function."""
    warnings.warn(message, TomosegWarning, stacklevel=3)
