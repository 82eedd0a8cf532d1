"""What tomoseg may write and replace: output checks made before any heavy work.

The rule (docs/bad-inputs.md): a user's existing data are never destroyed.
``--overwrite`` replaces only what tomoseg wrote, recognized by its marker:

==================  ==========================================================
TIFF file           the ``Software`` tag ``tomoseg``
folder of slices    a ``.tomoseg`` file inside, and nothing but tomoseg's slices
HDF5 dataset        the dataset attribute ``tomoseg`` (other datasets are kept)
Zarr store          the attribute ``tomoseg`` of its root
NRRD                the header comment ``# written by tomoseg``
PyHST2 .vol         the line ``! written by tomoseg`` in ``.vol.info``
any other file      its provenance record written by tomoseg (:func:`provenance_path`)
ONNX export         the metadata entry ``tomoseg`` (:mod:`tomoseg.io.onnx_marker`)
JSON record         its ``"tool"`` entry (``phantom --pair-truth``: ``tomoseg phantom``)
report.html         ``<meta name="generator" content="tomoseg">``
==================  ==========================================================

No output may be an input of the same run or another output of it (:func:`check_outputs_apart`), nor go into a
folder of 2D slices (:func:`check_not_in_slice_folder`). A dataset goes into an existing HDF5 file only if
tomoseg created the file (:func:`check_hdf5_file_of_tomoseg`). A result of tomoseg's changed since it was
written (its stamp, :mod:`tomoseg.io.result_stamps`) is not replaced. Everything else found at an output path
(a raw scan, a folder of other files, another program's dataset) is refused, with or without ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import TomosegError

MARK = "tomoseg"
WORK_SUFFIX = ".tomoseg-run"  # the work folder of a segment run, beside its output, until the run finishes
FOLDER_MARKER = ".tomoseg"
SLICE_RE = re.compile(r"^slice_\d+\.tif$")
# sizes that a write must be able to hold in addition to the data (headers, metadata)
_SLACK_BYTES = 1 << 20


PROVENANCE_SUFFIX = ".provenance.json"


def _default_hdf5_dataset(file) -> str:
    """What an output ``x.h5`` (no dataset named) is written as: ``/data``; ``/entry/data/data`` in ``x.nxs``."""
    from .hdf5 import default_dataset

    return default_dataset(file)


def _hdf5_dataset(output) -> tuple[Path, str | None]:
    """The file of ``output`` and, where it names (or is) an HDF5 file, the dataset's path (``/a/b``); else None."""
    from . import format_of, split_dataset

    file, dataset = split_dataset(output)
    try:
        hdf5 = format_of(str(file), for_writing=True) == "hdf5"
    except TomosegError:
        hdf5 = False
    if not hdf5:
        return file, None
    parts = [p for p in (dataset or "").split("/") if p]
    return file, "/" + "/".join(parts) if parts else _default_hdf5_dataset(file)


