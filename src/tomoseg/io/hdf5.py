"""HDF5 and NeXus: ``file.h5:/entry/data/data`` names a dataset inside a file.

The voxel size is read from the dataset attribute ``element_size_um`` (z, y, x in
µm; the convention of ilastik and Fiji's HDF5 plugin) or ``voxel_size_nm``, and
written as both, or from its ``voxel_size`` or ``pixel_size`` with a length in ``@units``; without them, from
the evenly spaced axis coordinates (with ``@units``; centres or n + 1 bin edges) of the NeXus NXdata group whose
signal the dataset is, or, in APS Data Exchange files, from the scan's effective pixel size
(``/measurement/instrument/detection_system/objective/resolution``, else the detector's ``actual_pixel_size_x``
and ``_y``, with ``@units``), or, in nabu's reconstructions, from nabu's record
(``.../reconstruction/configuration/processing_options/reconstruction/voxel_size_cm``). A detector's own pixel
(Data Exchange ``detector/pixel_size``, NeXus NXdetector ``x_pixel_size``: before the optics' magnification) is
never taken; a note says it is there. Where beamline software puts these is in :mod:`.hdf5_layouts`; the list,
for users, in docs/formats.md.
Raw projections (NeXus NXtomo; Data Exchange ``/exchange/data`` beside
``data_white``, ``data_dark`` or ``theta``) are refused.

Outputs named ``.nxs`` or ``.nx5`` are NeXus: their dataset (default
``/entry/data/data``; any ``/ENTRY/GROUP/NAME``) is the ``@signal`` of an
NXdata group in an NXentry, reached from ``/@default``. Other outputs are
plain HDF5 (default dataset ``/data``).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from ..errors import TomosegError, install_hint, note
from .hdf5_chunks import parallel_reader, parallel_writer
from .hdf5_layouts import (check_not_projections, detector_pixel_note, exchange_voxel_size, nabu_voxel_size,
                           nxtomo_frames, projections)
from .units import attribute_text as _text
from .volume import Sink, Volume, squeeze_leading, write_error_reason
from .voxel_sizes import boolean_note, boolean_problem, is_boolean, voxel_size_from_attributes

EXTENSIONS = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".nx", ".he5")  # .nx: ESRF's NXtomo files (nxtomomill)
NEXUS_EXTENSIONS = (".nxs", ".nx5", ".nx")  # outputs with these names are written as NeXus (:func:`_mark_nexus`)
DEFAULT_DATASET = "/data"
_NEXUS_DEFAULT = "/entry/data/data"


def default_dataset(file) -> str:
    """The dataset an output ``file`` without a named one is written to: NeXus' ``/entry/data/data`` in a
    ``.nxs``/``.nx5`` file, ``/data`` in any other HDF5 file."""
    return _NEXUS_DEFAULT if Path(file).suffix.lower() in NEXUS_EXTENSIONS else DEFAULT_DATASET


def _nexus_signal(f: h5py.File) -> str | None:
    """The dataset NeXus names as the data to show: ``/@default`` -> NXentry ``@default`` -> NXdata ``@signal``
    (a file without ``/@default`` but with one NXentry starts there)."""
    group, where = f, ""
    if _text(f.attrs.get("default")) is None:
        entries = [k for k in f if isinstance(f.get(k), h5py.Group) and _text(f[k].attrs.get("NX_class")) == "NXentry"]
        if len(entries) == 1:
            group, where = f[entries[0]], "/" + entries[0]
    for _ in range(8):
        try:
            signal = _text(group.attrs.get("signal"))
            if signal and isinstance(group.get(signal), h5py.Dataset):
                return f"{where}/{signal}"
            default = _text(group.attrs.get("default"))
            if not default or not isinstance(group.get(default), h5py.Group):
                return None
        except (OSError, KeyError, TypeError, ValueError):
            return None
        group = group[default]
        where = default.rstrip("/") if default.startswith("/") else f"{where}/{default}"
    return None


def _walk(f: h5py.File, limit: int = 10000) -> tuple[list[tuple[str, tuple]], list[str]]:
    """Every dataset of 2 or more dimensions (name, shape), through soft and external links too (h5py's
    ``visititems`` follows neither); and the external links that cannot be opened."""
    found: list[tuple[str, tuple]] = []
    broken: list[str] = []
    seen: set = set()

    def visit(group, prefix: str, depth: int) -> None:
        for key in group:
            if len(found) >= limit or depth > 16:
                return
            name = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            try:
                obj = group[key]
            except (KeyError, OSError, ValueError):
                if isinstance(link, h5py.ExternalLink):
                    broken.append(f"{name} -> {link.filename}:{link.path}")
                continue
            ident = (obj.file.filename, h5py.h5o.get_info(obj.id).addr)
            if ident in seen:
                continue
            seen.add(ident)
            if isinstance(obj, h5py.Dataset):
                if obj.ndim >= 2:
                    found.append((name, tuple(int(n) for n in obj.shape)))
            elif isinstance(obj, h5py.Group):
                visit(obj, name, depth + 1)

    visit(f, "", 0)
    return found, broken


def _ndim3(shape) -> bool:
    """3D, or 3D after leading axes of length 1 (a (1, Z, Y, X) dataset)."""
    return len(shape) == 3 or (len(shape) > 3 and all(n == 1 for n in shape[:-3]))


def _find_dataset(f: h5py.File, path: Path, notes: list) -> str:
    """The dataset a file named without a dataset path holds: NeXus's default signal, else the only 3D dataset
    (``/entry/data/data`` among several, said by every command in a note naming the others). A default signal of
    fewer than 3 dimensions (a 2D preview of the reconstruction) gives way to the file's 3D datasets, said in a
    note. Raw projections (:func:`.hdf5_layouts.projections`) are refused as such, not listed as volumes to choose
    from."""
    signal = _nexus_signal(f)
    preview = None
    if signal is not None:
        shape = getattr(f.get(signal), "shape", None)
        if shape is None or len(shape) >= 3:
            return signal
        preview = (signal, tuple(int(n) for n in shape))
    candidates, broken = _walk(f)
    three_d = [c for c, shape in candidates if _ndim3(shape)]
    frames = nxtomo_frames(f)  # once per file: a Bliss file has hundreds of scans
    raw = [c for c in three_d if projections(f, c, frames)]
    if raw and len(raw) == len(three_d):
        check_not_projections(f, path, next((c for c in raw if c.endswith("/data")), raw[0]))
    three_d = [c for c in three_d if c not in raw]
    if preview is not None:
        if not three_d:
            return preview[0]  # refused as 2D by Volume, naming it
        if len(three_d) > 1:
            listed = ", ".join(f"{path}:{c}" for c in three_d[:8])
            raise TomosegError(f"{path}: its NeXus default plot {preview[0]} is 2D {preview[1]}, not the volume; "
                               f"name one of its 3D datasets, e.g. {listed}")
        notes.append(f"the NeXus default plot {preview[0]} is 2D {preview[1]}; read the file's only 3D dataset "
                     f"{three_d[0]}")
        return three_d[0]
    if _NEXUS_DEFAULT in three_d:
        others = [c for c in three_d if c != _NEXUS_DEFAULT]
        if others:  # review RD5: the volume read among several is said by every command, and how to read another
            note(f"{path}: read {_NEXUS_DEFAULT} (NeXus's usual path); the file also holds the 3D dataset"
                 f"{'s' if len(others) > 1 else ''} {', '.join(others[:8])}: to read "
                 f"{'one of them' if len(others) > 1 else 'it'}, name it as {path}:{others[0]}")
        return _NEXUS_DEFAULT
    if len(three_d) == 1:
        return three_d[0]
    if not candidates:
        if broken:
            raise TomosegError(f"{path}: holds no image dataset it can open; its external links "
                               f"{', '.join(broken[:4])} point to missing files: copy them beside it")
        raise TomosegError(f"{path}: holds no image dataset")
    if not three_d:
        if len(candidates) == 1:
            name, shape = candidates[0]
            raise TomosegError(f"{path}: its only image dataset {name} has shape {shape}; tomoseg needs a 3D volume "
                               "(z, y, x)")
        listed = ", ".join(f"{path}:{c} {shape}" for c, shape in candidates[:8])
        raise TomosegError(f"{path}: holds no 3D dataset ({listed}); tomoseg needs a 3D volume (z, y, x)")
    listed = ", ".join(f"{path}:{c}" for c in three_d[:8])
    raise TomosegError(f"{path}: holds several 3D datasets; name one, e.g. {listed}")


def _nexus_axes_voxel_size(f: h5py.File, name: str, ds, notes: list) -> tuple | None:
    """(z, y, x) in nm from the axis coordinates of the NXdata group holding ``ds`` as its signal: ``@axes``
    names one 1D dataset per dimension (``.`` for none), each with ``@units``; the spacing of evenly spaced
    coordinates is the voxel size. None, with a note where the group has axes that cannot give one."""
    from .units import nm_per_unit

    parent = ds.parent
    leaf = name.rstrip("/").rsplit("/", 1)[-1]
    if _text(parent.attrs.get("NX_class")) != "NXdata" and _text(parent.attrs.get("signal")) != leaf:
        return None
    axes = parent.attrs.get("axes")
    if axes is None:
        return None
    axes = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in np.ravel(axes)]
    if len(axes) == 1 and ":" in axes[0]:  # the NeXus 2012 form: "z:y:x"
        axes = axes[0].split(":")
    if len(axes) < 3:
        return None
    sizes, edges, units = [], [], []
    for axis, n in zip(axes[-3:], ds.shape[-3:]):
        coords = parent.get(axis) if axis not in (".", "") else None
        if not isinstance(coords, h5py.Dataset) or coords.ndim != 1 or coords.shape[0] not in (n, n + 1):
            notes.append(f"the NXdata axis {axis!r} gives no coordinates of length {n} (centres) or {n + 1} (bin "
                         "edges); voxel size unknown")
            return None
        if coords.shape[0] == n + 1:  # NeXus allows bin edges: n + 1 boundaries of n voxels
            edges.append(axis)
            n += 1
        unit = _text(coords.attrs.get("units"))
        factor = nm_per_unit(unit)
        if factor is None:
            notes.append(f"the NXdata axis {axis!r} has {'no units' if unit is None else f'units {unit!r}'}, "
                         "not a length tomoseg knows; voxel size unknown")
            return None
        if n < 2:
            notes.append(f"the NXdata axis {axis!r} holds one coordinate; voxel size unknown")
            return None
        try:
            raw = coords[()]
            c = np.asarray(raw, np.float64)
        except (TypeError, ValueError, OSError):
            return None
        if is_boolean(raw):  # 0 and 1: a step of 1 unit (review H2)
            notes.append(boolean_note(f"the NXdata axis {axis!r}", raw))
            return None
        step = np.diff(c)
        spacing = abs(float(c[-1] - c[0])) / (n - 1)
        if np.isfinite(c).all() and not step.any():  # every coordinate the same (review HP6)
            notes.append(f"the NXdata axis {axis!r} has a step of 0 (its {n} coordinates are all {c[0]:g} {unit}); "
                         "voxel size unknown")
            return None
        if not np.isfinite(spacing) or spacing <= 0 or np.abs(np.abs(step) - spacing).max() > 1e-3 * spacing:
            notes.append(f"the NXdata axis {axis!r} is not evenly spaced; voxel size unknown")
            return None
        sizes.append(spacing * factor)
        units.append(unit)
    notes.append("voxel size from the NXdata axes " + ", ".join(axes[-3:]) + f" (in {', '.join(units)})"
                 + (f"; {', '.join(edges)} given as bin edges (n + 1 coordinates)" if edges else ""))
    return tuple(sizes)


def _check_virtual(ds, path: Path, name: str) -> None:
    """A virtual dataset whose source files are missing reads as its fill value: refuse it."""
    if not ds.is_virtual:
        return
    for source in ds.virtual_sources():
        src = source.file_name
        if src == ".":
            continue
        candidates = [Path(src)] if Path(src).is_absolute() else [path.parent / src, Path(src)]
        if not any(c.exists() for c in candidates):
            raise TomosegError(f"{path}:{name} is a virtual dataset whose source file {src} is missing; it would "
                               "read as zeros. Copy the source files beside it, or export a real dataset")


# HDF5's dynamically loaded compression filters most seen at beamlines (their registered identifiers), all in
# the ESRF's hdf5plugin package
PLUGIN_FILTERS = {32001: "Blosc", 32026: "Blosc2", 32008: "bitshuffle", 32004: "LZ4", 32015: "Zstandard",
                  307: "bzip2", 32013: "ZFP", 32017: "SZ", 32024: "SZ3", 32018: "FCIDECOMP", 32019: "JPEG"}


def _missing_filters(ds) -> list[int]:
    plist = ds.id.get_create_plist()
    ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return [f for f in ids if not h5py.h5z.filter_avail(f)]


def _check_filters(ds, path: Path, name: str) -> None:
    """A dataset compressed by a filter this HDF5 library lacks (Blosc, bitshuffle, LZ4, Zstandard ...: plugins)
    is read with hdf5plugin's filters where that package is installed, else refused now, naming the filter and
    what to install (h5py itself says only "can't read data" at the first read)."""
    missing = _missing_filters(ds)
    if not missing:
        return
    try:
        import hdf5plugin  # noqa: F401  (registers its filters with the HDF5 library on import)
    except ImportError:
        pass
    missing = _missing_filters(ds)
    if missing:
        names = ", ".join(f"{PLUGIN_FILTERS.get(f, 'filter')} (HDF5 filter {f})" for f in missing)
        raise TomosegError(f"{path}:{name} is compressed with {names}, which this HDF5 library cannot decode; "
                           f"install the filters with {install_hint('hdf5plugin')} and run again")


def _open_error(path: Path, exc: OSError) -> str:
    """The message for an HDF5 file h5py cannot open. A file another program holds open for writing is not
    damaged: HDF5 refuses it by its lock (``unable to lock file``, EAGAIN: the writer is running now) or by the
    "open for write" flag in its superblock (a writer in SWMR mode, running or crashed). HDF5's own advice,
    ``h5clear``, is given only for a writer that is no longer running: clearing the flag under a running writer
    can damage the file. A lock refused for another reason (ENOLCK: NFS without a lock daemon) is the file
    system's, said with HDF5's way round it (``HDF5_USE_FILE_LOCKING=FALSE``)."""
    text = str(exc)
    if "unable to lock file" in text and any(s in text for s in ("errno = 11", "errno = 35",
                                                                  "Resource temporarily unavailable")):
        return (f"{path}: is open for writing by another program (an acquisition or reconstruction still "
                "running?), so it may be incomplete; run again when that program has finished and closed it")
    lock = re.search(r"unable to lock file, errno = (\d+), error message = '([^']*)'", text)
    if lock and lock.group(1) not in ("11", "35"):  # review RD10: ENOLCK (NFS without a lock daemon), not a writer
        return (f"{path}: HDF5 could not lock the file (errno {lock.group(1)}: {lock.group(2)}): its file system "
                "(NFS?) offers no file locks; the file is not damaged. Run again with HDF5's locking off (export "
                "HDF5_USE_FILE_LOCKING=FALSE), or copy the file to a local disk")
    if "already open for write" in text:
        swmr = False
        try:
            with h5py.File(path, "r", swmr=True):
                swmr = True
        except (OSError, ValueError):
            pass
        how = "in SWMR mode " if swmr else ""
        return (f"{path}: is marked as open for writing {how}by another program (an acquisition or "
                "reconstruction still running?), so it may be incomplete; run again when that program has "
                "finished. Only if no program is writing it any more (its writer crashed) clear the mark with "
                f"`h5clear -s {path}`, never while it is being written")
    return f"{path}: is not a readable HDF5 file ({exc})"


def open_hdf5(path: Path, dataset: str | None = None) -> Volume:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TomosegError(_open_error(path, exc)) from None
    try:
        notes: list[str] = []
        name = dataset if dataset else _find_dataset(f, path, notes)
        link = f.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            try:
                f[name]
            except (KeyError, OSError) as exc:
                raise TomosegError(f"{path}:{name} is an external link to {link.filename}:{link.path}, which cannot "
                                   f"be opened ({exc}); copy that file beside it or name the dataset itself") from None
        if name not in f:
            held = [c for c, shape in _walk(f)[0] if _ndim3(shape)]
            raise TomosegError(f"{path}: has no dataset {name!r}; check the path after the colon"
                               + (f" (its 3D datasets: {', '.join(f'{path}:{c}' for c in held[:8])})" if held
                                  else " (it holds no 3D dataset)"))
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise TomosegError(f"{path}:{name} is a group, not a dataset; name a dataset inside it")
        _check_virtual(ds, path, name)
        check_not_projections(f, path, name)
        _check_filters(ds, path, name)
        voxel_size = voxel_size_from_attributes(ds.attrs, notes)
        if voxel_size is None:
            voxel_size = _nexus_axes_voxel_size(f, name, ds, notes)
        if voxel_size is None:
            voxel_size = exchange_voxel_size(f, name, notes)
        if voxel_size is None:
            voxel_size = nabu_voxel_size(f, name, notes)
        if voxel_size is None:
            detector_pixel_note(f, name, notes)
        link = f.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            notes.append(f"{name} is an external link to {link.filename}:{link.path}, read from there")
        array = parallel_reader(ds)
        chunks = ds.chunks
        if ds.ndim > 3:
            array = squeeze_leading(array)  # (1, Z, Y, X): read as (Z, Y, X), like TIFF and Zarr
            chunks = chunks[-3:] if chunks else None
        vol = Volume(array, path=Path(f"{path}:{name}"), format="hdf5", voxel_size=voxel_size,
                     chunks=chunks, close=f.close)
        vol.notes.extend(notes)
        vol.voxel_size_problem = vol.voxel_size_problem or boolean_problem(vol.path, voxel_size, notes)
    except TomosegError:
        f.close()
        raise
    except Exception as exc:
        f.close()
        raise TomosegError(f"{path}: dataset cannot be opened ({exc}); the file may be damaged") from None
    return vol


def _create(f: h5py.File, name: str, shape, dtype, voxel_size, chunks):
    from .._version import __version__
    from .output_guard import MARK

    ds = f.create_dataset(name, shape=tuple(shape), dtype=np.dtype(dtype),
                          chunks=tuple(min(c, s) for c, s in zip(chunks or (64, 64, 64), shape)),
                          compression="gzip", compression_opts=1, shuffle=True)
    if voxel_size is not None:
        ds.attrs["element_size_um"] = np.asarray(voxel_size, np.float64) / 1e3
        ds.attrs["voxel_size_nm"] = np.asarray(voxel_size, np.float64)
    ds.attrs[MARK] = f"written by tomoseg {__version__}"
    return ds


def _mark_nexus(f: h5py.File, name: str, existing: frozenset = frozenset()) -> None:
    """Make the dataset ``name`` of a NeXus output (``.nxs``/``.nx5``) the file's NeXus data, where its path is
    ``/ENTRY/GROUP/SIGNAL``: ``ENTRY`` an NXentry whose ``@default`` is ``GROUP``, ``GROUP`` an NXdata whose
    ``@signal`` is ``SIGNAL``, and the file's ``/@default`` ``ENTRY``, so that NeXus readers (NeXpy, silx) and
    tomoseg find it without a dataset path. Only groups tomoseg creates now (not in ``existing``) get these
    attributes, and ``/@default`` only where the file has none and no other NXentry: another program's groups
    and an existing file's default stay as they are. Other paths stay plain HDF5."""
    parts = [p for p in name.split("/") if p]
    if len(parts) != 3:
        return
    entry, group, signal = parts
    if f"/{entry}" not in existing:
        f[entry].attrs["NX_class"] = "NXentry"
        f[entry].attrs["default"] = group
    if f"/{entry}/{group}" not in existing:
        f[entry][group].attrs["NX_class"] = "NXdata"
        f[entry][group].attrs["signal"] = signal
    others = [k for k in f if k != entry and isinstance(f.get(k), h5py.Group)
              and _text(f[k].attrs.get("NX_class")) == "NXentry"]
    if f"/{entry}" not in existing and "default" not in f.attrs and not others:
        f.attrs["default"] = entry


