"""NRRD (the format of the paper's own code): raw data are memory-mapped, compressed data are read whole."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np

from ..errors import TomosegError
from .units import nm_per_unit
from .volume import Sink, Volume

EXTENSIONS = (".nrrd",)

_TYPES = {
    "int8": "i1", "signed char": "i1", "char": "i1", "uint8": "u1", "uchar": "u1", "unsigned char": "u1",
    "int16": "i2", "short": "i2", "signed short": "i2", "uint16": "u2", "ushort": "u2", "unsigned short": "u2",
    "int32": "i4", "int": "i4", "signed int": "i4", "uint32": "u4", "uint": "u4", "unsigned int": "u4",
    "int64": "i8", "longlong": "i8", "uint64": "u8", "ulonglong": "u8", "float": "f4", "double": "f8",
}
NAMES = _NAMES = {"i1": "int8", "u1": "uint8", "i2": "int16", "u2": "uint16", "i4": "int32", "u4": "uint32",
          "i8": "int64", "u8": "uint64", "f4": "float", "f8": "double"}


def _dtype(header, path) -> np.dtype:
    code = _TYPES.get(str(header.get("type", "")).lower())
    if code is None:
        raise TomosegError(f"{path}: NRRD type {header.get('type')!r} is not supported")
    return np.dtype((">" if header.get("endian") == "big" else "<") + code)


def _voxel_size(header) -> tuple | None:
    try:
        return _voxel_size_of(header)
    except (TypeError, ValueError, OverflowError):
        return (float("nan"),) * 3  # present but unusable: reported as not valid; --voxel-size overrides


def _voxel_size_of(header) -> tuple | None:
    spacing = None
    if "space directions" in header:
        dirs = np.asarray(header["space directions"], dtype=float)
        if dirs.shape == (3, 3) and np.all(np.isfinite(dirs)):
            spacing = np.linalg.norm(dirs, axis=1)
    elif "spacings" in header:
        spacing = np.asarray(header["spacings"], dtype=float)
    if spacing is None:
        return None
    units = header.get("space units") or header.get("units")
    if not units or len(units) != 3:
        return None  # a spacing without a unit is not a voxel size
    factors = [nm_per_unit(u) for u in units]
    if any(f is None for f in factors):
        return None
    x, y, z = (float(s) * f for s, f in zip(spacing, factors))
    return (z, y, x)


def open_nrrd(path: Path) -> Volume:
    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            offset = fh.tell()
    except Exception as exc:
        raise TomosegError(f"{path}: is not a readable NRRD file ({exc})") from None
    if "data file" in header or "datafile" in header:
        raise TomosegError(f"{path}: detached NRRD data files are not supported; save as a single .nrrd")
    try:
        shape = tuple(int(s) for s in np.ravel(header["sizes"]))[::-1]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise TomosegError(f"{path}: its NRRD header has no valid 'sizes' field") from None
    size = path.stat().st_size
    if shape and (min(shape) < 1 or np.prod([float(s) for s in shape]) > 2.0**50):
        # a size no file could hold (and whose product would overflow): damaged or hand-edited header
        raise TomosegError(f"{path}: NRRD sizes {shape[::-1]} cannot describe a file of {size} bytes; the header "
                           "is damaged")
    if header.get("encoding", "raw") == "raw":
        dtype = _dtype(header, path)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > size:
            raise TomosegError(f"{path}: is truncated ({size} bytes, {offset + nbytes} expected)")
        if offset + nbytes < size:
            raise TomosegError(f"{path}: holds {size - offset - nbytes} bytes more data than its header describes "
                               f"(sizes {' '.join(map(str, shape[::-1]))}, type {header.get('type')}); the header "
                               "does not match the data: fix 'sizes' or 'type'")
        array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    else:
        _check_fits_in_memory(path, header, shape)
        try:
            _dtype(header, path)
            array, _ = nrrd.read(str(path), index_order="C")
        except TomosegError:
            raise
        except Exception as exc:
            raise TomosegError(f"{path}: NRRD data cannot be read ({exc}); the file may be truncated") from None
    volume = Volume(array, path=path, format="nrrd", voxel_size=_voxel_size(header))
    volume.orientation = _orientation(header)
    return volume


def _orientation(header) -> dict | None:
    """The scan's place in its space (``space``, ``space directions``, ``space origin``, ``space units``), kept
    so that NRRD outputs lie where their input lies in 3D Slicer or ITK; None for a plain diagonal at 0 (all
    tomoseg writes without it) or what cannot be used."""
    try:
        dirs = np.asarray(header.get("space directions"), dtype=float)
        origin = header.get("space origin")
        origin = None if origin is None else np.asarray(origin, dtype=float)
    except (TypeError, ValueError):
        return None
    if dirs.shape != (3, 3) or not np.all(np.isfinite(dirs)) or (
            origin is not None and (origin.shape != (3,) or not np.all(np.isfinite(origin)))):
        return None
    plain = np.allclose(dirs, np.diag(np.diag(dirs))) and np.all(np.diag(dirs) > 0) and (
        origin is None or not origin.any()) and "space" not in header
    if plain:
        return None
    units = header.get("space units")
    return {"space": header.get("space"), "space directions": dirs.tolist(),
            "space origin": None if origin is None else origin.tolist(),
            "space units": list(units) if units is not None and len(units) == 3 else None}


def _check_fits_in_memory(path: Path, header, shape) -> None:
    """A compressed NRRD is decompressed whole into memory (it has no chunks to read piece by piece): refuse one
    that would take more than half of the available memory, before reading it."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no figure: let the read try
        return
    nbytes = float(np.prod([float(s) for s in shape])) * _dtype(header, path).itemsize
    if nbytes > available / 2:
        raise TomosegError(
            f"{path}: is a {header.get('encoding')}-compressed NRRD of {nbytes / 2**30:.1f} GiB once decompressed, "
            f"and must be read whole into memory ({available / 2**30:.1f} GiB available). Save it with raw encoding "
            "(3D Slicer, or `unu save -e raw`), which tomoseg reads piece by piece, or convert it to Zarr or HDF5")