def _escaped(name: str) -> str:
    """A dataset path's part in a file name: ASCII letters, digits, ``_`` and ``-`` as they are, every other
    character (``.``, ``#``, ``%``, spaces, non-ASCII) as ``%XX`` of its UTF-8 bytes."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "".join(f"%{b:02X}" for b in c.encode())
                   for c in name)


def provenance_path(output) -> Path:
    """Where the provenance record of ``output`` lies: the one rule for every record tomoseg writes or reads.

    A file or folder ``NAME`` (``x.tif``, ``x.npy``, ``x.zarr``, a folder of slices; ``x.ome.tif:1`` and
    ``x.zarr:0`` are the file's) has ``NAME.provenance.json`` beside it. Each dataset of an HDF5 file has a
    record of its own, ``FILE#DATASET.provenance.json``: ``out.h5:/prob`` -> ``out.h5#prob.provenance.json``,
    ``out.h5:/entry/prob`` -> ``out.h5#entry#prob.provenance.json``, ``out.h5`` (its dataset ``/data``) ->
    ``out.h5#data.provenance.json``, ``out.nxs`` (``/entry/data/data``) -> ``out.nxs#entry#data#data.provenance.json``.
    In the dataset's names every character but ASCII letters, digits, ``_``
    and ``-`` is written ``%XX`` (UTF-8), so two datasets never share a record, and a dataset's record is never
    that of another output (its NAME ends in ``.h5#...``, an extension no output has).

    Examples
    --------
    >>> provenance_path("run/out.h5:/entry/prob.v2").name
    'out.h5#entry#prob%2Ev2.provenance.json'
    >>> provenance_path("run/prob.tif").name
    'prob.tif.provenance.json'
    """
    file, dataset = _hdf5_dataset(output)
    if dataset is None:
        return file.with_name(file.name + PROVENANCE_SUFFIX)
    return file.with_name(file.name + "".join("#" + _escaped(p) for p in dataset.strip("/").split("/"))
                          + PROVENANCE_SUFFIX)


def _tomoseg_record(path: Path) -> dict | None:
    record = read_record(path) if path.is_file() else None
    return record if record is not None and str(record.get("tool", "")).startswith("tomoseg") else None


def same_output(a, b) -> bool:
    """Whether two output names (``out.h5:/prob``, ``prob.tif``) name one output: the same file name and, in an
    HDF5 file, the same dataset (``out.h5`` is ``out.h5:/data``). Records name their outputs as the user gave
    them (relative or absolute), so the folder is not compared: a record lies beside its output."""
    if not a or not b:
        return False
    (fa, da), (fb, db) = _hdf5_dataset(a), _hdf5_dataset(b)
    return fa.name == fb.name and da == db


def tomoseg_provenance(output) -> dict | None:
    """The provenance record tomoseg wrote for ``output`` (:func:`provenance_path`), else None.

    A dataset of an HDF5 file written by an earlier version, whose record is the file's
    (``out.h5.provenance.json``, shared by all its datasets and replaced by each run), is given that record
    only where it is segment's record of this very dataset (its ``outputs.probability`` names it)."""
    record = _tomoseg_record(provenance_path(output))
    file, dataset = _hdf5_dataset(output)
    if record is None and dataset is not None:
        legacy = _tomoseg_record(file.with_name(file.name + PROVENANCE_SUFFIX))
        outputs = (legacy or {}).get("outputs")
        if isinstance(outputs, dict) and same_output(outputs.get("probability"), f"{file}:{dataset}"):
            return legacy
    return record


def write_provenance(output, record: dict) -> dict:
    """Write ``record`` as the provenance of ``output`` (at :func:`provenance_path`, through a temporary name);
    returns it as written. The record also holds the output's stamp (:mod:`tomoseg.io.result_stamps`): a plain
    file's size and modification time as written (``output_file``; for a dataset of an HDF5 file, the whole
    file's), a folder's (Zarr store, slices) newest modification time inside and number of entries
    (``output_folder``): an output changed later (edited in place, or a user's own saved over tomoseg's) does not
    pass for tomoseg's by the record left beside it (:func:`written_by_tomoseg`, :func:`volume_edited`)."""
    from .result_stamps import volume_stamp

    file, dataset = _hdf5_dataset(output)
    record = {k: v for k, v in record.items() if k not in ("output_file", "output_folder")}
    record.update(volume_stamp(file, dataset))
    prov = provenance_path(output)
    tmp = prov.with_name(prov.name + ".partial")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, prov)
    return record


def _provenance_says_tomoseg(file: Path) -> bool:
    """Whether the record beside ``file`` (a file or folder, not an HDF5 dataset) marks it as tomoseg's: a
    record tomoseg wrote, and where it holds the file's size and modification time as written, the file still
    has them (records of earlier versions, and of folders, hold none)."""
    from .result_stamps import volume_changed

    record = _tomoseg_record(provenance_path(file))
    if record is None:
        return False
    return not volume_changed(record, file)


def volume_edited(output) -> bool:
    """Whether the existing volume ``output`` (a file, a folder, ``file.h5:/dataset``) has a provenance record
    of tomoseg's whose stamp it no longer matches: changed since tomoseg wrote it."""
    from .result_stamps import volume_changed

    file, _ = _hdf5_dataset(output)
    record = tomoseg_provenance(output)
    return record is not None and bool(volume_changed(record, file))


def written_by_tomoseg(file: Path, dataset: str | None, fmt: str) -> bool:
    """Whether the existing output at ``file`` (``dataset`` inside it) carries tomoseg's marker."""
    try:
        if fmt == "hdf5":  # the dataset's attribute alone: no record ever marks an HDF5 file or dataset
            import h5py

            dataset = dataset or _default_hdf5_dataset(file)
            with h5py.File(file, "r") as f:
                return dataset in f and MARK in f[dataset].attrs
        if fmt == "tiff-folder":
            only_slices = file.is_dir() and all(SLICE_RE.match(p.name) or p.name == FOLDER_MARKER
                                                for p in file.iterdir())
            return only_slices and ((file / FOLDER_MARKER).is_file() or _provenance_says_tomoseg(file))
        if fmt == "zarr":
            import zarr

            if not file.is_dir():
                return False
            return MARK in zarr.open(str(file), mode="r").attrs or _provenance_says_tomoseg(file)
        if file.is_dir():
            return False
        if _provenance_says_tomoseg(file):
            return True
        if fmt == "tiff":
            import tifffile

            with tifffile.TiffFile(file) as tif:
                return tif.pages.first.software == MARK
        if fmt == "nrrd":
            with open(file, "rb") as fh:
                return b"\n# written by tomoseg\n" in fh.read(4096)
        if fmt == "pyhst-vol":
            from .pyhst import info_path

            info = info_path(file)
            return info.is_file() and "written by tomoseg" in info.read_text(errors="replace")[:4096]
    except Exception:  # an unreadable file is not tomoseg's
        return False
    return False


def _same_shape_as(file_spec: str, shape) -> bool:
    if shape is None:
        return False
    from . import open_volume

    try:
        with open_volume(file_spec) as vol:
            return tuple(vol.shape) == tuple(shape)
    except Exception:
        return False


def _shape_of(path):
    from . import open_volume

    try:
        with open_volume(path) as vol:
            return tuple(vol.shape)
    except Exception:
        return None


def check_output(path, *, overwrite: bool, input_shape=None, input_path=None) -> None:
    """Refuse an output path whose existing content may not be replaced.

    Parameters
    ----------
    path : str or Path
        The output (``file.h5:/dataset`` names a dataset inside a file).
    overwrite : bool
        Whether the user allowed replacing tomoseg's own earlier output.
    input_shape : tuple, optional
        The input's shape: an existing foreign volume of that shape is most likely the raw scan,
        named as the output by swapped arguments, and the message says so.
    input_path : str or Path, optional
        The input, opened for its shape only when ``input_shape`` is not given and a foreign volume is found.
    """
    from . import format_of, split_dataset

    file, dataset = split_dataset(path)
    fmt = format_of(path, for_writing=True)
    check_not_in_slice_folder(path)
    if fmt == "hdf5" and file.exists():
        if not file.is_file():
            raise TomosegError(f"{file}: is not a file; choose another output path")
        if dataset is None:
            dataset = _default_hdf5_dataset(file)
        try:
            import h5py

            with h5py.File(file, "r") as f:
                exists = dataset in f
        except Exception:
            raise TomosegError(f"{file}: exists and is not a readable HDF5 file; tomoseg leaves it untouched: "
                               "choose another output path") from None
        if not exists:  # a new dataset: only in a file tomoseg created (a copy into it is not atomic)
            check_hdf5_file_of_tomoseg(file, dataset)
            return
    elif not (file.exists() or file.is_symlink()):
        return
    where = f"{file}:{dataset}" if fmt == "hdf5" else str(file)
    if volume_edited(where):
        from .result_stamps import edited_message

        raise TomosegError(edited_message(where, dataset=fmt == "hdf5"))
    mine = written_by_tomoseg(file, dataset, fmt)
    if mine:
        if not overwrite:
            raise TomosegError(f"{where}: already exists (an earlier tomoseg result); pass --overwrite to replace it")
        if fmt == "hdf5":  # tomoseg's dataset in someone's file (earlier versions added datasets to any file)
            check_hdf5_file_of_tomoseg(file, dataset)
        return
    if input_shape is None and input_path is not None:
        input_shape = _shape_of(input_path)
    if _same_shape_as(where, input_shape):
        raise TomosegError(f"{where}: already exists and holds a volume of the input's shape that tomoseg did not "
                           "write: are the input and output arguments swapped? It is left untouched (tomoseg never "
                           "replaces data it did not write, even with --overwrite); choose another output path")
    if file.is_dir():
        raise TomosegError(f"{where}: already exists as a folder that tomoseg did not write; tomoseg never "
                           "replaces a folder of other files (not even with --overwrite); choose a new output path")
    kind = "dataset" if fmt == "hdf5" else "file"
    raise TomosegError(f"{where}: already exists as a {kind} that tomoseg did not write; it is left untouched "
                       "(--overwrite replaces only tomoseg's own results); choose another output path or remove it "
                       "yourself")


def _hdf5_superblock_version(file: Path) -> int | None:
    """The version of an HDF5 file's superblock (at the file's start: tomoseg writes no user block), else None."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return None
    return head[8] if len(head) == 9 and head[:8] == b"\x89HDF\r\n\x1a\n" else None


def foreign_in_hdf5_file(file: Path, limit: int = 3) -> list[str]:
    """What makes the HDF5 ``file`` not one that tomoseg created, up to ``limit`` items (empty: tomoseg's own).

    A file of tomoseg's holds datasets only tomoseg wrote (each with the attribute ``tomoseg``), at least one,
    reached through its groups alone (no soft or external links), and has the superblock of the HDF5 1.8 file
    format that h5py writes by default (version 0; 2 and up are written by programs asking for the newest format,
    e.g. SWMR writers at beamlines, and version 3 holds the "file is open" flag that a crash leaves set)."""
    import h5py

    found: list[str] = []
    datasets = 0

    def visit(group, prefix: str) -> None:
        nonlocal datasets
        for key in group:
            if len(found) >= limit:
                return
            name = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                found.append(f"the link {name}")
                continue
            obj = group[key]
            if isinstance(obj, h5py.Group):
                visit(obj, name)
            elif isinstance(obj, h5py.Dataset):
                datasets += 1
                if MARK not in obj.attrs:
                    found.append(name)
            else:
                found.append(name)

    try:
        with h5py.File(file, "r") as f:
            visit(f, "")
    except Exception as exc:
        return [f"content tomoseg cannot read ({type(exc).__name__})"]
    if not found and not datasets:
        found.append("no dataset of tomoseg's")
    version = _hdf5_superblock_version(file)
    if (version is None or version >= 2) and len(found) < limit:
        found.append(f"a superblock of version {version}, another program's file format" if version is not None
                     else "a user block before its superblock")
    return found


def check_hdf5_file_of_tomoseg(file, dataset: str) -> None:
    """Refuse to write ``dataset`` into the existing HDF5 ``file`` unless tomoseg created the file
    (:func:`foreign_in_hdf5_file`). A dataset is added to an existing file by copying it in, which HDF5 cannot
    do atomically: a kill, power loss or full disk during the copy can leave the file with dead space, or, in
    the newer file format, flagged as open and unreadable until ``h5clear -s``. tomoseg takes that risk only
    with its own results, never with a user's raw scan or results file."""
    file = Path(file)
    foreign = foreign_in_hdf5_file(file)
    if not foreign:
        return
    leaf = [p for p in dataset.split("/") if p][-1]
    new = file.with_name(f"{file.stem}_{leaf}{file.suffix}")
    raise TomosegError(f"{file}: an HDF5 file that tomoseg did not create (it holds {', '.join(foreign)}); tomoseg "
                       "adds datasets only to HDF5 files it created, since a crash while a dataset is copied into a "
                       f"file can leave the file unreadable. Write {dataset} to a new file, e.g. {new}:{dataset}, "
                       f"and copy it in yourself if you want it there (h5copy -i {new} -s {dataset} -o {file} "
                       f"-d {dataset})")


_NUMBERED_TIFF = re.compile(r"\d+\.tiff?$", re.IGNORECASE)


def slice_folder_sample(folder: Path) -> str | None:
    """The first slice's name where ``folder`` holds a volume as 2D slices (two or more TIFF files named with a
    number at the end, the first of them one 2D image), else None. Reads one TIFF header at most."""
    found = []
    try:
        for entry in os.scandir(folder):
            if not entry.name.startswith(".") and _NUMBERED_TIFF.search(entry.name) and entry.is_file():
                found.append(entry.name)
                if len(found) >= 2:
                    break
    except OSError:
        return None
    if len(found) < 2:
        return None
    first = min(found)
    try:
        import tifffile

        with tifffile.TiffFile(folder / first) as tif:
            return first if len(tif.pages) == 1 and tif.pages.first.ndim == 2 else None
    except Exception:
        return None


def check_not_in_slice_folder(path) -> None:
    """Refuse an output (a file, a store, a table) written into a folder that holds a volume as 2D slices:
    tomoseg would then read that folder as something else (a 3D TIFF among the slices is refused), and Fiji's
    Image Sequence would take the file into the stack. (A tomoseg slice folder is an output itself: it is
    replaced whole, never written into.)"""
    from . import split_dataset

    file, _ = split_dataset(path)
    folder = file.parent
    sample = slice_folder_sample(folder) if folder.is_dir() else None
    if sample is not None:
        raise TomosegError(f"{path}: its folder {folder} holds a volume as 2D slices ({sample} ...); a file "
                           "written there would change that volume for tomoseg, Fiji's Image Sequence and other "
                           "readers: choose another folder")


def check_writable_folder(folder: Path, what: str = "output") -> None:
    """Refuse a folder that does not exist or where files cannot be created."""
    if not folder.exists():
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


def check_result_folder(folder, *, overwrite: bool, resume: str | None = None) -> Path:
    """Check a folder for a command's results (tables, JSON, figures) before the work; return it.

    A new or empty folder is fine; an earlier result folder of tomoseg (its ``.tomoseg`` marker, or a
    ``summary.json`` whose provenance names tomoseg) only with ``overwrite``; a folder of other files never,
    since its ``summary.json`` or ``objects.csv`` could be someone's own. With ``resume`` (a tool's name, e.g.
    ``"track"``) a folder whose marker says that tool wrote it is accepted too, and only such a folder: resuming
    never writes into another tool's results. :func:`make_result_folder` creates it when the results are ready.
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: is a file, not a folder; give a folder for the results")
    if out.exists() and any(out.iterdir()):
        if resume and not overwrite:
            if result_folder_tool(out) != resume:
                raise TomosegError(f"{out}: holds no interrupted {resume} run (its {FOLDER_MARKER} marker does not "
                                   f"say tomoseg {resume} wrote it); --resume continues only such a folder: pass "
                                   "--overwrite to replace an earlier tomoseg result there, or choose another folder")
        elif not overwrite:
            raise TomosegError(f"{out}: folder exists and is not empty; pass --overwrite to replace an earlier "
                               "tomoseg result there, or choose another folder")
        if not _result_folder_of_tomoseg(out):
            raise TomosegError(f"{out}: a folder of other files, not an earlier tomoseg result (no {FOLDER_MARKER} "
                               "marker); tomoseg does not write into it, even with --overwrite: choose a new folder")
        check_results_not_edited(out)
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    check_writable_folder(existing)
    return out


def check_results_not_edited(folder) -> None:
    """Refuse a result folder where a result tomoseg wrote (and stamped: :mod:`tomoseg.io.result_stamps`) has
    been changed since: an annotated ``objects.csv``, a figure retouched in place."""
    from .result_stamps import LEDGER, check_not_edited, _ledger

    out = Path(folder)
    stamped = [out / name for name in _ledger(out)] + [out / "figures" / name for name in _ledger(out / "figures")]
    check_not_edited([p for p in stamped if p.name != LEDGER])


def make_result_folder(folder, tool: str, *, fresh: bool = False, keep: tuple = ()) -> Path:
    """Create a result folder checked by :func:`check_result_folder` and mark it as tomoseg's.

    With ``fresh`` (a run that writes all its results anew: analyze, evaluate) the results an earlier tomoseg
    run left there are removed first (:func:`clear_result_folder`), except those of the tools in ``keep``
    (evaluate's results kept by an analyze of the same prediction, and the reverse: one report of both), so
    the folder and its report hold only results of this prediction."""
    out = Path(folder)
    if fresh and out.is_dir() and _result_folder_of_tomoseg(out):
        clear_result_folder(out, keep=keep)
    out.mkdir(parents=True, exist_ok=True)
    (out / FOLDER_MARKER).write_text(f"results written by tomoseg {tool}\n", encoding="utf-8")
    return out


# The figures analyze, evaluate and track write into OUT/figures, by the tool that writes them (each its own
# names: analyze's and evaluate's results share a folder), and the records and tables they write into OUT.
# Volumes written into the folder (--labels, track's maps) are not among them.
RESULT_FIGURES = {"analyze": ("fraction_along_z", "objects_3d", "orthoslices", "size_histogram",
                              "sphericity_vs_radius"),
                  "evaluate": ("confusion_matrix", "hit_map_z", "evaluate_size_histogram",
                               "evaluate_sphericity_vs_radius"),
                  "track": ("track_radius", "track_volume_change", "track_map")}
FIGURE_FORMATS = ("png", "svg", "pdf")  # report.figures.FORMATS
_RESULT_RECORDS = {"evaluation.json": "evaluate", "transform.json": "track", "track.html": "track",
                   "matches.csv": "track", "registration_crops.csv": "track", "fraction_along_z.csv": "analyze"}


def _figure_owner(name: str):
    """``(True, tool)`` for a figure file tomoseg names (PNG, SVG or PDF; its tool),
    else ``(False, None)``."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in FIGURE_FORMATS:
        return False, None
    for tool, stems in RESULT_FIGURES.items():
        if stem in stems or (stem.startswith("hit_map_z") and stem[9:].isdigit() and "hit_map_z" in stems):
            return True, tool
    return False, None


def _result_owner(p: Path):
    """``(True, tool)`` when ``p``, a file at the top of a tomoseg result folder, is one of tomoseg's results
    (by its name and, where the file says who wrote it, its content; ``tool`` None for the report), else
    ``(False, None)``."""
    name = p.name
    if name == "summary.json":
        return (True, "analyze") if str(_json_tool(p)).startswith("tomoseg") else (False, None)
    if name == "report.html":
        return (True, None) if report_of_tomoseg(p) else (False, None)
    if name == "objects.csv" or (name.startswith("objects_") and name.endswith(".csv")):
        ours = _objects_table_header(p) is True
        return (ours, ("analyze" if name == "objects.csv" else "evaluate") if ours else None)
    return (True, _RESULT_RECORDS[name]) if name in _RESULT_RECORDS else (False, None)


def _json_tool(p: Path):
    record = read_record(p) or {}
    provenance = record.get("provenance")
    return record.get("tool") or (provenance.get("tool") if isinstance(provenance, dict) else None)


def clear_result_folder(folder, *, keep: tuple = ()) -> list[Path]:
    """Remove the results an earlier tomoseg run wrote into ``folder`` (a tomoseg result folder): its
    ``summary.json``, ``evaluation.json``, ``report.html``, objects tables, track's records, and in
    ``figures/`` the figures tomoseg names (:data:`RESULT_FIGURES`, PNG, SVG, PDF), their captions with them.
    The results of the tools in ``keep`` stay (the report is always removed: it is built again). Any other file
    (a user's notes, a table or figure of another name, volumes) is kept; a result changed since tomoseg wrote
    it (:mod:`tomoseg.io.result_stamps`) is refused, with nothing removed. Returns what was removed."""
    out = Path(folder)
    gone = []
    for p in out.iterdir():
        ours, tool = _result_owner(p) if p.is_file() and not p.is_symlink() else (False, None)
        if ours and (tool is None or tool not in keep):
            gone.append(p)
    figs = out / "figures"
    if figs.is_dir() and not figs.is_symlink():
        for p in figs.iterdir():
            ours, tool = _figure_owner(p.name) if p.is_file() and not p.is_symlink() else (False, None)
            if ours and (tool is None or tool not in keep):
                gone.append(p)
    from .result_stamps import check_not_edited, forget_results

    check_not_edited(gone)  # checked before the work (check_result_folder); again: never one edited meanwhile
    for p in gone:
        p.unlink()
    forget_results(gone)
    _prune_captions(figs, {p.stem for p in gone if p.parent == figs})
    return gone


def _prune_captions(figs: Path, removed: set) -> None:
    """The captions of removed figures taken out of ``captions.json`` (the others stay with their figures)."""
    store = figs / "captions.json"
    if not removed or not store.is_file() or store.is_symlink():
        return
    try:
        captions = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        captions = None
    if not isinstance(captions, dict):
        store.unlink()
        return
    store.write_text(json.dumps({k: v for k, v in captions.items() if k not in removed}, indent=1),
                     encoding="utf-8")


def same_prediction(record: dict | None, prediction, settings: dict, *, key: str) -> bool:
    """Whether a result record (analyze's summary.json, evaluate's evaluation.json) describes ``prediction``
    (the same file, resolved) read and selected with the same ``settings`` (threshold, connectivity, border
    rule, minimum size, reading: every key of ``settings`` equal in the record's ``settings``): its results may
    then stand beside this run's in one report, as the same objects."""
    if not isinstance(record, dict) or not record.get(key) or not isinstance(record.get("settings"), dict):
        return False
    try:
        same_file = Path(str(record[key])).resolve() == Path(str(prediction)).resolve()
    except (OSError, RuntimeError):
        return False
    return same_file and all(record["settings"].get(k) == v for k, v in settings.items())


def read_record(path) -> dict | None:
    """A JSON record of a result folder, or None where missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def result_folder_tool(folder) -> str | None:
    """The tool named by a result folder's marker (``results written by tomoseg TOOL``), else None."""
    try:
        text = (Path(folder) / FOLDER_MARKER).read_text(errors="replace")
    except OSError:
        return None
    m = re.match(r"results written by tomoseg (\S+)", text)
    return m.group(1) if m else None


def _result_folder_of_tomoseg(folder: Path) -> bool:
    if (folder / FOLDER_MARKER).is_file():
        return True
    # result folders of earlier versions: their summary.json names tomoseg
    return str(_json_tool(folder / "summary.json")).startswith("tomoseg")


OBJECTS_TABLE_COLUMNS = ("label", "equivalent_radius_vox")  # the header of every objects table tomoseg writes
MATCH_TABLE_COLUMNS = ("group", "before_label")  # the header of a phantom pair's match table (--pair-matches)


def _objects_table_header(p: Path, *, raise_unreadable: bool = False, columns=OBJECTS_TABLE_COLUMNS):
    """True for an objects table tomoseg wrote (its header: ``label`` first, ``equivalent_radius_vox`` among
    the columns); else the header's columns (a list), or None for a binary file."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
        head.decode("utf-8")
        if b"\0" in head:
            return None
    except UnicodeDecodeError:
        return None
    except OSError:
        if raise_unreadable:
            raise
        return None
    header = [c.strip().strip('"') for c in head.decode("utf-8").splitlines()[0].split(",")] if head else []
    if header and header[0] == columns[0] and columns[1] in header:
        return True
    return header


def check_table_output(path, *, overwrite: bool, columns=OBJECTS_TABLE_COLUMNS,
                       what: str = "an objects table") -> None:
    """A CSV table's path: named ``.csv``; an existing file replaced only with ``overwrite``, and only if it
    is an objects table of tomoseg's (its header: ``label`` first, ``equivalent_radius_vox`` among the
    columns; or the first and second of ``columns``, e.g. :data:`MATCH_TABLE_COLUMNS` with ``what`` "a match
    table"), never a user's own table, nor a volume or other binary file named by mistake."""
    p = Path(path)
    if p.suffix.lower() != ".csv":
        raise TomosegError(f"{p}: a table is written as CSV; give a file name ending in .csv")
    check_not_in_slice_folder(p)
    if not (p.exists() or p.is_symlink()):
        check_writable_folder(p.parent)
        return
    if not overwrite:
        raise TomosegError(f"{p}: already exists; pass --overwrite to replace it")
    if not p.is_file():
        raise TomosegError(f"{p}: is not a file; choose another path for the table")
    try:
        header = _objects_table_header(p, raise_unreadable=True, columns=columns)
    except OSError as exc:
        raise TomosegError(f"{p}: cannot be read ({exc}); choose another path for the table") from None
    if header is None:
        raise TomosegError(f"{p}: exists and is not a text table (binary data: a volume?); tomoseg leaves it "
                           "untouched, even with --overwrite: choose another path")
    if header is not True:
        raise TomosegError(f"{p}: already exists and is not {what} written by tomoseg (its header "
                           f"starts {', '.join(header[:3]) or '(empty)'}); it is left untouched, even with "
                           "--overwrite: choose another path or remove it yourself")
    from .result_stamps import check_not_edited

    check_not_edited([p])


# ------------------------------------------------------------------ outputs against the inputs of one run
def _described(option: str | None, path) -> str:
    return f"{option} {path}" if option else str(path)


def _where(path) -> tuple[Path, str | None]:
    """The resolved file (symlinks, ``..`` and relative parts undone) and, for HDF5, the dataset inside it."""
    from . import split_dataset

    from .hdf5 import EXTENSIONS

    file, dataset = split_dataset(path)
    resolved = Path(file).resolve()
    if file.suffix.lower() in EXTENSIONS:
        return resolved, "/" + (dataset or _default_hdf5_dataset(file)).strip("/")
    return resolved, None


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:  # hard links: two names of one file
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs_apart(outputs, inputs=()) -> None:
    """Refuse, before any work, an output that is an input of the same run or another output of it.

    Parameters
    ----------
    outputs, inputs : iterable of (option, path)
        ``option`` names the argument in messages (``"--labels"``; None or "" for a positional one); entries
        whose path is None are left out. Paths are compared resolved (relative parts, ``..`` and symlinks undone;
        hard links count as the same file). An output inside an input folder (a folder of slices, a Zarr store),
        or a folder output holding an input, is refused too. Two outputs may share an HDF5 file as different
        datasets; any other shared path is refused.
    """
    outs = [(opt, p, *_where(p)) for opt, p in outputs if p is not None and str(p) != ""]
    ins = [(opt, p, *_where(p)) for opt, p in inputs if p is not None and str(p) != ""]
    for o_opt, o_path, o_file, _ in outs:
        for i_opt, i_path, i_file, _ in ins:
            if _same_file(o_file, i_file):
                named = f" {_described(i_opt, i_path)}" if (o_opt or i_opt) else ""
                raise TomosegError(f"{_described(o_opt, o_path)}: output path equals the input{named} (tomoseg "
                                   "never writes into the input file); choose another output path")
            if i_file in o_file.parents:
                raise TomosegError(f"{_described(o_opt, o_path)}: is inside the input folder "
                                   f"{_described(i_opt, i_path)}; writing there would change the input; choose an "
                                   "output outside it")
            if o_file in i_file.parents:
                raise TomosegError(f"{_described(o_opt, o_path)}: holds the input {_described(i_opt, i_path)}; "
                                   "replacing it would destroy the input; choose another output path")
    for k, (b_opt, b_path, b_file, b_set) in enumerate(outs):
        for a_opt, a_path, a_file, a_set in outs[:k]:
            if _same_file(a_file, b_file) and a_set == b_set:
                raise TomosegError(f"{_described(b_opt, b_path)}: the same path as {_described(a_opt, a_path)}; "
                                   "the outputs need different paths")
            if a_file in b_file.parents or b_file in a_file.parents:
                raise TomosegError(f"{_described(b_opt, b_path)} and {_described(a_opt, a_path)}: one output "
                                   "inside the other; the outputs need different paths")


def check_json_output(path, *, overwrite: bool, tool: str) -> None:
    """A JSON record's path (e.g. ``phantom --pair-truth``): named ``.json``; an existing file replaced only
    with ``overwrite``, and only if it is a record of ``tool`` (its ``"tool"`` entry), never a user's JSON."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        raise TomosegError(f"{p}: this record is written as JSON; give a file name ending in .json")
    check_not_in_slice_folder(p)
    if not (p.exists() or p.is_symlink()):
        check_writable_folder(p.parent)
        return
    if not p.is_file():
        raise TomosegError(f"{p}: is not a file; choose another path for the JSON record")
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
        mine = isinstance(record, dict) and record.get("tool") == tool
    except (OSError, ValueError):
        mine = False
    if not mine:
        raise TomosegError(f"{p}: already exists and was not written by {tool}; it is left untouched (--overwrite "
                           "replaces only tomoseg's own results); choose another path or remove it yourself")
    if not overwrite:
        raise TomosegError(f"{p}: already exists (an earlier {tool} result); pass --overwrite to replace it")
    from .result_stamps import check_not_edited

    check_not_edited([p])


REPORT_MARK = '<meta name="generator" content="tomoseg">'


def report_of_tomoseg(path) -> bool:
    """Whether the file at ``path`` is a report.html tomoseg wrote (:data:`REPORT_MARK`, or the results-folder
    note of earlier versions)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        head = ""
    legacy = head.startswith("<!DOCTYPE html><html lang='en'>") and '<p class="note">Results folder ' in head
    return p.is_file() and (REPORT_MARK in head or legacy)


def check_report_output(path) -> None:
    """``report.html`` is (re)written only where none exists or where tomoseg wrote the one there (its
    ``<meta name="generator" content="tomoseg">``, or the results-folder note of earlier versions)."""
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    if not report_of_tomoseg(p):
        raise TomosegError(f"{p}: already exists and was not written by tomoseg; it is left untouched (tomoseg "
                           "replaces only its own report); move it away or choose another results folder")
    from .result_stamps import check_not_edited

    check_not_edited([p])


def check_onnx_output(path, *, overwrite: bool, model=None) -> None:
    """An ONNX export's path: a ``.onnx`` file name in an existing folder, not the model it is exported from;
    an existing file replaced only with ``overwrite`` and only if tomoseg exported it (its metadata entry
    ``tomoseg``, :mod:`tomoseg.io.onnx_marker`)."""
    from .onnx_marker import read_marker

    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise TomosegError(f"{path}: is a folder; give a file name ending in .onnx")
    if model is not None:
        check_outputs_apart([(None, p)], inputs=[(None, model)])
    if p.suffix.lower() != ".onnx":
        raise TomosegError(f"{p}: an ONNX model is written as .onnx; give a file name ending in .onnx")
    check_writable_folder(p.parent)
    if not (p.exists() or p.is_symlink()):
        return
    if not overwrite:
        raise TomosegError(f"{p}: already exists; pass --overwrite to replace it")
    if not p.is_file() or read_marker(p) is None:
        raise TomosegError(f"{p}: already exists as a file that tomoseg did not export (no tomoseg entry in its "
                           "ONNX metadata); it is left untouched (--overwrite replaces only tomoseg's own results); "
                           "choose another output path or remove it yourself")
