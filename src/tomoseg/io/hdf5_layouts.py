"""Where beamline software puts things in its HDF5 files: which datasets are raw projections, not volumes (NeXus
NXtomo, as nxtomomill and Diamond write it; APS Data Exchange raw scans), and where the voxel size of a
reconstruction is recorded outside the dataset's attributes (APS Data Exchange's effective pixel size; nabu's
record of the reconstruction), and where a detector's own pixel size is, which is not the voxel size (Data
Exchange ``detector/pixel_size``, NeXus NXdetector ``x_pixel_size``). Used by :mod:`.hdf5`; reviews IN1, IN10
(readers) and RD1, RD3 (readers2); docs/formats.md."""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import TomosegError
from .units import attribute_text as text
from .voxel_sizes import boolean_note, is_boolean




_DX_RESOLUTION = "/measurement/instrument/detection_system/objective/resolution"
_DX_DETECTOR = "/measurement/instrument/detector"


def _reconstruction_binning(f: h5py.File) -> tuple[str, int] | None:
    """The binning a Data Exchange reconstruction records, as (where, b) for a factor of 2**b: tomocupy (APS) keeps
    its command-line options in the reconstruction's file as ``/process/tomocupy-VERSION/SECTION/binning``, a
    string of shape (1,) holding 0, 1, 2 or 3 (review readers2 RD7). None where none is recorded, one cannot be
    read, or the file holds several that differ (tomocupy copies the raw scan's metadata in, which may hold another
    version's record of an earlier run)."""
    found = _binning_records(f)
    return found[0] if found and len({b for _, b in found}) == 1 else None


def _binning_records(f: h5py.File) -> list[tuple[str, int]] | None:
    """Every binning record of tomocupy's in ``f`` (where, b); None where one cannot be read or is past 8."""
    process = f.get("/process")
    if not isinstance(process, h5py.Group):
        return None
    found = []
    for tool in process:
        group = process.get(tool)
        if not tool.startswith("tomocupy") or not isinstance(group, h5py.Group):
            continue
        for section in group:
            item = group[section].get("binning") if isinstance(group.get(section), h5py.Group) else None
            if not isinstance(item, h5py.Dataset):
                continue
            try:
                value = np.ravel(item[()])[0]
                if isinstance(value, (np.integer, np.floating)):  # a number (it was not read, review HP3)
                    b = int(value) if float(value).is_integer() else -1
                else:  # a string, as tomocupy writes it
                    b = int(text(value) or "")
            except (TypeError, ValueError, OSError, IndexError):
                return None
            if not 0 <= b <= 8:
                return None
            found.append((item.name, b))
    return found


BOOLEAN_SAID = "a boolean"  # how :func:`_dx_length` says it, for the caller's note

_DX_RAW_PIXEL = ("pixel_size", "pixel_size_x", "pixel_size_y")  # the camera's pixel (2-BM: DetectorPixelSize)


def _dx_length(item) -> tuple[float | None, str]:
    """One length in nm from a Data Exchange dataset with ``@units`` (or ``@unit``), and how it was given (for
    the notes); None where it is not one number with a length unit tomoseg knows."""
    from .units import nm_per_unit

    try:
        raw = item[()]
        values = np.ravel(raw).astype(np.float64)
    except (TypeError, ValueError, OSError):
        raw, values = None, np.array([])
    unit = text(item.attrs.get("units")) or text(item.attrs.get("unit"))
    factor = nm_per_unit(unit)
    if is_boolean(raw):  # True read as 1 (microns): 1000 nm (review H2)
        return None, BOOLEAN_SAID
    if values.size != 1 or factor is None or not np.isfinite(values[0]):
        return None, (f"{values.tolist() if values.size else 'no number'} with "
                      f"{'no units' if unit is None else f'units {unit!r}'}, not one length tomoseg knows")
    return float(values[0]) * factor, f"{values[0]:g} {unit}"


