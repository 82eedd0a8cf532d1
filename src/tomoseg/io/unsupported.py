"""What to do with an input tomoseg does not read: a conversion route for each format met at beamlines and in
the labs around them (raw binary, MRC, NIfTI, MetaImage, Amira, EDF, Zeiss TXM, DICOM, PNG slices, zipped or
gzipped files, .npz archives), named in the message that refuses it (docs/bad-inputs.md, readers review IN11)."""

from __future__ import annotations

import re
from pathlib import Path

_NRRD_FOR_RAW = ("a raw file has no header, so its size, type and byte order are unknown; describe it with a "
                 "detached NRRD header beside it, which tomoseg reads (the raw data in place, not copied), e.g. "
                 "printf 'NRRD0004\\ntype: uint16\\ndimension: 3\\nsizes: X Y Z\\nendian: little\\nencoding: "
                 "{encoding}\\nspacings: 0.65 0.65 0.65\\nunits: \"um\" \"um\" \"um\"\\ndata file: {name}\\n' > "
                 "{stem}.nhdr with your type (uint8, uint16, float32 ...), sizes (x fastest, then y, then z) and "
                 "voxel size (add 'byte skip: N' for a header of N bytes), then give {stem}.nhdr")
_SITK = ("convert it to NRRD, which keeps the voxel size, e.g. python -c \"import SimpleITK as s; "
         "s.WriteImage(s.ReadImage('{name}'), '{stem}.nrrd')\" (or 3D Slicer: Save as .nrrd), then give "
         "{stem}.nrrd")
_HINTS = {
    ".raw": _NRRD_FOR_RAW, ".bin": _NRRD_FOR_RAW, ".dat": _NRRD_FOR_RAW, ".img": _NRRD_FOR_RAW,
    ".raw.gz": _NRRD_FOR_RAW,
    ".mrc": "an MRC volume (IMOD, cryo-ET): convert it, e.g. python -c \"import mrcfile, numpy; "
            "numpy.save('{stem}.npy', mrcfile.mmap('{name}', mode='r').data)\" and pass its voxel size "
            "(mrcfile's voxel_size, in Å) as --voxel-size Z Y X, or IMOD's mrc2tif",
    ".nii": "a NIfTI volume: " + _SITK, ".nii.gz": "a NIfTI volume: " + _SITK,
    ".mhd": "a MetaImage volume (ITK): " + _SITK, ".mha": "a MetaImage volume (ITK): " + _SITK,
    ".am": "an Amira/Avizo volume: save it from Amira/Avizo as a 3D TIFF (Export Data As), then give the .tif",
    ".edf": "an ESRF EDF image: convert the scan to HDF5 with silx (silx convert), or a single volume with "
            "python -c \"import fabio, numpy; numpy.save('{stem}.npy', fabio.open('{name}').data)\"",
    ".txm": "a Zeiss TXM volume: export it as TIFF in the Zeiss software, or convert it with dxchange "
            "(dxchange.read_txm) and numpy.save",
    ".txrm": "Zeiss TXRM projections: reconstruct them first and give the reconstruction as TIFF",
    ".dcm": "a DICOM file: convert the whole series to NRRD (SimpleITK's ImageSeriesReader, or 3D Slicer: Save as "
            ".nrrd), then give the .nrrd",
    ".npz": "",  # :func:`npz_message`
    ".zip": "a zip archive without a Zarr store in it (a zipped Zarr store is read as it is): unzip it and give "
            "the volume inside",
    ".gz": "a gzip-compressed file: decompress it first (gunzip -k {name}) and give {stem}",
    ".png": "a 2D image; tomoseg reads 3D volumes: put the slices in a folder and save them as one TIFF stack "
            "(Fiji: File > Import > Image Sequence, then File > Save As > Tiff)",
}
for _e in (".jpg", ".jpeg", ".bmp", ".jp2", ".j2k"):
    _HINTS[_e] = _HINTS[".png"]
_HINTS[".rec"] = _HINTS[".mrc"]
_HINTS[".ima"] = _HINTS[".dcm"]

