"""Room for an output, checked before the work: the folder writable, the disk's free space, the file-size limit
(``ulimit -f``), and space reserved ahead of a long write (:func:`reserve`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import TomosegError

# sizes that a write must be able to hold in addition to the data (headers, metadata)
_SLACK_BYTES = 1 << 20


def check_writable_folder(folder: Path, what: str = "output") -> None:
    """Refuse a folder that does not exist or where files cannot be created."""
    if not folder.exists():
        if str(folder).startswith("~"):  # (the CLI expands it; a path from a script or config may not be)
            raise TomosegError(f"{folder}: {what} folder does not exist; '~' is not expanded inside quotes: write "
                               "$HOME/... or an absolute path")
        raise TomosegError(f"{folder}: {what} folder does not exist; create it first")
    if not folder.is_dir():
        raise TomosegError(f"{folder}: is not a folder; choose another {what} path")
    probe = folder / f".tomoseg-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TomosegError(f"{folder}: cannot write here ({exc.strerror or exc}); choose a writable "
                           f"{what} folder") from None


def in_temporary_folder(path) -> bool:
    """Whether ``path`` lies in the temporary folder (``TMPDIR``, else /tmp), where tomoseg stages its work."""
    import tempfile

    try:
        tmp = Path(tempfile.gettempdir()).resolve()
        return tmp in (Path(path).resolve(), *Path(path).resolve().parents)
    except OSError:
        return False


def temporary_folder_advice() -> str:
    """What to do when the temporary folder is too small: name it, and TMPDIR, which moves it."""
    import tempfile

    return (f"the temporary folder {tempfile.gettempdir()}: point TMPDIR at a folder with more free space "
            "(e.g. TMPDIR=/scratch/$USER tomoseg ...; on a cluster node often the job's own scratch)")


def make_temporary_folder(prefix: str, dir=None) -> Path:
    """A new folder for work staged on disk (``tempfile.mkdtemp``, in ``dir`` or the temporary folder): the one
    place tomoseg makes them, so that a temporary folder that is full or not writable is said naming TMPDIR."""
    import tempfile

    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    except OSError as exc:
        where = temporary_folder_advice() if dir is None or in_temporary_folder(dir) else f"{dir}: fix the folder"
        raise TomosegError(f"cannot make a temporary folder ({exc.strerror or exc}); use {where}") from None


UNCOMPRESSED = ("tiff", "tiff-folder", "nrrd", "pyhst-vol", "npy")


def output_bytes(shape, dtype) -> int:
    return int(np.prod([int(s) for s in shape], dtype=np.int64)) * np.dtype(dtype).itemsize


def free_bytes(folder: Path) -> int | None:
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:
        return None


def human_size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.1f} KiB"


def check_free_space(folder, needed: int, *, what: str = "the output") -> None:
    """Refuse when the file system of ``folder`` has less than ``needed`` bytes (plus a margin) free."""
    folder = Path(folder)
    free = free_bytes(folder if folder.exists() else Path("."))
    if free is not None and free < needed + _SLACK_BYTES:
        raise TomosegError(f"{folder}: {what} needs {human_size(needed)} but only {human_size(free)} are free on "
                           "this disk; free space or choose another output folder")


def file_size_limit() -> int | None:
    """The largest file this process may write (``ulimit -f``, RLIMIT_FSIZE), in bytes; None where unlimited."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY or soft < 0 else int(soft)


def check_file_size_limit(path, nbytes: int, *, what: str = "the output") -> None:
    """Refuse a file that would grow past this process's limit on file size (``ulimit -f``): the write would
    fail half-way (EFBIG; HDF5 copying a dataset may even abort the process)."""
    limit = file_size_limit()
    if limit is not None and nbytes > limit:
        raise TomosegError(f"{path}: {what} needs a file of {human_size(nbytes)}, past the limit on file size set "
                           f"for this shell or job ({human_size(limit)}, ulimit -f); raise it (ulimit -f unlimited) "
                           "or ask the batch system for more, and run again")


def warn_if_short(folder, nbytes: int, *, what: str, resume: bool = True) -> None:
    """Warn when compressed data (whose size is known only afterwards) may not fit: less free than uncompressed.
    ``resume``: the run can be continued with ``--resume`` (segment's work stores), and the warning says so."""
    from ..errors import warn

    folder = Path(folder)
    free = free_bytes(folder if folder.exists() else Path("."))
    if free is not None and free < nbytes:
        then = "run the same command with --resume" if resume else "run again"
        warn(f"{folder}: {what} take up to {human_size(nbytes)} uncompressed and {human_size(free)} are free on "
             f"this disk; if the disk fills, free space and {then}")


def reserve(path: Path, nbytes: int) -> None:
    """Allocate a memory-mapped file's blocks now, so a full disk fails here with a message, not later with SIGBUS."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, max(int(nbytes), 1))
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise TomosegError(f"{path}: cannot reserve {human_size(nbytes)} for the output ({exc.strerror}); "
                               "free space or choose another output folder") from None
        # file systems without fallocate (EOPNOTSUPP, EINVAL): the free-space check made before has to do
    finally:
        os.close(fd)