def _dx_effective(f: h5py.File, notes: list) -> tuple[tuple | None, str] | None:
    """The effective pixel size (at the sample, after the optics) a Data Exchange file records, as ((z, y, x)
    nm or None, where it was read); None where it records none. ``objective/resolution`` (APS tomoScan's
    ImagePixelSize: one number, taken for z, y and x) first, else the detector's ``actual_pixel_size_x`` and
    ``actual_pixel_size_y`` (Data Exchange: "actual pixel size on the sample plane"; z from the detector's
    vertical y, y and x from its horizontal x, the slice plane a reconstruction draws from the detector's
    rows). A value without a length unit is not guessed (Data Exchange's default is SI, m; tomopy-cli reads
    the same values as µm): unknown, said in ``notes``."""
    res = f.get(_DX_RESOLUTION)
    if isinstance(res, h5py.Dataset):
        v, said = _dx_length(res)
        if v is None:
            notes.append(boolean_note(_DX_RESOLUTION + " (Data Exchange's effective pixel size)", res[()])
                         if said is BOOLEAN_SAID else f"{_DX_RESOLUTION} (Data Exchange's effective pixel size) "
                         f"holds {said}; voxel size unknown")
            return None, _DX_RESOLUTION
        return (v, v, v), f"{_DX_RESOLUTION} = {said} (the scan's effective pixel size, taken for z, y and x)"
    detector = f.get(_DX_DETECTOR)
    if not isinstance(detector, h5py.Group) or not isinstance(detector.get("actual_pixel_size_x"), h5py.Dataset):
        return None
    where = f"{_DX_DETECTOR}/actual_pixel_size_x"
    x, said_x = _dx_length(detector["actual_pixel_size_x"])
    y, said_y = x, ""
    if isinstance(detector.get("actual_pixel_size_y"), h5py.Dataset):
        y, said_y = _dx_length(detector["actual_pixel_size_y"])
        where += " and _y"
    if x is None or y is None:
        bad = "actual_pixel_size_x" if x is None else "actual_pixel_size_y"
        said = said_x if x is None else said_y
        notes.append(boolean_note(f"{_DX_DETECTOR}/{bad} (Data Exchange's pixel size on the sample plane)",
                                  detector[bad][()]) if said is BOOLEAN_SAID else
                     f"{where} (Data Exchange's pixel size on the sample plane) holds {said}; voxel size unknown")
        return None, where
    how = (f"{said_x}, taken for z, y and x" if not said_y else
           f"x {said_x}, y {said_y}: z from the detector's y, the slices' y and x from its x")
    return (y, x, x), f"{where} ({how}; the pixel size on the sample plane)"


def _shown(item) -> str | None:
    """A small dataset's value as text for a note (one value, with its ``@units``), or None."""
    if not isinstance(item, h5py.Dataset):
        return None
    try:
        value = item[()]
        shown = text(value) or f"{np.ravel(value)[0]:g}"
    except (TypeError, ValueError, OSError, IndexError):
        return None
    unit = text(item.attrs.get("units")) or text(item.attrs.get("unit"))
    return f"{shown} {unit}" if unit else shown


def detector_pixel_note(f: h5py.File, name: str, notes: list) -> None:
    """Say, where a volume's voxel size is unknown, that the NeXus NXdetector groups of its entry give their
    ``x_pixel_size`` (the detector's pixel: the NeXus definition; before an optics' magnification it is not the
    voxel size, and nxtomo keeps the pixel size at the sample apart, in ``sample/x_pixel_size``) and that it was
    not taken. Searched two levels below the entry (``/entry/instrument/detector``)."""
    top = name.strip("/").split("/")[0]
    entry = f.get("/" + top)
    if not top or not isinstance(entry, h5py.Group):
        return
    try:
        groups = [g for g in entry.values() if isinstance(g, h5py.Group)]
        groups += [h for g in list(groups) for h in g.values() if isinstance(h, h5py.Group)]
    except (OSError, KeyError, TypeError, ValueError):
        return
    for group in groups:
        if text(group.attrs.get("NX_class")) == "NXdetector" and isinstance(group.get("x_pixel_size"), h5py.Dataset):
            notes.append(f"{group.name}/x_pixel_size = {_shown(group['x_pixel_size'])} is the NeXus detector's pixel "
                         "size, not taken as the voxel size (before the optics' magnification it is larger); voxel "
                         "size unknown: pass --voxel-size Z Y X")
            return


