"""Where beamline software puts things in its HDF5 files: which datasets are raw projections, not volumes (NeXus
NXtomo, as nxtomomill and Diamond write it; APS Data Exchange raw scans), and where the voxel size of a
reconstruction is recorded outside the dataset's attributes (APS Data Exchange's effective pixel size; nabu's
record of the reconstruction). Used by :mod:`.hdf5`; reviews IN1, IN10 (readers) and RD1, RD3 (readers2)."""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import TomosegError
from .units import attribute_text as text




_DX_RESOLUTION = "/measurement/instrument/detection_system/objective/resolution"
_DX_DETECTOR = "/measurement/instrument/detector"


def _reconstruction_binning(f: h5py.File) -> tuple[str, int] | None:
    """The binning a Data Exchange reconstruction records, as (where, b) for a factor of 2**b: tomocupy (APS) keeps
    its command-line options in the reconstruction's file as ``/process/tomocupy-VERSION/SECTION/binning``, a
    string of shape (1,) holding 0, 1, 2 or 3 (review readers2 RD7). None where none is recorded, one cannot be
    read, or the file holds several that differ (tomocupy copies the raw scan's metadata in, which may hold another
    version's record of an earlier run)."""
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
                b = int(text(np.ravel(item[()])[0]) or "")
            except (TypeError, ValueError, OSError, IndexError):
                return None
            if not 0 <= b <= 8:
                return None
            found.append((item.name, b))
    return found[0] if found and len({b for _, b in found}) == 1 else None


def exchange_voxel_size(f: h5py.File, name: str, notes: list) -> tuple | None:
    """(z, y, x) in nm for a reconstruction in APS Data Exchange layout (``/exchange/...``): the scan's effective
    pixel size, ``/measurement/instrument/detection_system/objective/resolution``, one number with ``@units`` (a
    length: ``microns`` at APS), taken as an isotropic voxel size, times 2**b where the reconstruction records
    tomocupy's binning b (:func:`_reconstruction_binning`), with a note. Nothing is guessed: without units,
    or with the detector's ``pixel_size_x`` alone (the camera's pixel, before the optics' magnification), the
    voxel size stays unknown, said in a note."""
    from .units import nm_per_unit

    if not name.strip("/").startswith("exchange"):
        return None
    res = f.get(_DX_RESOLUTION)
    if isinstance(res, h5py.Dataset):
        try:
            values = np.ravel(res[()]).astype(np.float64)
        except (TypeError, ValueError, OSError):
            values = np.array([])
        unit = text(res.attrs.get("units")) or text(res.attrs.get("unit"))
        factor = nm_per_unit(unit)
        if values.size != 1 or factor is None:
            notes.append(f"{_DX_RESOLUTION} (Data Exchange's effective pixel size) holds "
                         f"{values.tolist() if values.size else 'no number'} with "
                         f"{'no units' if unit is None else f'units {unit!r}'}, not one length tomoseg knows; "
                         "voxel size unknown")
            return None
        v = float(values[0]) * factor
        binning = _reconstruction_binning(f)
        if binning is None:
            notes.append(f"voxel size from {_DX_RESOLUTION} = {values[0]:g} {unit} (the scan's effective pixel "
                         "size, taken for z, y and x); if the reconstruction was binned, pass --voxel-size Z Y X")
            return (v, v, v)
        where, b = binning
        v *= 2 ** b
        notes.append(f"voxel size from {_DX_RESOLUTION} = {values[0]:g} {unit} (the scan's effective pixel size, "
                     f"taken for z, y and x) times {2 ** b}, the binning the reconstruction records ({where} = {b}: "
                     f"2^{b})")
        return (v, v, v)
    detector = f.get(_DX_DETECTOR)
    if isinstance(detector, h5py.Group) and "pixel_size_x" in detector:
        notes.append(f"the file gives {_DX_DETECTOR}/pixel_size_x, the camera's pixel size before the optics' "
                     f"magnification, but not {_DX_RESOLUTION}; voxel size unknown")
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
