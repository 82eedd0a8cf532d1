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

Room for an output (free space, file-size limit, a writable folder) is :mod:`tomoseg.io.disk_space`'s; result
folders (``--out``) are :mod:`tomoseg.io.result_folders`'.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import TomosegError
from .disk_space import check_writable_folder

MARK = "tomoseg"
WORK_SUFFIX = ".tomoseg-run"  # the work folder of a segment run, beside its output, until the run finishes
FOLDER_MARKER = ".tomoseg"
SLICE_RE = re.compile(r"^slice_\d+\.tif$")


PROVENANCE_SUFFIX = ".provenance.json"


def read_record(path) -> dict | None:
    """A JSON record of a result folder, or None where missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


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
    record.update(_where_run(output, record))
    prov = provenance_path(output)
    tmp = prov.with_name(prov.name + ".partial")
    from .result_folders import strict_json

    tmp.write_text(strict_json(record, indent=1), encoding="utf-8")
    os.replace(tmp, prov)
    return record


def _where_run(output, record: dict) -> dict:
    """The folder the run was started from (``working_directory``) and, under ``resolved_paths``, the record's
    paths as the files they name (absolute, links followed; a dataset inside kept after the file): the paths
    elsewhere in the record stay as the user gave them, which may be relative to that folder."""
    resolved = {"output": resolved_name(output)}
    for key in ("input", "labelled_from"):
        if isinstance(record.get(key), (str, os.PathLike)):
            resolved[key] = resolved_name(record[key])
    model = record.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), (str, os.PathLike)):
        resolved["model"] = resolved_name(model["path"])
    outputs = record.get("outputs")
    if isinstance(outputs, dict):
        resolved["outputs"] = {k: resolved_name(v) if isinstance(v, (str, os.PathLike)) else v
                               for k, v in outputs.items()}
    return {"working_directory": os.getcwd(), "resolved_paths": resolved}


def resolved_name(path) -> str:
    """``path`` absolute and with links followed, a dataset, level or series inside it (``file.h5:/data``)
    kept after the file: which file a record means, from any folder."""
    from . import split_dataset

    file, dataset = split_dataset(path)
    try:
        full = str(Path(file).expanduser().resolve())
    except (OSError, RuntimeError):  # a loop of links: the absolute path as written
        full = os.path.abspath(file)
    return full + (f":{dataset}" if dataset else "")


def volume_edited(output) -> bool:
    """Whether the existing volume ``output`` (a file, a folder, ``file.h5:/dataset``) has a provenance record
    of tomoseg's whose stamp it no longer matches: changed since tomoseg wrote it."""
    return _record_state(output)[1]


def _record_state(output) -> tuple[bool, bool]:
    """For the existing volume ``output``: whether a provenance record of tomoseg's lies beside it, and whether
    the volume changed since (its stamp in the record no longer matches; records of earlier versions hold no
    stamp: unchanged). One read of the record, one walk of a folder's tree."""
    from .result_stamps import volume_changed

    file, _ = _hdf5_dataset(output)
    record = tomoseg_provenance(output)
    return record is not None, record is not None and bool(volume_changed(record, file))


def written_by_tomoseg(file: Path, dataset: str | None, fmt: str, *, record_says_so: bool | None = None) -> bool:
    """Whether the existing output at ``file`` (``dataset`` inside it) carries tomoseg's marker.
    ``record_says_so``: whether a record of tomoseg's beside ``file`` (a file or folder, not an HDF5 dataset)
    marks it, the file unchanged since (:func:`_record_state`); records of earlier versions, and of folders,
    hold no stamp; None: read here."""
    if record_says_so is None and fmt != "hdf5":
        has_record, edited = _record_state(file)
        record_says_so = has_record and not edited
    try:
        if fmt == "hdf5":  # the dataset's attribute alone: no record ever marks an HDF5 file or dataset
            import h5py

            dataset = dataset or _default_hdf5_dataset(file)
            with h5py.File(file, "r") as f:
                return dataset in f and MARK in f[dataset].attrs
        if fmt == "tiff-folder":
            only_slices = file.is_dir() and all(SLICE_RE.match(p.name) or p.name == FOLDER_MARKER
                                                for p in file.iterdir())
            return only_slices and ((file / FOLDER_MARKER).is_file() or record_says_so)
        if fmt == "zarr":
            import zarr

            if not file.is_dir():
                return False
            return MARK in zarr.open(str(file), mode="r").attrs or record_says_so
        if file.is_dir():
            return False
        if record_says_so:
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
    has_record, edited = _record_state(where)
    if edited:
        from .result_stamps import edited_message

        raise TomosegError(edited_message(where, dataset=fmt == "hdf5"))
    mine = written_by_tomoseg(file, dataset, fmt, record_says_so=has_record)
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
