"""Volume I/O for the field's formats, importable without PyTorch.

``open_volume`` returns a lazily sliced :class:`Volume`; ``read_volume`` and
``write_volume`` move whole arrays; ``create_volume`` returns a
:class:`VolumeWriter` for results larger than memory, written region by region.

Formats, chosen by the path:

==========================  ================================================
``x.tif``, ``x.tiff``        multi-page TIFF / OME-TIFF (``x.tif:1``: series 1)
folder of ``*.tif``          one 2D TIFF per z slice
``x.h5:/entry/data/data``    HDF5 / NeXus dataset (``.h5 .hdf5 .hdf .nxs .nx5 .nx .he5``;
                             ``.nxs``/``.nx5``/``.nx`` outputs are written as NeXus)
``x.zarr``, ``x.ome.zarr``   Zarr v3 / OME-Zarr (NGFF scale in nm; a level: ``x.ome.zarr:1`` or ``x.ome.zarr/1``);
                             zipped (``x.zarr.zip``, zarr's ZipStore): read in place, never written
``x.nrrd``, ``x.nhdr``       NRRD (attached or detached header)
``x.vol`` + ``x.vol.info``   PyHST2 raw float32 (or ``x.vol.xml``; ``DATA_TYPE`` for other types)
``x.npy``                    NumPy array (tomoseg's own: voxel size from its provenance record)
==========================  ================================================
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from ..errors import TomosegError, note, warn
from . import disk_space, hdf5, npy, nrrd_file, output_guard, pyhst, tiff, tiff_folder, unsupported, zarr_store
from .voxel_sizes import override_message
from .volume import (PARTIAL_SUFFIX, CheckedVoxelSize, Volume, VolumeWriter, VoxelSize, check_voxel_size,
                     checked_voxel_size, implausible_message)

__all__ = ["Volume", "VolumeWriter", "open_volume", "read_volume", "write_volume", "create_volume",
           "format_of", "split_dataset", "check_output_format", "FORMATS", "EXTENSIONS"]

FORMATS = ("tiff", "tiff-folder", "hdf5", "zarr", "nrrd", "pyhst-vol", "npy")
#: every extension a volume file may have (a folder of TIFF slices aside), e.g. for a viewer's file patterns
EXTENSIONS = (tiff.EXTENSIONS + hdf5.EXTENSIONS + zarr_store.EXTENSIONS + nrrd_file.EXTENSIONS + pyhst.EXTENSIONS
              + npy.EXTENSIONS)
_HDF5_RE = re.compile(r"^(.*?\.(?:h5|hdf5|hdf|nxs|nx5|nx|he5)):(/?.*)$", re.IGNORECASE)
# store.zarr:1, scan.zip:1 (a level); store.zarr/:1 too (tab completion)
_ZARR_RE = re.compile(r"^(.*?\.(?:zarr3?(?:\.zip)?|zip))/?:(?!/)(.+)$", re.IGNORECASE)
_TIFF_RE = re.compile(r"^(.*?\.tiff?):(\d+)$", re.IGNORECASE)  # file.ome.tif:1, the second image (series)
_SUPPORTED = ("TIFF (.tif/.tiff or a folder of slices), HDF5/NeXus (.h5/.hdf5/.nxs/.nx, optionally "
              "file.h5:/path/to/dataset), Zarr (.zarr/.ome.zarr/.zarr.zip), NRRD (.nrrd/.nhdr), PyHST2 (.vol + "
              ".vol.info), NumPy (.npy)")


def split_dataset(path) -> tuple[Path, str | None]:
    """Split ``file.h5:/entry/data`` (or ``store.zarr:1``, ``file.ome.tif:1``) into the file and the dataset,
    level or series inside it."""
    text = str(path)
    for pattern in (_HDF5_RE, _ZARR_RE, _TIFF_RE):
        m = pattern.match(text)
        if m and m.group(2):
            return Path(m.group(1)), m.group(2)
    return Path(text), None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in (".ome.zarr.zip", ".zarr.zip", ".ome.zarr"):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def format_of(path, *, for_writing: bool = False) -> str:
    """The format name a path stands for (by its extension, or what a folder holds)."""
    file, _ = split_dataset(path)
    ext = _suffix(file)
    if ext in tiff.EXTENSIONS:
        return "tiff"
    if ext in hdf5.EXTENSIONS:
        return "hdf5"
    if for_writing and (ext in zarr_store.ZIP_EXTENSIONS or ext == ".zip"):
        folder = file.name[:-len(".zip")] + ("" if ext in zarr_store.ZIP_EXTENSIONS else ".zarr")
        raise TomosegError(f"{file}: tomoseg reads zipped Zarr stores but does not write them; write "
                           f"{folder} (a folder) and zip it afterwards if you need one file")
    if ext in zarr_store.EXTENSIONS:
        return "zarr"
    if ext in nrrd_file.EXTENSIONS:
        return "nrrd"
    if ext in pyhst.EXTENSIONS:
        return "pyhst-vol"
    if ext in npy.EXTENSIONS:
        return "npy"
    if not for_writing and file.is_dir():
        if zarr_store.is_zarr_dir(file):
            return "zarr"
        return "tiff-folder"
    if not for_writing and ext == ".zip" and zarr_store.is_zipped_zarr(file):  # a zipped store named scan.zip
        return "zarr"
    if not for_writing and ext == ".zip" and file.is_file():  # damaged, or stores further down: said so
        problem = zarr_store.zip_problem(file)
        if problem:
            raise TomosegError(problem)
    if for_writing and ext == "":
        return "tiff-folder"
    if for_writing:
        raise TomosegError(f"{file}: unknown volume format {ext or '(no extension)'!r}; supported: {_SUPPORTED}")
    raise TomosegError(unsupported.data_url_message(str(path))  # silx:FILE?path=/DATASET: FILE:/DATASET
                       or unsupported.unknown_format_message(file, _SUPPORTED))  # with what to do


def open_volume(path, *, voxel_size=None) -> Volume:
    """Open a volume for lazy, region-by-region reading.

    Parameters
    ----------
    path : str or Path
        File or folder; ``file.h5:/dataset`` names a dataset inside an HDF5 file.
    voxel_size : tuple of 3 floats, optional
        (z, y, x) in nm; overrides what the file says.

    Returns
    -------
    Volume
        ``shape``, ``dtype``, ``chunks``, ``voxel_size`` and ``vol[z0:z1, y0:y1, x0:x1]``.

    Examples
    --------
    >>> import numpy as np, tomoseg, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "v.tif")
    >>> tomoseg.write_volume(p, np.ones((3, 8, 8), np.uint8), voxel_size=(30.0, 30.0, 30.0))
    >>> tomoseg.open_volume(p).voxel_size
    (30.0, 30.0, 30.0)
    """
    return _open_volume(path, voxel_size)


def _open_volume(path, voxel_size, *, _say: bool = True) -> Volume:
    """:func:`open_volume`; ``_say=False`` when a volume is opened again (a worker's copy): what was said about
    its voxel size when it was first opened is not said again."""
    override = checked_voxel_size(voxel_size)
    file, dataset = split_dataset(path)
    fmt = format_of(path)
    if not file.exists():
        raise TomosegError(unsupported.glob_message(file) or f"{file}: no such file or folder")
    if not (file.is_file() or file.is_dir()):  # a FIFO or a device: reading it could block for ever
        raise TomosegError(f"{file}: is not a regular file or folder (a pipe or a device?); give the volume's file")
    if fmt == "tiff-folder":
        message = unsupported.folder_message(file)  # PNG, DICOM, EDF slices: how to convert them
        if message:
            raise TomosegError(message)
        vol = tiff_folder.open_tiff_folder(file)
    elif fmt == "tiff":
        vol = tiff.open_tiff(file, dataset)
    elif fmt == "hdf5":
        vol = hdf5.open_hdf5(file, dataset)
    elif fmt == "zarr":
        vol = zarr_store.open_zarr(file, dataset)
    elif fmt == "nrrd":
        vol = nrrd_file.open_nrrd(file)
    elif fmt == "pyhst-vol":
        vol = pyhst.open_vol(file)
    else:
        vol = npy.open_npy(file)
    if override is None and vol.voxel_size_note:
        note(vol.voxel_size_note)  # a size the reader assumed (a TIFF's z spacing), unless --voxel-size gives it
    if override is not None:
        replaced = override_message(vol.voxel_size, override, path) if _say else None
        if replaced:  # review U1: a correction said and kept in the notes; a unit slip or x/z swap warned of
            (warn if replaced[0] == "warning" else note)(replaced[1])
        vol.voxel_size = override
    elif vol.voxel_size_problem:
        warn(vol.voxel_size_problem)
    else:
        message = implausible_message(vol.voxel_size, f"{path}: the file's voxel size")
        if message:
            warn(message + "; pass --voxel-size Z Y X to correct it")
    if vol.origin_problem and _say:  # positions counted from voxel (0, 0, 0), not where the file put them: said once
        warn(vol.origin_problem)
    if vol.voxel_size is not None:  # checked and warned about: not again by the functions it is handed to
        vol.voxel_size = CheckedVoxelSize(vol.voxel_size)
    if any(p.name.endswith(output_guard.WORK_SUFFIX) for p in (file, *file.parents)):
        warn(f"{path}: is inside the work folder of a segment run that has not finished (its tiles may not all be "
             "computed, the rest reads as 0); finish it with segment --resume and use its output")
    vol._reopen = functools.partial(_open_volume, str(path), override, _say=False)
    return vol


def read_volume(path, *, voxel_size=None) -> np.ndarray:
    """Read a whole volume into memory as a NumPy array.

    Parameters
    ----------
    path : str or Path
        Any format tomoseg reads (:func:`open_volume`): a TIFF file or folder of slices, ``file.h5:/dataset``,
        a Zarr or OME-Zarr store (its full resolution), NRRD, ``.npy``, PyHST2 ``.vol``.
    voxel_size : (z, y, x) in nm, optional
        Checked as ``--voxel-size`` is; only for :func:`open_volume`'s checks here (an array has no voxel
        size: use ``open_volume(path).voxel_size`` to read the file's).

    Returns
    -------
    numpy.ndarray
        The whole volume (z, y, x) in its stored dtype. For a volume larger than memory use
        :func:`open_volume` and read boxes of it (``vol[z0:z1, y0:y1, x0:x1]``).
    """
    with open_volume(path, voxel_size=voxel_size) as vol:
        return vol.read()


def create_volume(path, shape, dtype, *, voxel_size=None, chunks=None, overwrite: bool = False,
                  orientation: dict | None = None, origin=None) -> VolumeWriter:
    """Start writing a volume region by region; see :class:`VolumeWriter`.

    The data go to ``PATH.partial`` and are renamed to ``PATH`` by ``close()``. ``orientation``: an NRRD
    input's place in space (``Volume.orientation``), kept by NRRD outputs, its vectors scaled to ``voxel_size``.
    ``origin``: where the centre of voxel (0, 0, 0) lies, (z, y, x) in nm (an input's,
    :func:`~tomoseg.io.volume.origin_of`), kept with a voxel size by Zarr (an OME-Zarr ``translation``) and NRRD
    (``space origin``, where no ``orientation`` gives one); the other formats hold no origin.

    Examples
    --------
    >>> import numpy as np, tomoseg, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "out.zarr")
    >>> with tomoseg.create_volume(p, (4, 8, 8), np.uint8) as w:
    ...     w[0:2] = 1
    ...     w[2:4] = 2
    >>> int(tomoseg.read_volume(p).sum())
    384
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise TomosegError(f"{path}: a volume needs three positive sizes (z, y, x), not {shape}")
    voxel_size = check_voxel_size(voxel_size)
    file, dataset = split_dataset(path)
    fmt = format_of(path, for_writing=True)
    check_output_format(path, dtype, shape)
    disk_space.check_writable_folder(file.parent)
    output_guard.check_output(path, overwrite=overwrite)
    if fmt in disk_space.UNCOMPRESSED:
        disk_space.check_free_space(file.parent, disk_space.output_bytes(shape, dtype),
                                      what=f"writing {file.name}")
    kwargs = dict(voxel_size=voxel_size, chunks=chunks)
    in_file = fmt == "hdf5" and file.exists()  # a dataset inside an existing file: the file's other data stay
    if in_file:  # staged in a file of its own, then copied in: twice its (compressed) size
        staged = f"{file.name}:{dataset or hdf5.default_dataset(file)}"
        disk_space.warn_if_short(file.parent, 2 * disk_space.output_bytes(shape, dtype),
                                   what=f"the staged {staged} and its copy into the file", resume=False)
    nexus = fmt == "hdf5" and file.suffix.lower() in hdf5.NEXUS_EXTENSIONS
    factories = {
        "tiff": lambda tmp: tiff.create_tiff(tmp, shape, dtype, **kwargs),
        "tiff-folder": lambda tmp: tiff_folder.create_tiff_folder(tmp, shape, dtype, **kwargs),
        "hdf5": (lambda tmp: hdf5.create_hdf5_in_file(file, shape, dtype, dataset=dataset, tmp=tmp, nexus=nexus,
                                                      **kwargs))
        if in_file
        else (lambda tmp: hdf5.create_hdf5(tmp, shape, dtype, dataset=dataset, nexus=nexus, **kwargs)),
        "zarr": lambda tmp: zarr_store.create_zarr(tmp, shape, dtype, name=file.name.split(".")[0], origin=origin,
                                                   **kwargs),
        "nrrd": lambda tmp: nrrd_file.create_nrrd(tmp, shape, dtype, orientation=orientation, origin=origin,
                                                  **kwargs),
        "pyhst-vol": lambda tmp: pyhst.create_vol(tmp, shape, dtype, **kwargs),
        "npy": lambda tmp: npy.create_npy(tmp, shape, dtype, **kwargs),
    }
    return VolumeWriter(file, factories[fmt], shape=shape, dtype=dtype, overwrite=overwrite)