def exchange_voxel_size(f: h5py.File, name: str, notes: list) -> tuple | None:
    """(z, y, x) in nm for a reconstruction in APS Data Exchange layout (``/exchange/...``): the scan's effective
    pixel size (:func:`_dx_effective`: ``/measurement/instrument/detection_system/objective/resolution``, else
    the detector's ``actual_pixel_size_x``/``_y``), each with ``@units`` (a length: ``microns`` at APS), times
    2**b where the reconstruction records tomocupy's binning b (:func:`_reconstruction_binning`), with a note.
    Nothing is guessed: without units, or with the detector's ``pixel_size`` or ``pixel_size_x`` alone (the
    camera's pixel, before the optics' magnification; 2-BM's tomoScan writes ``pixel_size``), the voxel size
    stays unknown, said in a note."""
    if not name.strip("/").startswith("exchange"):
        return None
    found = _dx_effective(f, notes)
    if found is not None:
        size, where = found
        if size is None:
            return None
        binning = _reconstruction_binning(f)
        records = _binning_records(f) or []
        if binning is None and len({b for _, b in records}) > 1:  # said, not guessed (review HP4: it was not)
            notes.append(f"voxel size from {where}, not binned: the file records tomocupy binnings that differ "
                         f"({', '.join(f'{at} = {b}' for at, b in records)}); if the reconstruction was binned, "
                         "pass --voxel-size Z Y X")
            return size
        if binning is None:
            notes.append(f"voxel size from {where}; if the reconstruction was binned, pass --voxel-size Z Y X")
            return size
        at, b = binning
        notes.append(f"voxel size from {where} times {2 ** b}, the binning the reconstruction records ({at} = {b}: "
                     f"2^{b})")
        return tuple(v * 2 ** b for v in size)
    detector = f.get(_DX_DETECTOR)
    raw = [k for k in _DX_RAW_PIXEL if isinstance(detector, h5py.Group) and k in detector]
    if raw:
        magnification = _shown(f.get("/measurement/instrument/detection_system/objective/magnification"))
        optics = f" (the objective's magnification: {magnification})" if magnification else ""
        notes.append(f"the file gives {_DX_DETECTOR}/{raw[0]}, the camera's pixel size before the optics' "
                     f"magnification{optics}, but not the pixel size at the sample ({_DX_RESOLUTION} or "
                     f"{_DX_DETECTOR}/actual_pixel_size_x); voxel size unknown: pass --voxel-size Z Y X")
    return None


_NABU_RECORD = "configuration/processing_options/reconstruction"  # in the NXprocess above nabu's results
_CM = 1e7  # nm per cm


def nabu_voxel_size(f: h5py.File, name: str, notes: list) -> tuple | None:
    """(z, y, x) in nm of a reconstruction written by nabu (ESRF): nabu keeps its record in the NXprocess above the
    results (``/entry0000/reconstruction/configuration/processing_options/reconstruction``), where the voxel size
    is ``voxel_size_cm`` (z, y, x in cm; nabu 2023.1 and later) or ``pixel_size_cm`` (one number, earlier), as
    tomoscan reads it back. Taken with a note naming it; a value that is not 3 (or 1) positive numbers leaves the
    voxel size unknown, said in a note."""
    parts = name.strip("/").split("/")
    for depth in range(len(parts) - 1, 0, -1):
        where = "/" + "/".join(parts[:depth]) + "/" + _NABU_RECORD
        record = f.get(where)
        if not isinstance(record, h5py.Group):
            continue
        for key, count in (("voxel_size_cm", 3), ("pixel_size_cm", 1)):
            item = record.get(key)
            if not isinstance(item, h5py.Dataset):
                continue
            try:
                values = np.ravel(item[()]).astype(np.float64)
            except (TypeError, ValueError, OSError):
                values = np.array([])
            if is_boolean(item[()]):  # True read as 1 cm (review H2)
                notes.append(boolean_note(f"{where}/{key} (nabu's record of the reconstruction)", item[()]))
                return None
            if values.size != count or not np.all(np.isfinite(values)) or np.any(values <= 0):
                notes.append(f"{where}/{key} (nabu's record of the reconstruction) holds "
                             f"{text(item[()]) or np.ravel(item[()]).tolist()!s}, not {count} positive number"
                             f"{'s (z, y, x)' if count == 3 else ''} in cm; voxel size unknown")
                return None
            sizes = tuple(float(v) * _CM for v in (values if count == 3 else np.repeat(values, 3)))
            notes.append(f"voxel size from {where}/{key} (nabu's record of the reconstruction, in cm"
                         + (", z y x" if count == 3 else ", taken for z, y and x") + ")")
            return sizes
    return None


_DX_RAW = ("data_white", "data_dark", "theta")  # what APS Data Exchange raw scans hold beside /exchange/data


def _is_nxtomo(group) -> bool:
    """Whether ``group`` is a NeXus NXtomo entry or subentry (its ``definition``, a dataset or an attribute)."""
    try:
        definition = group.get("definition")
        text = definition[()] if isinstance(definition, h5py.Dataset) else group.attrs.get("definition")
    except (OSError, KeyError, TypeError, ValueError):
        return False
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text).strip() == "NXtomo"


def _has_image_key(group) -> bool:
    """Whether ``group`` keeps NXtomo's frame kinds (dark, flat, projection) where NXtomo puts them,
    ``instrument/detector/image_key``: an NXtomo entry whose ``definition`` is missing."""
    try:
        return isinstance(group.get("instrument/detector/image_key"), h5py.Dataset)
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _identity(obj) -> tuple | None:
    """What makes two paths the same HDF5 object (a soft link and its target): its file and address."""
    try:
        return obj.file.filename, h5py.h5o.get_info(obj.id).addr
    except (AttributeError, OSError, KeyError, TypeError, ValueError):
        return None