def create_nrrd(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, orientation: dict | None = None) -> Sink:
    """A raw NRRD, memory-mapped. ``orientation`` (from an NRRD input, :func:`_orientation`) is written as it was,
    so the output overlays its input in 3D Slicer or ITK; else the voxel size as a positive diagonal."""
    dtype = np.dtype(dtype).newbyteorder("<")
    lines = ["NRRD0004", "# written by tomoseg", f"type: {_NAMES[dtype.str[1:]]}",
             "dimension: 3", f"sizes: {shape[2]} {shape[1]} {shape[0]}"]
    if orientation is not None:
        vector = lambda v: "(" + ",".join(repr(float(c)) for c in v) + ")"  # noqa: E731
        lines += [f"space: {orientation['space']}" if orientation.get("space") else "space dimension: 3",
                  "space directions: " + " ".join(vector(d) for d in orientation["space directions"])]
        if orientation.get("space units"):
            lines.append("space units: " + " ".join(f'"{u}"' for u in orientation["space units"]))
        if orientation.get("space origin") is not None:
            lines.append("space origin: " + vector(orientation["space origin"]))
    elif voxel_size is not None:
        z, y, x = voxel_size
        lines += ["space dimension: 3", f"space directions: ({x!r},0,0) (0,{y!r},0) (0,0,{z!r})",
                  'space units: "nm" "nm" "nm"']
    lines += ["kinds: domain domain domain", "endian: little", "encoding: raw"]
    header = ("\n".join(lines) + "\n\n").encode()
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + int(np.prod(shape)) * dtype.itemsize)
    from .output_guard import reserve

    reserve(tmp, tmp.stat().st_size)
    mm = np.memmap(tmp, dtype=dtype, mode="r+", offset=len(header), shape=tuple(shape))
    return Sink(mm, finish=mm.flush)