def _groups_of(f: h5py.File, name: str) -> frozenset:
    """The groups above dataset ``name`` that exist in ``f``."""
    parts = [p for p in name.split("/") if p][:-1]
    paths = ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]
    return frozenset(p for p in paths if p in f)


def _close_discarded(f: h5py.File) -> None:
    """Close a staging file that is being thrown away: its flush failing too (the full disk that stopped the
    write) must not hide the error that stopped it."""
    try:
        f.close()
    except (OSError, RuntimeError):
        pass


def create_hdf5(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, dataset: str | None = None,
                nexus: bool = False) -> Sink:
    """A new HDF5 file holding one dataset (``dataset``, default ``/data``); ``nexus``: the output is named
    ``.nxs``/``.nx5``, its dataset (default ``/entry/data/data``) is marked as NeXus data (:func:`_mark_nexus`)."""
    name = dataset or (_NEXUS_DEFAULT if nexus else DEFAULT_DATASET)
    f = h5py.File(tmp, "w")
    ds = _create(f, name, shape, dtype, voxel_size, chunks)
    if nexus:
        _mark_nexus(f, name)
    return Sink(parallel_writer(ds), finish=f.close, abort=lambda: _close_discarded(f))


def _copy_in(tmp: Path, path: Path, name: str, part: str, nexus: bool) -> None:
    """The staged dataset ``/data`` of ``tmp`` copied into ``path`` as ``part``, then renamed to ``name``."""
    with h5py.File(tmp, "r") as src, h5py.File(path, "a") as dst:
        if part in dst:
            del dst[part]
        existing = _groups_of(dst, name)
        parent = part.rsplit("/", 1)[0]
        if parent and parent not in dst:
            dst.require_group(parent)
        dst.copy(src["/data"], part)
        if name in dst:
            del dst[name]
        dst.move(part, name)
        if nexus:
            _mark_nexus(dst, name, existing)


