"""The lazily sliced volume that every reader returns, and the writer every format shares.

A :class:`Volume` wraps any array-like that supports NumPy basic slicing
(a memory map, an h5py dataset, a zarr array, a lazy stack of TIFF slices) and
carries the voxel size. ``vol[z0:z1, y0:y1, x0:x1]`` reads only that region.

A :class:`VolumeWriter` writes region by region into a temporary file next to
the target (``NAME.partial``) and renames it when :meth:`VolumeWriter.close`
succeeds, so a crashed run never leaves a file that looks complete.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import TomosegError
from .units import voxel_size_text

VoxelSize = tuple[float, float, float]

PARTIAL_SUFFIX = ".partial"


def check_voxel_size(voxel_size: Any) -> VoxelSize | None:
    """Validate a voxel size (z, y, x) in nm; ``None`` means unknown."""
    if voxel_size is None:
        return None
    try:
        values = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        cubic = f": ({voxel_size!r},) * 3 for cubic voxels" if isinstance(voxel_size, (int, float)) else ""
        raise TomosegError(f"voxel size {voxel_size!r} must be three numbers (z, y, x) in nm{cubic}") from None
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise TomosegError(f"voxel size {voxel_size!r} must be three positive numbers (z, y, x) in nm")
    lo, hi = POSSIBLE_NM
    if not all(lo <= v <= hi for v in values):  # volumes and areas in nm³ would overflow or vanish
        raise TomosegError(f"voxel size {voxel_size_text(values)} is outside {voxel_size_text([lo])} to {voxel_size_text([hi])} "
                           "(a picometre to a metre), so it cannot be a tomogram's; give it in nm (or with a unit: "
                           "0.65um)")
    return values  # type: ignore[return-value]


PLAUSIBLE_NM = (1.0, 1e6)  # X-ray tomography voxels: from about 1 nm (nano-CT) to 1 mm (industrial CT)
POSSIBLE_NM = (1e-3, 1e9)  # outside: a mistake for sure (refused); between the two ranges: a warning


def implausible_message(voxel_size, where) -> str | None:
    if voxel_size is None:
        return None
    lo, hi = PLAUSIBLE_NM
    bad = [v for v in voxel_size if not lo <= v <= hi]
    if not bad:
        return None
    hint = ""
    if bad[0] < lo:
        hint = (f"; if µm were meant, write {' '.join(f'{v:g}um' for v in voxel_size)} (or the nm: "
                f"{' '.join(f'{v * 1000:g}' for v in voxel_size)})")
    return (f"{where}: {voxel_size_text(voxel_size)} is implausible for X-ray tomography (voxels are {lo:g} nm to "
            f"{hi / 1e6:g} mm){hint}; otherwise measurements in nm will be off")


def warn_if_implausible(voxel_size, where) -> bool:
    """Warn where ``voxel_size`` is implausible; whether it did."""
    from ..errors import warn

    message = implausible_message(voxel_size, where)
    if message:
        warn(message)
    return bool(message)


def check_array(value, name: str, *, in_memory: bool = False):
    """A public function's volume argument ``name`` checked before the work: an array-like (a NumPy, zarr, h5py or
    dask array, a :class:`Volume`; a nested list becomes a NumPy array) of three dimensions (z, y, x), not empty,
    of real numbers. ``in_memory``: returned as a NumPy array (a Volume read whole). A path is refused: the
    functions that take one (:func:`~tomoseg.io.read_volume`, ``tomoseg.segment``) are named."""
    if isinstance(value, (str, os.PathLike)):
        raise TomosegError(f"{name}: {str(value)!r} is a path; this function takes an array: tomoseg.read_volume(path) "
                           "reads one (tomoseg.open_volume lazily), tomoseg.segment(path, output) segments a file")
    if isinstance(value, (list, tuple)) or in_memory and not isinstance(value, Volume):
        value = np.asarray(value)
    elif in_memory:
        value = value[:, :, :]
    if not all(hasattr(value, a) for a in ("shape", "dtype", "__getitem__")):
        raise TomosegError(f"{name}: a {type(value).__name__} is not an array; give a NumPy array (z, y, x)")
    shape = tuple(int(s) for s in value.shape)
    if len(shape) != 3:
        raise TomosegError(f"{name} must be 3D (z, y, x), got shape {shape}")
    if min(shape) < 1:
        raise TomosegError(f"{name} is empty (shape {shape})")
    kind = np.dtype(value.dtype).kind
    if kind == "c":
        raise TomosegError(f"{name}: holds complex values ({value.dtype}); give real gray values (numpy.abs or "
                           ".real of the array)")
    if kind not in "biuf":
        raise TomosegError(f"{name}: holds {value.dtype} values; give an array of numbers")
    return value


class _Boxed:
    """An array read through a box of it (:func:`crop`): its indices are the box's, from 0."""

    def __init__(self, array, box):
        self._array, self.box = array, box
        self.shape = tuple(b.stop - b.start for b in box)
        self.dtype = array.dtype
        self.chunks = getattr(array, "chunks", None)

    def __getitem__(self, key):
        import operator

        index = []
        for k, b in zip(_normalize_key(key, 3), self.box):
            n = b.stop - b.start
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step < 0:
                    raise IndexError("a box of a volume is read with positive steps")
                index.append(slice(b.start + start, b.start + max(start, stop), step))
            else:
                i = operator.index(k)
                i += n if i < 0 else 0
                if not 0 <= i < n:
                    raise IndexError(f"index {k} is out of a box of length {n}")
                index.append(b.start + i)
        return np.asarray(self._array[tuple(index)])