# what a folder of slices in another format holds, and what to do with it
_FOLDER_HINTS = {
    ".png": "save them as one TIFF stack (Fiji: File > Import > Image Sequence, then File > Save As > Tiff)",
    ".dcm": "convert the DICOM series to NRRD (SimpleITK's ImageSeriesReader, or 3D Slicer: Save as .nrrd)",
    ".edf": "convert them to HDF5 with silx (silx convert), or to TIFF slices",
}
for _e in (".jpg", ".jpeg", ".bmp", ".jp2", ".j2k", ".tga", ".gif"):
    _FOLDER_HINTS[_e] = _FOLDER_HINTS[".png"]
_FOLDER_HINTS[".ima"] = _FOLDER_HINTS[".dcm"]


def extension(path: Path) -> str:
    """The extension that names the format: ``.nii.gz``, ``.zarr.zip``, ``.raw.gz``, else the last suffix."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in (".gz", ".zip", ".bz2"):
        two = "".join(suffixes[-2:])
        if two in _HINTS:
            return two
    return Path(path).suffix.lower()


def npz_message(path: Path) -> str:
    """A ``.npz`` archive: which arrays it holds (the zip's listing; nothing is unpickled) and how to save one."""
    try:
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
    except Exception:
        names = []
    name = names[0] if names else "NAME"
    held = f"holds the arrays {', '.join(names[:8])}" if names else "holds several arrays"
    return (f"{path}: is a NumPy .npz archive, which {held}; tomoseg reads one volume per .npy: save the one to "
            f"read, e.g. python -c \"import numpy; numpy.save('{path.with_suffix('').name}.npy', "
            f"numpy.load('{path.name}')['{name}'])\"")


def unknown_format_message(path: Path, supported: str) -> str:
    """The message refusing the input ``path`` of a format tomoseg does not read, with what to do."""
    path = Path(path)
    ext = extension(path)
    if ext == ".npz":
        return npz_message(path)
    hint = _HINTS.get(ext)
    shown = "".join(path.suffixes[-2:]).lower() if ext in (".gz", ".zip") and len(path.suffixes) > 1 else ext
    base = f"{path}: unknown volume format {shown or '(no extension)'!r}"
    if hint is None:
        return f"{base}; supported: {supported}"
    stem = path.name[:-len(ext)] if path.name.lower().endswith(ext) else path.stem
    hint = hint.format(name=path.name, stem=stem, encoding="gzip" if ext == ".raw.gz" else "raw")
    return f"{base}: {hint}. tomoseg reads {supported}"


def folder_message(folder: Path) -> str | None:
    """For a folder without TIFF slices that holds slices of another format (PNG, DICOM, EDF ...): the message
    naming what it holds and how to convert them; None otherwise (the TIFF reader says what is wrong)."""
    counts: dict[str, int] = {}
    try:
        for entry in Path(folder).iterdir():
            ext = entry.suffix.lower()
            if ext in (".tif", ".tiff"):
                return None
            if entry.is_file() and ext in _FOLDER_HINTS:
                counts[ext] = counts.get(ext, 0) + 1
    except OSError:
        return None
    if not counts:
        return None
    ext = max(counts, key=counts.get)
    found = ", ".join(f"{n} {e} files" for e, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"{folder}: holds no .tif/.tiff slices but {found}; tomoseg reads folders of TIFF slices: "
            f"{_FOLDER_HINTS[ext]}")


_DATA_URL = re.compile(r"^(?:silx:(?://)?)?(?P<file>.+?)\?(?:.*&)?path=(?P<dataset>[^&]*)", re.IGNORECASE)


def data_url_message(text: str) -> str | None:
    """A silx data URL (``silx:FILE?path=/DATASET``, ``FILE?path=/DATASET``), as nabu, tomwer and silx view show
    them (review RD6): tomoseg names a dataset as ``FILE:/DATASET``, said with the path to give; None otherwise."""
    m = _DATA_URL.match(str(text))
    if m is None:
        return None
    dataset = "/" + m.group("dataset").lstrip("/")
    return (f"{text}: is a silx data URL; tomoseg names a dataset inside a file as FILE:/DATASET: give "
            f"{m.group('file')}:{dataset}")


def glob_message(path: Path) -> str | None:
    """A path with a shell wildcard that matched nothing (quoted, or from a config): tomoseg does not expand it."""
    text = str(path)
    if not any(c in text for c in "*?["):
        return None
    return (f"{path}: no such file; tomoseg does not expand wildcards (*, ?, [...]): give the folder that holds "
            f"the slices ({Path(text).parent}) or one file")