def _drop_partial(path: Path, part: str) -> str | None:
    """After a failed copy: the half-copied ``part`` deleted from ``path``; None when done (or none was there),
    else what the user should know."""
    try:
        with h5py.File(path, "a") as f:
            if part in f:
                del f[part]
        return None
    except Exception:  # the file cannot be opened for writing now (a full disk): the next run deletes it
        return f"a half-copied {part} may be left in it (the next run into this file removes it; h5repack " \
               "gives back its space)"


def create_hdf5_in_file(path: Path, shape, dtype, *, voxel_size=None, chunks=None, dataset: str | None = None,
                        tmp: Path | None = None, nexus: bool = False) -> Sink:
    """Write one dataset into an existing file, keeping its other datasets.

    Only files tomoseg created take new datasets (:func:`~tomoseg.io.output_guard.check_hdf5_file_of_tomoseg`,
    checked before). The data are written to a separate temporary file first; only when they are complete, and
    the disk has room for them (as compressed), is the file opened for writing, the dataset copied in as
    ``NAME.partial`` and renamed to ``NAME`` (replacing tomoseg's own earlier result, as checked before). The
    file is thus open for writing only for the copy, not for the whole computation. A failed copy (a full disk)
    is one message naming the file, and its half-copied dataset is removed. ``nexus``: as in
    :func:`create_hdf5`, for the groups created here.
    """
    name = "/" + (dataset or (_NEXUS_DEFAULT if nexus else DEFAULT_DATASET)).strip("/")
    tmp = Path(tmp or path.with_name(path.name + ".partial"))
    staging = h5py.File(tmp, "w")
    try:
        ds = _create(staging, "/data", shape, dtype, voxel_size, chunks)
    except Exception:
        staging.close()
        tmp.unlink(missing_ok=True)
        raise

    def finish():
        from .disk_space import _SLACK_BYTES, check_file_size_limit, check_free_space, human_size
        from .result_stamps import file_stamp, restamp_hdf5_records

        staging.close()
        part = name + ".partial"
        try:
            # the copy needs the staged dataset's size (as compressed) free, and the file room to grow by it:
            # else refused now, the file untouched
            staged = tmp.stat().st_size
            check_free_space(path.parent, staged, what=f"adding {name} to {path.name}")
            check_file_size_limit(path, path.stat().st_size + staged + _SLACK_BYTES, what=f"adding {name}")
            before = file_stamp(path)
            _copy_in(tmp, path, name, part, nexus)
            restamp_hdf5_records(path, before)  # the records of its other datasets: tomoseg wrote last
        except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for a failed write (ENOSPC, EFBIG)
            left = _drop_partial(path, part)
            raise TomosegError(f"{path}: adding {name} ({human_size(tmp.stat().st_size)} compressed) to this HDF5 "
                               f"file failed ({write_error_reason(exc)}); its other datasets are as they were"
                               + ("" if left is None else f", {left}") + ". Free space on the disk (or close other "
                               "programs using the file) and run again, or write to a new file") from None
        finally:
            tmp.unlink(missing_ok=True)

    def abort():
        try:
            _close_discarded(staging)
        finally:
            tmp.unlink(missing_ok=True)

    return Sink(parallel_writer(ds), finish=finish, abort=abort, placed=True)