def crop(volume, box):
    """``volume`` seen inside ``box`` (three slices, or (start, stop) pairs, z, y, x), read lazily: a NumPy
    array's view; a :class:`Volume` of the same file (path, format, voxel size) read through the box; any other
    array read through it. ``None`` stays ``None``."""
    if volume is None:
        return None
    box = tuple(b if isinstance(b, slice) else slice(int(b[0]), int(b[1])) for b in box)
    if isinstance(volume, np.ndarray):
        return volume[box]
    if isinstance(volume, Volume):
        from .nrrd_file import moved_to

        view = Volume(_Boxed(volume, box), path=volume.path, format=volume.format, voxel_size=volume.voxel_size,
                      chunks=volume.chunks)
        start = [b.start or 0 for b in box]
        # the box's voxel (0, 0, 0) lies at the box's start: its origin (an OME-Zarr translation, an NRRD space
        # origin) moved there, not the whole volume's
        view.orientation = moved_to(volume.orientation, start)
        view.origin_nm = None if volume.origin_nm is None or volume.voxel_size is None else tuple(
            float(o) + s * float(v) for o, s, v in zip(volume.origin_nm, start, volume.voxel_size))
        return view
    return _Boxed(volume, box)


def origin_of(volume) -> tuple | None:
    """Where the centre of voxel (0, 0, 0) of ``volume`` lies, (z, y, x) in nm: an OME-Zarr level's translation
    or an NRRD's axis mins (``Volume.origin_nm``), else an NRRD's ``space origin``
    (:func:`~tomoseg.io.nrrd_file.origin_nm` of ``Volume.orientation``: None where its axes are rotated or flipped,
    or its units unknown); None for any other volume or array."""
    origin = getattr(volume, "origin_nm", None)
    if origin is not None:
        return tuple(float(o) for o in origin)
    orientation = getattr(volume, "orientation", None)
    if not orientation:
        return None
    from .nrrd_file import origin_nm

    return origin_nm(orientation)


def path_of(volume) -> Path | None:
    """The file ``volume`` was opened from: a :class:`Volume`'s path, or the path given as a str or Path; None for
    any other array (a zarr or h5py array's own ``path`` or ``name`` is its place inside a store, not a file)."""
    if isinstance(volume, Volume):
        return volume.path
    if isinstance(volume, (str, os.PathLike)):
        return Path(volume)
    return None


class CheckedVoxelSize(tuple):
    """A voxel size (z, y, x) nm validated, and warned about where implausible, once (:func:`checked_voxel_size`,
    :func:`~tomoseg.io.open_volume`): handed on to another public function, it is not warned about again.
    ``said_implausible``: that warning was said (a file's size compared later need not give the same advice)."""

    said_implausible = False


def checked_voxel_size(voxel_size, where: str = "voxel_size") -> VoxelSize | None:
    """A voxel size given by the user (a public function's ``voxel_size``, the CLI's ``--voxel-size``) as a
    validated (z, y, x) nm tuple, None if not given (:func:`check_voxel_size`); warns when implausible (once: a
    :class:`CheckedVoxelSize` passes through)."""
    if isinstance(voxel_size, CheckedVoxelSize):
        return voxel_size
    vs = check_voxel_size(voxel_size)
    if vs is None:
        return None
    checked = CheckedVoxelSize(vs)
    checked.said_implausible = warn_if_implausible(vs, where)
    return checked


