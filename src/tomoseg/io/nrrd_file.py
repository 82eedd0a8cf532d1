"""NRRD (the format of the paper's own code): raw data are memory-mapped, compressed data are read whole.

A detached header (``x.nhdr`` naming its ``data file``, as ITK, 3D Slicer and teem write for large volumes) is read
like an attached one. gzip and bzip2 data are decompressed on the first read, straight into one array (peak about
the decompressed size), so ``info`` describes them from the header alone.
"""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np

from ..errors import TomosegError
from .units import ascii_unit, nm_per_unit
from .volume import ReleasingMap, Sink, Volume

EXTENSIONS = (".nrrd", ".nhdr")
# NRRD's anatomical spaces: 3D Slicer and ITK write them without 'space units', in mm by their convention
_ANATOMICAL = {"right-anterior-superior", "ras", "left-anterior-superior", "las", "left-posterior-superior", "lps",
               "right-anterior-superior-time", "rast", "left-anterior-superior-time", "last",
               "left-posterior-superior-time", "lpst"}
_STREAMED = {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
# peak memory of reading compressed data, in units of the decompressed size: streamed into one array, 1x plus a
# few pieces of _CHUNK bytes (measured: 144 MiB above the baseline for 128 MiB of random gzip or bzip2 data), or through
# pynrrd's nrrd.read for the text encodings (it holds the compressed bytes, a decompressed buffer and the array:
# measured 384 MiB for the same 128 MiB, 3x)
_CHUNK = 4 << 20
_PEAK_STREAMED, _PEAK_PYNRRD = (1.0, 4 * _CHUNK), (3.0, 0)

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


def _voxel_size(header, notes: list | None = None) -> tuple | None:
    try:
        return _voxel_size_of(header, notes if notes is not None else [])
    except (TypeError, ValueError, OverflowError):
        return (float("nan"),) * 3  # present but unusable: reported as not valid; --voxel-size overrides


def _voxel_size_of(header, notes: list) -> tuple | None:
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
    space = str(header.get("space", "")).strip().lower()
    if not units and "space directions" in header and space in _ANATOMICAL:
        units = ["mm"] * 3
        notes.append(f"no 'space units' in the header: the space {header.get('space')!r} (3D Slicer, ITK) is in mm "
                     "by convention; pass --voxel-size Z Y X if it is not")
    if not units or len(units) != 3:
        return None  # a spacing without a unit is not a voxel size
    factors = [nm_per_unit(u) for u in units]
    if any(f is None for f in factors):
        return None
    x, y, z = (float(s) * f for s, f in zip(spacing, factors))
    return (z, y, x)


AXIS_MINS_UNKNOWN = ("origin unknown (positions in nm are counted from voxel (0, 0, 0)); give the header a 'units' "
                     "field in lengths (units: \"um\" \"um\" \"um\") to place the volume")


def _axis_mins_origin(header, notes: list) -> tuple | None:
    """(z, y, x) nm of the centre of voxel (0, 0, 0) of an NRRD placed by per-axis ``axis mins`` (no ``space
    directions``, whose ``space origin`` places it instead, :func:`origin_nm`): each axis's min, plus half a
    sample along a cell-centred axis (NRRD: the min is the edge of its first cell; an axis without ``centers`` is
    cell-centred, as teem's ``nrrdOriginCalculate`` and ITK read it), whose spacing is its ``spacings`` or, without
    it, (max - min) / size from ``axis maxs``. In the units of the voxel size (:func:`_voxel_size_of`: ``units``);
    None, said in ``notes``, where they are missing or not lengths or a cell's size is not given; None without
    finite mins (teem writes NaN for a min it does not know)."""
    mins = header.get("axis mins", header.get("axismins"))
    if mins is None or "space directions" in header:
        return None
    try:
        mins = np.asarray(mins, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    if mins.shape != (3,) or not np.all(np.isfinite(mins)):
        return None
    said = "x, y, z: " + ", ".join(f"{m:g}" for m in mins)
    units = header.get("space units") or header.get("units")
    factors = [nm_per_unit(u) for u in units] if units is not None and len(units) == 3 else None
    if factors is None or any(f is None for f in factors):
        unit_text = ("no 'units' field" if not units else "units " + " ".join(f'"{u}"' for u in units)
                     + ", not lengths tomoseg knows")
        notes.append(f"the header's axis mins ({said}) are in no known unit ({unit_text}); {AXIS_MINS_UNKNOWN}")
        return None
    centers = header.get("centerings", header.get("centers"))  # pynrrd parses teem's "centers" as a string
    centers = centers.split() if isinstance(centers, str) else centers
    cell = [str(c).strip().lower() != "node" for c in centers] if centers is not None and len(centers) == 3 \
        else [True] * 3
    spacings = _cell_sizes(header, mins)
    if any(c and not np.isfinite(s) for c, s in zip(cell, spacings)):
        notes.append(f"the header's axis mins ({said} {_units_text(units)}) are the edges of cell-centred axes "
                     "whose spacings are not given (no 'spacings', no 'axis maxs'); origin unknown (positions in nm "
                     "are counted from voxel (0, 0, 0))")
        return None
    x, y, z = ((m + (s / 2 if c else 0.0)) * f for m, s, c, f in zip(mins, spacings, cell, factors))
    if any(cell):
        notes.append(f"origin from the header's axis mins ({said} {_units_text(units)}) and half a voxel along its "
                     f"cell-centred axes ({', '.join(a for a, c in zip('xyz', cell) if c)}"
                     f"{': no centers field, read as teem and ITK read it' if centers is None else ''})")
    return (z, y, x)


def _units_text(units) -> str:
    return units[0] if len(set(units)) == 1 else ", ".join(units)


def _cell_sizes(header, mins: np.ndarray) -> np.ndarray:
    """Each axis's sample spacing (x, y, z, in the header's units): its ``spacings``, else (max - min) / size from
    ``axis maxs`` (cell-centred); NaN where neither gives it."""
    out = np.full(3, np.nan)
    try:
        spacings = np.asarray(header.get("spacings", [np.nan] * 3), dtype=float).ravel()
        maxs = np.asarray(header.get("axis maxs", header.get("axismaxs", [np.nan] * 3)), dtype=float).ravel()
        sizes = np.asarray(header["sizes"], dtype=float).ravel()
    except (KeyError, TypeError, ValueError):
        return out
    if spacings.shape == (3,):
        out = np.where(np.isfinite(spacings), spacings, out)
    if maxs.shape == (3,) and sizes.shape == (3,):
        out = np.where(np.isfinite(out), out, (maxs - mins) / sizes)
    return out


def _units_as_written(header, raw: bytes) -> None:
    """``header``'s ``space units`` and ``units`` as the header's bytes ``raw`` write them: pynrrd decodes the header
    as ASCII and drops what is not, so ``"µm"`` (Fiji writes it) was read as ``"m"``, a voxel size and origin a
    million times too large (brief H2). UTF-8, else Latin-1 (one byte a character: any byte decodes)."""
    import re

    for field in ("space units", "units"):
        if field not in header:
            continue
        for line in raw.splitlines():
            if line.startswith(field.encode() + b":"):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    text = line.decode("latin-1")
                units = re.findall(r'"([^"]*)"', text.split(":", 1)[1])
                if len(units) == len(header[field]):
                    header[field] = units
                break


def _data_file(path: Path, header) -> Path | None:
    """The data file a detached header names (relative to the header's folder); None for attached data."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    name = str(name).strip()
    if name.upper().startswith("LIST") or "%" in name:
        raise TomosegError(f"{path}: its data are split over several files ({name!r}); tomoseg reads a header with "
                           "one data file: save the volume as a single .nrrd")
    data = Path(name) if Path(name).is_absolute() else path.parent / name
    if not data.is_file():
        raise TomosegError(f"{path}: its data file {name} is missing ({data}); copy it beside the header")
    return data


def detached_data_file(path: Path) -> Path | None:
    """The data file of a detached header ``x.nhdr`` (for its size on disk); None for attached data or a header
    that cannot be read (opening the volume says why)."""
    try:
        with open(path, "rb") as fh:
            return _data_file(Path(path), nrrd.read_header(fh))
    except (OSError, ValueError, TomosegError, nrrd.NRRDError):
        return None


def _skip(fh, header, path: Path) -> int:
    """Offset of a detached data file's data after 'line skip' lines and 'byte skip' bytes (-1: raw data end the
    file, handled by the caller)."""
    try:
        lines = int(header.get("line skip", header.get("lineskip", 0)))
        skip = int(header.get("byte skip", header.get("byteskip", 0)))
    except (TypeError, ValueError):
        raise TomosegError(f"{path}: its 'line skip' or 'byte skip' is not an integer") from None
    for _ in range(max(lines, 0)):
        fh.readline()
    return fh.tell() + max(skip, 0)


def open_nrrd(path: Path) -> Volume:
    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            offset = fh.tell()
            fh.seek(0)
            _units_as_written(header, fh.read(offset))
    except Exception as exc:
        raise TomosegError(f"{path}: is not a readable NRRD file ({exc})") from None
    data = _data_file(path, header)
    if data is None:
        data = path
    else:
        with open(data, "rb") as fh:
            offset = _skip(fh, header, path)
    try:
        shape = tuple(int(s) for s in np.ravel(header["sizes"]))[::-1]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise TomosegError(f"{path}: its NRRD header has no valid 'sizes' field") from None
    size = data.stat().st_size
    if shape and (min(shape) < 1 or np.prod([float(s) for s in shape]) > 2.0**50):
        # a size no file could hold (and whose product would overflow): damaged or hand-edited header
        raise TomosegError(f"{path}: NRRD sizes {shape[::-1]} cannot describe a file of {size} bytes; the header "
                           "is damaged")
    encoding = str(header.get("encoding", "raw")).lower()
    dtype = _dtype(header, path)
    if encoding == "raw":
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if data is not path and str(header.get("byte skip", header.get("byteskip", 0))).strip() == "-1":
            offset = size - nbytes
        if offset < 0 or offset + nbytes > size:
            raise TomosegError(f"{data}: is truncated ({size} bytes, {max(offset, 0) + nbytes} expected)")
        if offset + nbytes < size:
            raise TomosegError(f"{data}: holds {size - offset - nbytes} bytes more data than its header describes "
                               f"(sizes {' '.join(map(str, shape[::-1]))}, type {header.get('type')}); the header "
                               "does not match the data: fix 'sizes' or 'type'")
        array = np.memmap(data, dtype=dtype, mode="r", offset=offset, shape=shape)
    elif encoding in _STREAMED:
        _check_fits_in_memory(path, header, shape, _PEAK_STREAMED)
        array = _Decompressed(data, offset, _STREAMED[encoding], shape, dtype, path)
    else:
        _check_fits_in_memory(path, header, shape, _PEAK_PYNRRD)
        try:
            array, _ = nrrd.read(str(path), index_order="C")
        except TomosegError:
            raise
        except Exception as exc:
            raise TomosegError(f"{path}: NRRD data cannot be read ({exc}); the file may be truncated") from None
    notes: list[str] = []
    volume = Volume(array, path=path, format="nrrd", voxel_size=_voxel_size(header, notes))
    volume.orientation = _orientation(header)
    volume.origin_nm = _axis_mins_origin(header, notes)
    volume.notes.extend(notes)
    if data is not path:
        volume.notes.append(f"detached header: the data are in {data.name} ({encoding})")
    volume.whole_read = isinstance(array, _Decompressed)
    return volume


class _Decompressed:
    """gzip or bzip2 data, decompressed whole on the first read, piece by piece straight into one array: the peak
    is the array plus a few MiB (pynrrd's ``nrrd.read`` holds the compressed bytes, a decompressed buffer and the
    array: about 3x)."""

    def __init__(self, file: Path, offset: int, codec: str, shape, dtype, path: Path):
        self.file, self.offset, self.codec, self.path = file, offset, codec, path
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._data: np.ndarray | None = None

    def __getitem__(self, key):
        if self._data is None:
            self._data = self._load()
        return self._data[key]

    def _load(self) -> np.ndarray:
        import bz2
        import zlib

        out = np.empty(self.shape, self.dtype)
        buf = memoryview(out.reshape(-1).view(np.uint8))
        n, pos = len(buf), 0
        make = (lambda: zlib.decompressobj(32 + zlib.MAX_WBITS)) if self.codec == "gzip" else bz2.BZ2Decompressor
        dec, pending = make(), b""
        try:
            with open(self.file, "rb") as fh:
                fh.seek(self.offset)
                while pos < n:
                    if dec.eof:  # a next gzip member or bzip2 stream
                        pending, dec = dec.unused_data, make()
                    if self.codec == "gzip":
                        chunk = dec.unconsumed_tail or pending or fh.read(_CHUNK)
                    else:
                        chunk = (pending or fh.read(_CHUNK)) if dec.needs_input else b""
                    pending = b""
                    if not chunk and (self.codec == "gzip" or dec.needs_input):
                        break
                    piece = dec.decompress(chunk, min(n - pos, _CHUNK))
                    buf[pos:pos + len(piece)] = piece
                    pos += len(piece)
        except (OSError, EOFError, zlib.error) as exc:
            raise TomosegError(f"{self.path}: its {self.codec} data cannot be decompressed ({exc}); the file is "
                               "damaged or truncated: copy it again") from None
        if pos < n:
            raise TomosegError(f"{self.path}: its {self.codec} data end after {pos} of {n} bytes; the file is "
                               "truncated: copy it again")
        return out


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
    plain = along_array_axes(dirs) and (
        origin is None or not origin.any()) and "space" not in header
    if plain:
        return None
    units = header.get("space units")
    return {"space": header.get("space"), "space directions": dirs.tolist(),
            "space origin": None if origin is None else origin.tolist(),
            "space units": list(units) if units is not None and len(units) == 3 else None}


def origin_nm(orientation: dict | None) -> tuple | None:
    """Where the centre of an NRRD volume's voxel (0, 0, 0) lies, (z, y, x) in nm: its ``space origin`` in its
    space units (mm for an anatomical space without units, as for the voxel size). None without an origin, a
    known unit, or where ``space directions`` are not a diagonal of positive spacings (rotated or flipped axes,
    where a position is not origin + index x voxel size along each axis)."""
    if not orientation or orientation.get("space origin") is None:
        return None
    if not along_array_axes(orientation.get("space directions")):
        return None
    units = space_units(orientation)
    if units is None:
        return None
    x, y, z = (float(o) * nm_per_unit(u) for o, u in zip(orientation["space origin"], units))
    return (z, y, x)


ALIGNED = 1e-6  # direction cosines within this of the array's axes: along them (10^-3 voxel off after 1000 voxels)


def along_array_axes(directions) -> bool:
    """Whether NRRD ``space directions`` (rows: the steps along x, y, z) run along the array's axes, each the
    positive way, to :data:`ALIGNED` of their length (not in the header's unit: in metres a rotation of 10 degrees
    was within the 1e-8 of ``np.allclose``, and its origin taken as if aligned)."""
    dirs = np.asarray(directions, dtype=float) if directions is not None else np.zeros(0)
    if dirs.shape != (3, 3) or not np.all(np.isfinite(dirs)):
        return False
    lengths = np.linalg.norm(dirs, axis=1)
    return bool(np.all(lengths > 0) and np.allclose(dirs / lengths[:, None], np.eye(3), rtol=0, atol=ALIGNED))


def moved_to(orientation: dict | None, start) -> dict | None:
    """``orientation`` of the box of a volume that starts at voxel ``start`` (z, y, x): its ``space origin``
    moved along the ``space directions`` (each the step of one voxel along x, y, z), so that the box's voxel
    (0, 0, 0) lies where it lies in the whole volume; as it is where it has no origin."""
    if not orientation or orientation.get("space origin") is None:
        return orientation
    dirs = np.asarray(orientation["space directions"], dtype=float)  # rows: the steps along x, y, z
    z, y, x = (int(s) for s in start)
    origin = np.asarray(orientation["space origin"], dtype=float) + dirs.T @ np.array([x, y, z], dtype=float)
    return {**orientation, "space origin": origin.tolist()}


def _check_fits_in_memory(path: Path, header, shape, peak: tuple[float, int]) -> None:
    """A compressed NRRD is decompressed whole into memory (it has no chunks to read piece by piece): refuse one
    whose read would peak (``peak``: a factor of its decompressed size, and bytes more) above half of the
    available memory, before reading it."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no figure: let the read try
        return
    nbytes = float(np.prod([float(s) for s in shape])) * _dtype(header, path).itemsize
    need = nbytes * peak[0] + peak[1]
    if need > available / 2:
        raise TomosegError(
            f"{path}: is a {header.get('encoding')}-compressed NRRD of {nbytes / 2**30:.1f} GiB once decompressed, "
            f"and must be read whole into memory (about {need / 2**30:.1f} GiB at the peak, "
            f"{available / 2**30:.1f} GiB available). Save it with raw encoding "
            "(3D Slicer, or `unu save -e raw`), which tomoseg reads piece by piece, or convert it to Zarr or HDF5")


def space_units(orientation: dict) -> list | None:
    """The units of an NRRD orientation's vectors and origin as tomoseg reads them (:func:`_voxel_size_of`): its
    ``space units``, mm for an anatomical space (3D Slicer, ITK) without them; None where they are missing or
    unknown. The one place that says it, for :func:`origin_nm`, the outputs (:func:`_oriented`) and
    :mod:`.placement`."""
    units = orientation.get("space units")
    if not units and str(orientation.get("space") or "").strip().lower() in _ANATOMICAL:
        units = ["mm"] * 3
    if not units or len(units) != 3 or any(nm_per_unit(u) is None for u in units):
        return None
    return list(units)


def _oriented(orientation: dict, voxel_size) -> dict | None:
    """``orientation`` with each direction vector (x, y, z) scaled to the length of ``voxel_size`` (z, y, x, in nm)
    in the header's units: NRRD's sample spacing is the length of the vector, so a voxel size given with
    --voxel-size must change it. Directions and origin stay. Unchanged where the lengths already agree (no
    override: the input's header kept verbatim). Where the units are missing or unknown the vectors are written in
    nm with ``space units`` nm (the origin, in no known unit, stays as it was); a vector of length 0 has no
    direction, so the voxel size is written as a positive diagonal instead (None is returned)."""
    dirs = np.asarray(orientation["space directions"], dtype=float)
    lengths = np.linalg.norm(dirs, axis=1)
    if not np.all(lengths > 0):
        return None
    units = space_units(orientation)
    wanted = np.asarray(voxel_size, dtype=float)[::-1]  # nm, in the vectors' order x, y, z
    if units is None:
        written_units = ["nm"] * 3
    else:
        wanted = wanted / np.array([nm_per_unit(u) for u in units], dtype=float)
        if np.allclose(lengths, wanted, rtol=1e-9, atol=0):
            return orientation
        written_units = orientation.get("space units")  # None: an anatomical space's implicit mm stays implicit
    scaled = dirs * (wanted / lengths)[:, None]
    return {**orientation, "space directions": scaled.tolist(), "space units": written_units}


def create_nrrd(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, orientation: dict | None = None,
                origin=None) -> Sink:
    """A raw NRRD, memory-mapped. ``orientation`` (from an NRRD input, :func:`_orientation`) is kept, so the output
    overlays its input in 3D Slicer or ITK, its vectors scaled to ``voxel_size`` where that differs (an override,
    :func:`_oriented`); else the voxel size as a positive diagonal in nm, with ``origin`` ((z, y, x) nm: where
    voxel (0, 0, 0)'s centre lies, an OME-Zarr input's translation) as its ``space origin``."""
    dtype = np.dtype(dtype).newbyteorder("<")
    if orientation is not None and voxel_size is not None:
        orientation = _oriented(orientation, voxel_size)  # None: written as a diagonal below
    lines = ["NRRD0004", "# written by tomoseg", f"type: {_NAMES[dtype.str[1:]]}",
             "dimension: 3", f"sizes: {shape[2]} {shape[1]} {shape[0]}"]
    if orientation is not None:
        vector = lambda v: "(" + ",".join(repr(float(c)) for c in v) + ")"  # noqa: E731
        lines += [f"space: {orientation['space']}" if orientation.get("space") else "space dimension: 3",
                  "space directions: " + " ".join(vector(d) for d in orientation["space directions"])]
        if orientation.get("space units"):
            # in ASCII, as other readers decode the header: Fiji's "µm" was written as such, and read back as "m"
            lines.append("space units: " + " ".join(f'"{ascii_unit(u)}"' for u in orientation["space units"]))
        if orientation.get("space origin") is not None:
            lines.append("space origin: " + vector(orientation["space origin"]))
    elif voxel_size is not None:
        z, y, x = voxel_size
        lines += ["space dimension: 3", f"space directions: ({x!r},0,0) (0,{y!r},0) (0,0,{z!r})",
                  'space units: "nm" "nm" "nm"']
        if origin is not None:  # NRRD's vectors are (x, y, z)
            lines.append("space origin: (" + ",".join(repr(float(c)) for c in reversed(tuple(origin))) + ")")
    lines += ["kinds: domain domain domain", "endian: little", "encoding: raw"]
    header = ("\n".join(lines) + "\n\n").encode()
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + int(np.prod(shape)) * dtype.itemsize)
    from .disk_space import reserve

    reserve(tmp, tmp.stat().st_size)
    array = ReleasingMap(np.memmap(tmp, dtype=dtype, mode="r+", offset=len(header), shape=tuple(shape)))
    return Sink(array, finish=array.flush)