def check_output_format(path, dtype, shape) -> None:
    """Refuse, before any work, an output format that cannot hold ``dtype`` or ``shape``."""
    fmt = format_of(path, for_writing=True)
    dtype = np.dtype(dtype)
    if fmt in ("tiff", "tiff-folder"):
        tiff.check_dtype(dtype, path)
        if fmt == "tiff":
            tiff.check_shape(shape, path)
    elif fmt == "pyhst-vol" and dtype != np.float32:
        raise TomosegError(f"{path}: PyHST2 .vol files hold float32, not {dtype}; choose .zarr, .h5, .tif or .npy")
    elif fmt == "nrrd" and _suffix(split_dataset(path)[0]) == ".nhdr":
        raise TomosegError(f"{path}: tomoseg writes NRRD with an attached header; name the output .nrrd")
    elif fmt == "nrrd" and dtype.str[1:] not in nrrd_file.NAMES:
        raise TomosegError(f"{path}: NRRD cannot hold {dtype}; choose .zarr or .h5")
    elif dtype.kind not in "biuf":
        raise TomosegError(f"{path}: tomoseg writes numeric volumes, not {dtype}")


def write_volume(path, data, *, voxel_size=None, overwrite: bool = False, chunks=None) -> None:
    """Write a whole array as a volume (atomically: a ``.partial`` file renamed at the end).

    Parameters
    ----------
    path : str or Path
        The format follows the name (:func:`create_volume`): ``.tif``, ``file.h5:/dataset``, ``.zarr`` (OME-Zarr),
        ``.nrrd``, ``.npy``, ``.vol``.
    data : array-like, 3D (z, y, x)
        Written in its dtype where the format holds it.
    voxel_size : (z, y, x) in nm, optional
        Stored in the file's metadata (TIFF resolution and ImageJ spacing, NGFF scale, NRRD spacings, HDF5
        ``element_size_um``), so Fiji, napari and ParaView show physical units.
    overwrite : bool
        Replace an existing output that tomoseg wrote (never another program's file).
    chunks : (z, y, x), optional
        Chunk shape for chunked formats (Zarr, HDF5).
    """
    data = np.asarray(data)
    if data.ndim != 3:
        raise TomosegError(f"{path}: a volume must be 3D (z, y, x), got shape {data.shape}")
    with create_volume(path, data.shape, data.dtype, voxel_size=voxel_size, chunks=chunks,
                       overwrite=overwrite) as writer:
        writer[:, :, :] = data
