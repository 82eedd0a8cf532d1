"""The one exception type for mistakes a user can fix.

The CLI turns a :class:`TomosegError` into a one-line message and exit code 1;
every other exception is a bug and keeps its traceback.
"""


class TomosegError(Exception):
    """A problem with the user's input: the message says what to do."""