def check_dtype(dtype: np.dtype, path) -> None:
    """Refuse data types that are not gray values (complex, text, records, objects)."""
    if dtype.kind == "c":
        raise TomosegError(f"{path}: holds complex numbers ({dtype}); tomoseg needs real gray values: save the "
                           "magnitude or the real part as float32")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise TomosegError(f"{path}: holds {dtype} values (text, records or objects), not gray values; tomoseg "
                           "needs a numeric volume (uint8, uint16, float32, ...)")


def _normalize_key(key: Any, ndim: int) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    return key + (slice(None),) * (ndim - len(key))


class Volume:
    """A 3D volume on disk, read region by region.

    Parameters
    ----------
    array : array-like
        Anything with ``shape``, ``dtype`` and NumPy basic slicing.
    path : Path
        The file the data come from (for messages and provenance).
    format : str
        Format name, e.g. ``"tiff"`` or ``"zarr"``.
    voxel_size : tuple of 3 floats or None
        (z, y, x) in nm, or ``None`` where the file does not say.
    chunks : tuple or None
        Storage chunk shape, ``None`` for contiguous data.
    reopen : callable
        Rebuilds the same volume in another process (used for pickling to Dask workers).
    close : callable, optional
        Releases file handles.

    Examples
    --------
    >>> import numpy as np, tomoseg, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "v.npy")
    >>> tomoseg.write_volume(path, np.zeros((4, 5, 6), np.uint8))
    >>> with tomoseg.open_volume(path) as vol:
    ...     vol[1:3, :2, :2].shape
    (2, 2, 2)
    """

    def __init__(self, array, *, path, format: str, voxel_size=None, chunks=None,
                 reopen: Callable[[], "Volume"] | None = None, close: Callable[[], None] | None = None):
        shape = tuple(int(s) for s in array.shape)
        if len(shape) == 2:
            raise TomosegError(f"{path}: is a 2D image of shape {shape}; tomoseg needs a 3D volume "
                               "(a multi-page TIFF, a folder of slices, or a 3D dataset)")
        if len(shape) != 3:
            raise TomosegError(f"{path}: has {len(shape)} dimensions {shape}; tomoseg needs a 3D volume (z, y, x)")
        if min(shape) < 1:
            raise TomosegError(f"{path}: is empty (shape {shape})")
        check_dtype(np.dtype(array.dtype), path)
        self._array = array
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.dtype = np.dtype(array.dtype)
        self.path = Path(path)
        self.format = format
        self.orientation: dict | None = None  # an NRRD input's space, directions and origin (nrrd_file)
        self.origin_nm: tuple | None = None  # where voxel (0, 0, 0)'s centre lies (z, y, x nm): an OME-Zarr level's
        #                                      translation (zarr_store), an NRRD's axis mins (nrrd_file)
        self.ngff_at_zero = False  # an OME-Zarr image whose metadata give no translation: NGFF places it at 0
        self.voxel_size_problem: str | None = None
        self.origin_problem: str | None = None  # why the file's origin cannot be used (an OME-Zarr translation of
        #                                         text, or of 2 values for 3 axes): warned of by open_volume
        self.voxel_size_note: str | None = None  # a size the reader assumed (a TIFF's z): said unless overridden
        self.notes: list[str] = []  # what `info` should say about how the file was read (series, assumed unit)
        self.whole_read = False  # reading any part decompresses the whole file (a compressed NRRD)
        try:
            self.voxel_size: VoxelSize | None = check_voxel_size(voxel_size)
        except TomosegError:
            self.voxel_size = None
            self.voxel_size_problem = (f"{path}: the voxel size in the file, {voxel_size!r}, is not valid (zero, "
                                       "negative, not a number or past a metre); treated as unknown: pass "
                                       "--voxel-size Z Y X")
        self.chunks = tuple(int(c) for c in chunks) if chunks else None
        self._reopen = reopen
        self._close = close

    ndim = 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __getitem__(self, key) -> np.ndarray:
        key = _normalize_key(key, 3)
        try:
            return np.asarray(self._array[key])
        except (TomosegError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # damaged chunks, vanished files, codec errors
            raise TomosegError(f"{self.path}: data cannot be read ({type(exc).__name__}: {exc}); the file may be "
                               "damaged, incomplete or changed while tomoseg read it") from None

    def read(self) -> np.ndarray:
        """The whole volume in memory."""
        return self[:, :, :]

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        if self._reopen is None:
            raise TypeError(f"volume {self.path} cannot be sent to another process")
        return (_call, (self._reopen,))

    def __repr__(self) -> str:
        vs = "unknown" if self.voxel_size is None else voxel_size_text(self.voxel_size)
        return f"<Volume {self.path} {self.format} shape={self.shape} dtype={self.dtype} voxel={vs}>"


class Squeezed:
    """A view of an array without some of its length-1 axes: by default the leading ones (t, c) before the last
    three (z, y, x), which stay even where they are 1 (a one-slice volume); ``keep`` names the axes kept otherwise
    (an ImageJ ZCYX hyperstack with C=1). Every axis left out must have length 1."""

    def __init__(self, array, keep=None):
        ndim = len(array.shape)
        self._keep = list(range(ndim - 3, ndim)) if keep is None else list(keep)
        dropped = [i for i in range(ndim) if i not in self._keep]
        if any(int(array.shape[i]) != 1 for i in dropped):
            raise ValueError(f"axes {dropped} of shape {tuple(array.shape)} are not all of length 1")
        self._array = array
        self.shape = tuple(int(array.shape[i]) for i in self._keep)
        self.dtype = array.dtype
        chunks = getattr(array, "chunks", None)
        self.chunks = tuple(chunks[i] for i in self._keep) if chunks is not None and len(chunks) == ndim else None

    def __getitem__(self, key):
        key = _normalize_key(key, len(self.shape))
        full = [0] * len(self._array.shape)
        for i, k in zip(self._keep, key):
            full[i] = k
        return np.asarray(self._array[tuple(full)])


def squeeze_leading(array):
    """``array`` seen as 3D when it has more axes, all of length 1 but the last three (t=c=1 of a TCZYX or CZYX
    array, a (1, Z, Y, X) dataset); otherwise ``array`` itself (the 3D check of :class:`Volume` then refuses it)."""
    shape = tuple(int(s) for s in array.shape)
    if len(shape) > 3 and all(s == 1 for s in shape[:-3]):
        return Squeezed(array)
    return array


def _call(fn):
    return fn()


RELEASE_BYTES = 64 << 20  # a memory-mapped output drops its written pages from the process every this many bytes


class ReleasingMap:
    """A memory-mapped output (a ``numpy.memmap``) written region by region, whose written pages leave this
    process's resident memory as the writing moves on.

    Each page written stays mapped into the process until unmapped, so writing a 2 GiB ``.tif``, ``.nrrd`` or
    ``.npy`` raised the RSS to 2.2 GB: page cache the kernel may reclaim, but what ``/usr/bin/time``, SLURM's
    MaxRSS and RSS-enforcing schedulers count. Every :data:`RELEASE_BYTES` the pages before the region being
    written (in the file's order: a writer going in z, y order has finished them) are dropped with
    ``madvise(MADV_DONTNEED)``, which for a shared file mapping keeps the data: the written pages stay in the page
    cache, dirty, and are written to the file as usual (``flush`` at the end). A page wanted again is mapped
    again from the cache. Where the platform has no ``madvise`` (Windows), it writes as the memmap does.
    """

    def __init__(self, mm):
        import mmap

        self.array, self.shape, self.dtype = mm, tuple(mm.shape), mm.dtype
        self._map = getattr(mm, "_mmap", None)
        self._released = 0  # bytes of the array, from its start, whose pages were dropped
        self._offset = 0
        if self._map is None or not hasattr(self._map, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            self._map = None
            return
        start = np.frombuffer(self._map, np.uint8, count=1)  # where the map starts (a view: let go at once)
        self._offset = int(mm.ctypes.data - start.ctypes.data)
        del start

    def __setitem__(self, key, value) -> None:
        self.array[key] = value
        start = self._start(key)
        if start is not None and start - self._released >= RELEASE_BYTES:
            self.release(start)

    def __getitem__(self, key):
        return self.array[key]

    def _start(self, key) -> int | None:
        """The byte of the array where the region ``key`` (three slices or integers) starts, or None."""
        if self._map is None or not isinstance(key, tuple) or len(key) != 3:
            return None
        firsts = []
        for k, n in zip(key[:2], self.shape[:2]):
            if isinstance(k, slice):
                r = range(n)[k]
                if not len(r):
                    return None
                firsts.append(min(r[0], r[-1]))
            elif isinstance(k, (int, np.integer)):
                firsts.append(range(n)[k])
            else:
                return None
        row = int(self.shape[2]) * self.dtype.itemsize
        return (firsts[0] * int(self.shape[1]) + firsts[1]) * row

    def release(self, upto: int | None = None) -> None:
        """Drop the pages of the array's bytes before ``upto`` (default: all of them) from this process."""
        import mmap

        if self._map is None:
            return
        whole = upto is None
        upto = self.array.nbytes if whole else int(upto)
        lo = self._offset + self._released
        hi = self._offset + upto
        lo -= lo % mmap.PAGESIZE
        hi = min(len(self._map), -(-hi // mmap.PAGESIZE) * mmap.PAGESIZE) if whole else hi - hi % mmap.PAGESIZE
        if hi > lo:
            self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        self._released = max(self._released, upto)

    def flush(self) -> None:
        self.array.flush()
        self.release()


@dataclass
class Sink:
    """What a format's ``create`` returns: an array to write into and how to finish it."""

    array: Any
    finish: Callable[[], None] = lambda: None
    abort: Callable[[], None] = lambda: None
    companions: tuple[str, ...] = field(default_factory=tuple)  # suffixes of extra files (e.g. ".info")
    placed: bool = False  # finish() puts the data in place itself (a dataset inside an existing HDF5 file)


def write_error_reason(exc: BaseException) -> str:
    """Why a write failed, in words: the system's message for its errno (also where HDF5 gives only its stack of
    function names with ``errno = 28`` inside), else the first line of the message."""
    import errno as errnos
    import re

    text = str(exc)
    m = re.search(r"errno = (\d+)", text)
    code = getattr(exc, "errno", None) or (int(m.group(1)) if m else None)
    if code in (errnos.ENOSPC, errnos.EDQUOT):
        return "the disk is full"
    if code == errnos.EFBIG:
        return "the file grew past the largest file size allowed (ulimit -f, or the file system's limit)"
    if code == errnos.EROFS:
        return "the file system is read-only"
    if code:
        return os.strerror(code)
    return text.splitlines()[0] if text else type(exc).__name__


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class VolumeWriter:
    """Writes a volume region by region; the file appears under its name only on success.

    Use as a context manager: an exception inside the block removes the partial file.
    Whether an existing ``path`` may be replaced is decided before (:func:`tomoseg.io.output_guard.check_output`).
    """

    def __init__(self, path: Path, sink_factory: Callable[[Path], Sink], *, shape, dtype,
                 overwrite: bool = False):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.overwrite = overwrite
        self.tmp_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._sink: Sink | None = None
        self._closed = True
        for p in self._tmp_files(("",)):
            remove_path(p)
        try:
            self._sink = sink_factory(self.tmp_path)
        except BaseException:
            for p in self._tmp_files(("",)):
                remove_path(p)
            raise
        self._closed = False

    def _tmp_files(self, suffixes) -> list[Path]:
        return [self.tmp_path.with_name(self.tmp_path.name + s) for s in suffixes]

    def __setitem__(self, key, value) -> None:
        assert self._sink is not None
        key = _normalize_key(key, 3)
        try:
            self._sink.array[key] = value
        except (OSError, RuntimeError) as exc:  # h5py: RuntimeError for some failed writes
            from .disk_space import in_temporary_folder, temporary_folder_advice

            reason = write_error_reason(exc)
            if reason == "the disk is full" and in_temporary_folder(self.path):  # a file tomoseg stages there
                raise TomosegError(f"{self.path}: writing failed ({reason}) in {temporary_folder_advice()}, and "
                                   "run again") from None
            raise TomosegError(f"{self.path}: writing failed ({reason}); nothing was put in place. "
                               "Free space (or fix the folder) and run again") from None

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._closed:
            return
        assert self._sink is not None
        self._sink.finish()
        if self._sink.placed:
            self._closed = True
            return
        suffixes = ("",) + tuple(self._sink.companions)
        for s in suffixes:
            final = self.path.with_name(self.path.name + s)
            if final.exists():
                remove_path(final)
            os.replace(self.tmp_path.with_name(self.tmp_path.name + s), final)
        self._closed = True

    def abort(self) -> None:
        """Drop the partial file."""
        if self._closed:
            return
        if self._sink is not None:
            try:
                self._sink.abort()
            finally:
                for p in self._tmp_files(("",) + tuple(self._sink.companions)):
                    remove_path(p)
        self._closed = True

    def __enter__(self) -> "VolumeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
