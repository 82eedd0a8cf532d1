"""NumPy ``.npy`` files, memory-mapped.

A ``.npy`` carries no voxel size. tomoseg's own ``.npy`` outputs have it in their provenance record beside them
(``X.npy.provenance.json``), which is read back where it is tomoseg's record of this very file: its ``tool`` is
tomoseg's, and the file's size and modification time are those the record stamped when it was written (a file
copied, edited or replaced since does not match), and its shape is the record's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .volume import ReleasingMap, Sink, Volume

EXTENSIONS = (".npy",)


def open_npy(path: Path) -> Volume:
    if path.stat().st_size == 0:
        raise TomosegError(f"{path}: is an empty file (0 bytes), not a .npy array; copy the file again")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:  # ValueError, OSError, EOFError, BadZipFile (a .npz), ...
        if _header_dtype(path) is not None and _header_dtype(path).hasobject:
            raise TomosegError(f"{path}: holds Python objects (dtype object), not gray values; tomoseg needs a numeric "
                               "volume (uint8, uint16, float32, ...): save it with numpy.save(path, "
                               "array.astype(numpy.float32))") from None
        raise TomosegError(f"{path}: is not a readable .npy array ({exc}); the file may be truncated") from None
    if not isinstance(array, np.ndarray):
        raise TomosegError(f"{path}: is not a .npy array (an .npz archive?); save one volume with numpy.save")
    notes: list[str] = []
    vol = Volume(array, path=path, format="npy", voxel_size=_recorded_voxel_size(path, array.shape, notes))
    vol.notes.extend(notes)
    return vol


def _recorded_voxel_size(path: Path, shape, notes: list) -> tuple | None:
    """The voxel size in tomoseg's provenance record of the ``.npy`` at ``path`` (module docstring), or None;
    a record of tomoseg's that no longer matches the file is said in a note."""
    from .output_guard import provenance_path, tomoseg_provenance
    from .result_stamps import volume_changed

    record = tomoseg_provenance(path)
    if record is None:
        return None
    values = record.get("voxel_size_nm")
    if not (isinstance(values, list) and len(values) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        return None
    recorded_shape = record.get("shape", record.get("input_shape"))
    name = provenance_path(path).name
    if volume_changed(record, path) is not False or list(recorded_shape or []) != list(shape):
        notes.append(f"{name}, tomoseg's record of this output, no longer matches it (its size, modification "
                     "time or shape changed since: copied, edited or replaced), so its voxel size is not used")
        return None
    notes.append(f"voxel size from {name}, tomoseg's record of this output")
    return tuple(float(v) for v in values)


def _header_dtype(path: Path):
    """The dtype a .npy header names, or None where the header cannot be read."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return read(fh)[2]
    except Exception:
        return None


def create_npy(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None) -> Sink:
    """A memory-mapped .npy and its provenance record beside it (.npy has no room for tomoseg's marker): written
    as ``TMP.provenance.json`` (:func:`~tomoseg.io.output_guard.provenance_path` of the temporary file) and
    renamed with it, as the companion of that suffix, to the output's own record."""
    from .._version import __version__
    from .output_guard import PROVENANCE_SUFFIX, write_provenance
    from .disk_space import reserve

    mm = ReleasingMap(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape)))
    reserve(tmp, tmp.stat().st_size)

    def finish():
        mm.flush()
        write_provenance(tmp, {"tool": "tomoseg write_volume", "tomoseg_version": __version__, "shape": list(shape),
                               "dtype": str(np.dtype(dtype)),
                               "voxel_size_nm": list(voxel_size) if voxel_size is not None else None})

    return Sink(mm, finish=finish, companions=(PROVENANCE_SUFFIX,))
