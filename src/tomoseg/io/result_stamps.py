"""Stamps of what tomoseg wrote (size and modification time), so that ``--overwrite`` never replaces a result
edited since.

``--overwrite`` replaces only tomoseg's own results, known by their name, header or marker; a result edited in
place keeps those (an annotated ``objects.csv`` keeps its header, a figure retouched in Inkscape its name, a
mask corrected in h5py its attribute). So at each write tomoseg notes what it left, at a cost bounded by the
number of files, never their bytes:

==========================  =================================================================================
table, figure, JSON, report  its size and modification time in the ledger of its folder, ``.tomoseg-stamps.json``
                             (:func:`stamp_results`)
volume file (TIFF, NPY ...)  its size and modification time in its provenance record (``output_file``)
Zarr store, folder of        the newest modification time of any file or folder inside, and their number
slices                       (``output_folder``, :func:`tree_stamp`): editing a chunk in place, or adding one,
                             changes them
HDF5 dataset                 the whole file's size and modification time (``output_file``), kept current by
                             each of tomoseg's writes into the file (:func:`restamp_hdf5_records`): another
                             program's write into the file changes them
==========================  =================================================================================

A result whose stamp no longer matches was changed by someone else: it is refused, naming it
(:func:`check_not_edited`). Results without a stamp (written by earlier versions) are judged as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import TomosegError

LEDGER = ".tomoseg-stamps.json"


def file_stamp(path) -> dict | None:
    """``{"bytes", "mtime_ns"}`` of a file, or None where it is missing or not a plain file."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns} if p.is_file() and not p.is_symlink() else None


def tree_stamp(folder) -> dict | None:
    """``{"newest_mtime_ns", "entries"}`` of a folder: the newest modification time of the folder and of every
    file and folder inside it, and how many there are (one ``stat`` each: a 100 GB Zarr store of 1 MiB chunks is
    about 100,000 of them)."""
    root = Path(folder)
    try:
        newest = root.stat().st_mtime_ns
    except OSError:
        return None
    count = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            return None
        for entry in entries:
            count += 1
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                return None
            newest = max(newest, st.st_mtime_ns)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return {"newest_mtime_ns": newest, "entries": count}


# ------------------------------------------------------------------ the ledger of a folder's results
def _ledger(folder: Path) -> dict:
    try:
        data = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_ledger(folder: Path, data: dict) -> None:
    path = folder / LEDGER
    if not data:
        path.unlink(missing_ok=True)
        return
    tmp = folder / f"{LEDGER}.{os.getpid()}.partial"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _by_folder(paths) -> dict:
    groups: dict = {}
    for p in paths:
        p = Path(p)
        groups.setdefault(p.parent, []).append(p)
    return groups


def stamp_results(paths) -> None:
    """Note the size and modification time of each file in ``paths`` (just written by tomoseg) in the ledger of
    its folder; a path that is not a file now is taken out of the ledger."""
    for folder, files in _by_folder(paths).items():
        data = _ledger(folder)
        for p in files:
            stamp = file_stamp(p)
            if stamp is None:
                data.pop(p.name, None)
            else:
                data[p.name] = stamp
        _save_ledger(folder, data)


def forget_results(paths) -> None:
    """Take ``paths`` (removed by tomoseg) out of their folders' ledgers."""
    for folder, files in _by_folder(paths).items():
        data = _ledger(folder)
        if any(p.name in data for p in files):
            for p in files:
                data.pop(p.name, None)
            _save_ledger(folder, data)


def edited_results(paths) -> list[Path]:
    """The files of ``paths`` that tomoseg stamped and that have changed since (edited, or another file saved
    there); files without a stamp are not among them."""
    edited = []
    for folder, files in _by_folder(paths).items():
        data = _ledger(folder)
        for p in files:
            if p.name in data and (p.exists() or p.is_symlink()) and file_stamp(p) != data[p.name]:
                edited.append(p)
    return edited


def edited_message(path, dataset: bool = False) -> str:
    what = ("its file changed since tomoseg last wrote into it (the file's size or modification time are not "
            "those tomoseg noted: this dataset or another edited by hand or by another program?)" if dataset else
            "changed since tomoseg wrote it (its size or modification time are not those tomoseg noted: edited "
            "by hand or by another program?)")
    return (f"{path}: {what}; tomoseg does not replace it, even with --overwrite: move it away (or rename it) to "
            "keep the changes, then run again")


def check_not_edited(paths) -> None:
    """Refuse, naming the first of them, when any of ``paths`` is a result of tomoseg's edited since."""
    edited = edited_results(paths)
    if edited:
        more = f" ({len(edited) - 1} more changed files there)" if len(edited) > 1 else ""
        raise TomosegError(edited_message(edited[0]) + more)


# ------------------------------------------------------------------ volumes: stamps in their provenance record
def volume_stamp(file: Path, dataset: str | None) -> dict:
    """The stamp a volume's provenance record holds: ``output_file`` for a file (for an HDF5 dataset: the whole
    file's), ``output_folder`` for a Zarr store or a folder of slices; empty where there is nothing to stamp."""
    if file.is_symlink():
        return {}
    if file.is_dir():
        stamp = tree_stamp(file)
        return {"output_folder": stamp} if stamp else {}
    stamp = file_stamp(file)
    return {"output_file": stamp} if stamp else {}


def volume_changed(record: dict, file: Path) -> bool | None:
    """Whether the volume at ``file`` differs from the stamp in its ``record``: None where the record holds no
    stamp (records of earlier versions)."""
    if isinstance(record.get("output_file"), dict):
        stamp = file_stamp(file)
        want = record["output_file"]
        return stamp is None or (stamp["bytes"], stamp["mtime_ns"]) != (want.get("bytes"), want.get("mtime_ns"))
    if isinstance(record.get("output_folder"), dict):
        return tree_stamp(file) != record["output_folder"] if file.is_dir() else True
    return None


def restamp_hdf5_records(file: Path, before: dict | None) -> None:
    """After tomoseg wrote into the HDF5 ``file``: the records of its other datasets that held the file's stamp
    ``before`` this write (tomoseg was the file's last writer) get the new one, so tomoseg's own write does not
    make them look edited; records holding another stamp (the file was changed by someone else) keep theirs."""
    from .output_guard import PROVENANCE_SUFFIX, read_record

    now = file_stamp(file)
    if before is None or now is None:
        return
    for rec_path in file.parent.glob(f"{glob_escape(file.name)}#*{PROVENANCE_SUFFIX}"):
        record = read_record(rec_path)
        if record is not None and record.get("output_file") == before:
            record["output_file"] = now
            tmp = rec_path.with_name(rec_path.name + ".partial")
            from .result_folders import strict_json

            tmp.write_text(strict_json(record, indent=1), encoding="utf-8")
            os.replace(tmp, rec_path)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