_NXTOMO_DATA = ("data/data", "instrument/detector/data")  # where an NXtomo entry keeps (or links to) its frames


def nxtomo_frames(f) -> dict:
    """The frames of every NXtomo entry or subentry of ``f`` (searched two levels deep: ``/entry``,
    ``/entry1/tomo_entry``), as {HDF5 object identity: the entry's path}: Diamond's raw scans keep the detector's
    dataset in ``/entry1/instrument/DETECTOR/data``, outside the NXtomo subentry ``/entry1/tomo_entry`` that links
    to it. Computed once per file (a Bliss file has hundreds of scans), handed to :func:`projections`."""
    found: dict = {}
    try:
        groups = [(k, f.get(k)) for k in f]
        groups += [(f"{k}/{j}", g.get(j)) for k, g in list(groups) if isinstance(g, h5py.Group)
                   and not _is_nxtomo(g) for j in g]
    except (OSError, KeyError, TypeError, ValueError):
        return found
    for where, group in groups:
        if not isinstance(group, h5py.Group) or not (_is_nxtomo(group) or _has_image_key(group)):
            continue
        for rel in _NXTOMO_DATA:
            try:
                frames = group.get(rel)
            except (OSError, KeyError, TypeError, ValueError):
                continue
            if isinstance(frames, h5py.Dataset) and _identity(frames) is not None:
                found.setdefault(_identity(frames), f"/{where}")
    return found


def projections(f, name: str, frames: dict | None = None) -> str | None:
    """What marks the dataset ``name`` as raw tomography data, or None: a group above it that is an NXtomo entry
    (NeXus: ``definition`` NXtomo, or an ``image_key``), an NXtomo entry elsewhere whose frames it is
    (:func:`nxtomo_frames`, computed here unless ``frames`` gives it), an NXdetector group holding it
    (:func:`_detector_of`), or an APS Data Exchange ``exchange`` group holding flat or dark fields or the angles
    (``data_white``, ``data_dark``, ``theta``) beside the projections ``data``; a reconstruction written by
    tomopy/dxchange has ``/exchange/data`` alone."""
    parts = name.strip("/").split("/")
    for depth in range(1, len(parts)):
        group = f.get("/" + "/".join(parts[:depth]))
        if not isinstance(group, h5py.Group):
            continue
        if _is_nxtomo(group) or "image_key" in group:
            return "NeXus NXtomo: projections, darks and flats"
        if parts[depth - 1].startswith("exchange"):
            found = [k for k in _DX_RAW if k in group]
            if found:
                return f"APS Data Exchange: projections with {', '.join(found)}"
    frames = nxtomo_frames(f) if frames is None else frames
    entry = frames.get(_identity(f.get(name))) if frames else None
    if entry is not None:
        return f"NeXus NXtomo: the frames of the NXtomo entry {entry}"
    detector = _detector_of(f, name)
    if detector is not None:
        return f"NeXus NXdetector {detector}: the detector's frames"
    return None


def _detector_of(f, name: str) -> str | None:
    """The NXdetector group holding the dataset ``name`` (by its path, or by the target of the soft link it is:
    Bliss links ``measurement/DETECTOR`` to ``instrument/DETECTOR/data``), or None. A detector's data are its
    frames, as acquired (ESRF Bliss scans, any NeXus raw file), never a reconstruction (review readers2 RD8)."""
    clean = "/" + name.strip("/")
    places = [clean.rsplit("/", 1)[0] or "/"]
    try:
        link = f.get(clean, getlink=True)
    except (OSError, KeyError, TypeError, ValueError):
        link = None
    if isinstance(link, h5py.SoftLink):
        target = link.path if link.path.startswith("/") else f"{places[0].rstrip('/')}/{link.path}"
        places.append(target.rstrip("/").rsplit("/", 1)[0] or "/")
    for where in places:
        try:
            group = f.get(where)
        except (OSError, KeyError, TypeError, ValueError):
            continue
        if isinstance(group, h5py.Group) and text(group.attrs.get("NX_class")) == "NXdetector":
            return where
    return None


def check_not_projections(f, path, name: str) -> None:
    """Refuse raw tomography data (:func:`projections`): read as a volume, projections (with darks and flats)
    would be segmented as z slices."""
    kind = projections(f, name)
    if kind:
        bliss = " (an ESRF Bliss scan: nxtomomill h52nx, then nabu)" if "NXdetector" in kind else ""
        raise TomosegError(f"{path}:{name} holds raw projections ({kind}), not a reconstructed volume; reconstruct "
                           f"it first (e.g. tomopy, nabu, tomocupy){bliss} and give the reconstruction")
