"""A folder of 2D TIFF slices read as one volume, lazily, slice by slice; and written, one file per z slice.

The slices' names must follow one numbered pattern without gaps (:func:`check_slice_names`); the voxel size comes
from the first slice's ImageJ or OME metadata, z taken as x where the slices do not give it (as Fiji's File >
Import > Image Sequence does). Single multi-page files: :mod:`.tiff`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tifffile

from ..errors import TomosegError
from .tiff import EXTENSIONS, check_dtype, imagej_kwargs, voxel_size_from_tiff, warn_white_is_zero
from .volume import Sink, Volume


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def slice_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")),
                  key=_natural_key)


SLICE_BAND = 128  # rows of the bands a folder of slices keeps decoded (the labelling's chunks are 128 high)
SLICE_CACHE_BYTES = 256 << 20  # at most this much of them (per folder opened)


class _SliceStack:
    """A folder of 2D TIFF slices seen as one (z, y, x) array; reads only the slices asked for.

    A slice is decoded only as far as the file allows (``layout``, from the first slice): the rows asked for
    of an uncompressed slice (``"rows"``) are read from the file, the strips or tiles holding them of a
    compressed slice stored in several (``"segments"``); a compressed slice in one strip (``"whole"``) is
    decoded whole and the part asked for copied out at once (the plane is freed before the next slice is
    decoded). Reads narrower than a slice of compressed slices (the labelling's 128^3 chunks, the objects'
    boxes) go through a cache of decoded bands of :data:`SLICE_BAND` rows across the whole width, up to
    ``cache_bytes`` (a ``ChunkCache`` of bands): the chunks along x of one band are then decoded once, not
    once each, and a slice decoded whole yields as many of its bands as half the budget holds for the depth
    read. Uncompressed slices need no cache (a read costs its rows), and reads as wide as the slice go straight
    to the files (``segment`` keeps its own cache of those)."""

    def __init__(self, files: list[Path], shape2d, dtype, *, layout: str = "whole", offsets=None,
                 cache_bytes: int = SLICE_CACHE_BYTES):
        """``offsets``: where each uncompressed slice's data start and its byte order (None for a compressed
        one), found when the folder was opened and checked."""
        import threading

        self.files = files
        self.offsets = list(offsets) if offsets is not None else [None] * len(files)
        self.shape = (len(files),) + tuple(shape2d)
        self.dtype = np.dtype(dtype)
        self.layout = layout
        self.cache_bytes = int(cache_bytes) if layout != "rows" else 0
        self.rows_decoded = 0  # rows of slices read or decoded from the files (read-amplification checks)
        self._cache = None
        self._lock = threading.Lock()

    def __getitem__(self, key):
        zkey, ykey, xkey = key
        n, (Y, X) = len(self.files), self.shape[1:]
        if isinstance(zkey, slice):
            zs = range(n)[zkey]
        else:
            z = range(n)[zkey]  # an IndexError past the end, as an array's
            zs = range(z, z + 1)
        simple = all(isinstance(k, slice) and k.step in (None, 1) for k in (ykey, xkey))
        if simple:
            (y0, y1, _), (x0, x1, _) = ykey.indices(Y), xkey.indices(X)
            y1, x1 = max(y0, y1), max(x0, x1)
            out_shape = (len(zs), y1 - y0, x1 - x0)
        else:
            y0, y1, x0, x1 = 0, Y, 0, X
            out_shape = (len(zs),) + np.empty((Y, X), np.bool_)[ykey, xkey].shape
        if len(zs) and y1 > y0 and simple and zs.step == 1 and x1 - x0 < X and self.cache_bytes > 0:
            out = self._bands(len(zs))[zs.start:zs.stop, y0:y1, x0:x1]
        else:
            out = np.empty(out_shape, self.dtype)
            for i, z in enumerate(zs if out.size else ()):
                rows = self._read_rows(z, y0, y1, x0, x1)
                out[i] = rows if simple else rows[ykey, xkey]
        return out if isinstance(zkey, slice) else out[0]

    def _bands(self, depth: int):
        """The cache of decoded bands (made at the first narrow read), set to keep as many bands of each slice
        it decodes as half its budget holds for reads ``depth`` slices deep (at least one)."""
        from .blocks import ChunkCache, outside_heap

        Y, X = self.shape[1:]
        band = min(SLICE_BAND, Y)
        per_band = max(1, depth) * band * X * self.dtype.itemsize
        # strips or tiles: a band costs its own rows, one band a read; a slice in one piece: as many as fit
        group = 1 if self.layout != "whole" else int(max(1, min(-(-Y // band), self.cache_bytes // 2 // per_band)))
        with self._lock:
            if self._cache is None:
                self._cache = ChunkCache(_Rows(self), (1, band, X), storage=(1, Y, X), band_group=group,
                                         max_bytes=self.cache_bytes, allocate=outside_heap)
            self._cache.band_group = group
            # bands of strips or tiles: the bands of the reads in flight and the next ones; a slice in one
            # piece: its bands kept for the reads below
            self._cache.max_bytes = self.cache_bytes if self.layout == "whole" else \
                min(self.cache_bytes, 3 * per_band)
            return self._cache

    def _read_rows(self, z: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` of slice ``z``: a new array, holding no reference to the plane."""
        f = self.files[z]
        Y, X = self.shape[1:]
        if self.offsets[z] is not None:  # uncompressed, checked at open: the rows asked for, straight from the file
            row = X * self.dtype.itemsize
            try:
                with open(f, "rb") as fh:
                    fh.seek(self.offsets[z][0] + y0 * row)
                    raw = fh.read((y1 - y0) * row)
            except OSError as exc:
                raise TomosegError(f"{f}: slice cannot be read ({exc.strerror or exc})") from None
            if len(raw) < (y1 - y0) * row:
                raise TomosegError(f"{f}: slice is truncated (it ends before row {y1}); copy the file again")
            with self._lock:
                self.rows_decoded += y1 - y0
            data = np.frombuffer(raw, self.dtype.newbyteorder(self.offsets[z][1])).reshape(y1 - y0, X)
            return data[:, x0:x1].astype(self.dtype, copy=True)
        try:
            with tifffile.TiffFile(f) as tif:
                page = tif.pages.first
                if page.dtype != self.dtype:
                    raise TomosegError(f"{f}: slice is {page.dtype}, the first slice is {self.dtype}; "
                                       "all slices of a stack must have the same type")
                if tuple(page.shape) != self.shape[1:]:
                    raise TomosegError(f"{f}: slice has shape {tuple(page.shape)}, the first slice has "
                                       f"{self.shape[1:]}; all slices of a stack must have the same size")
                whole = y0 == 0 and x0 == 0 and y1 == Y and x1 == X
                decoded = Y
                if not whole and len(page.dataoffsets) > 1:  # strips or tiles: those holding the rows asked for
                    from tifffile.zarr import zarr_selection

                    with page.aszarr() as store:
                        data = np.asarray(zarr_selection(store, (slice(y0, y1), slice(x0, x1))))
                    tall = page.chunks[0]
                    decoded = min(Y, -(-y1 // tall) * tall) - y0 // tall * tall
                else:
                    plane = page.asarray()
                    data = plane if whole else plane[y0:y1, x0:x1].copy()
                    del plane
        except TomosegError:
            raise
        except Exception as exc:
            raise TomosegError(f"{f}: slice cannot be read ({exc}); the file may be truncated") from None
        with self._lock:
            self.rows_decoded += decoded
        return data


def _slice_layout(page) -> str:
    """How a slice's rows can be read (:class:`_SliceStack`): ``rows`` (uncompressed), ``segments`` (several
    strips or tiles) or ``whole``."""
    if page.is_contiguous and page.is_memmappable:
        return "rows"
    return "segments" if len(page.dataoffsets) > 1 else "whole"


class _Rows:
    """What the band cache of a :class:`_SliceStack` reads from: its files, region by region."""

    def __init__(self, stack: _SliceStack):
        self.stack, self.shape, self.dtype = stack, stack.shape, stack.dtype

    def __getitem__(self, key):
        from .blocks import outside_heap

        zs, ys, xs = key
        out = outside_heap((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop)):
            out[i] = self.stack._read_rows(z, ys.start, ys.stop, xs.start, xs.stop)
        return out


def check_slice_names(folder: Path, files: list[Path]) -> None:
    """Slices whose names carry numbers must follow one pattern and run without gaps or repeats (a constant step
    is fine): a missing slice shifted every slice above it down, a stray ``preview.tif`` every slice up, with no
    word. Names without numbers are taken in their natural order."""
    numbered = [(f, re.match(r"^(.*?)(\d+)(\D*)$", f.stem)) for f in files]
    if not any(m for _, m in numbered):
        return
    patterns: dict = {}
    for f, m in numbered:
        key = (m.group(1), m.group(3), f.suffix.lower().replace(".tiff", ".tif")) if m else None
        patterns.setdefault(key, []).append(f)
    common = max(patterns, key=lambda k: len(patterns[k]))
    stray = [f.name for k, fs in patterns.items() if k != common for f in fs]
    if stray:
        example = f"{common[0]}{'#' * 4}{common[1]}{common[2]}" if common else "a numbered name"
        raise TomosegError(f"{folder}: holds {', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''}, which "
                           f"{'does' if len(stray) == 1 else 'do'} not follow the slices' names ({example}): it would "
                           "be read as a slice and shift the others; move it out of the folder")
    numbers = sorted((int(m.group(2)), f.name) for f, m in numbered)
    for (a, fa), (b, fb) in zip(numbers, numbers[1:]):
        if a == b:
            raise TomosegError(f"{folder}: slices {fa} and {fb} carry the same number {a}; keep one of them")
    steps = {b - a for (a, _), (b, _) in zip(numbers, numbers[1:])}
    if len(steps) > 1:
        step = min(steps)
        have = {n for n, _ in numbers}
        missing = [n for n in range(numbers[0][0], numbers[-1][0] + 1, step) if n not in have]
        raise TomosegError(f"{folder}: slice numbers {numbers[0][0]}-{numbers[-1][0]} have gaps (missing "
                           f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}): the slices "
                           "above a gap would sit one slice too low; restore the missing slices or give a folder "
                           "without gaps")


def open_tiff_folder(folder: Path) -> Volume:
    files = slice_files(folder)
    if not files:
        raise TomosegError(f"{folder}: folder holds no .tif/.tiff slices")
    shapes = {}
    voxel_size = None
    dtype = None
    offsets: list = []  # where each uncompressed slice's data start, and its byte order (None: compressed)
    for i, f in enumerate(files):
        try:
            with tifffile.TiffFile(f) as tif:
                page = tif.pages.first
                if len(tif.pages) > 1:  # a 3D TIFF among the slices (tifffile reads the next page's offset only)
                    raise TomosegError(f"{folder}: holds the multi-page (3D) TIFF {f.name} ({len(tif.pages)} slices), "
                                       "not a folder of 2D slices; give the file itself"
                                       + (f" ({f})" if len(files) == 1 else ", or a folder of 2D slices only"))
                shapes.setdefault(tuple(page.shape), f)
                offsets.append((page.dataoffsets[0], tif.byteorder) if _slice_layout(page) == "rows" else None)
                if i == 0:
                    dtype = page.dtype
                    layout = _slice_layout(page)
                    voxel_size, assumed = voxel_size_from_tiff(tif, folder, folder=True)
                    photometric = page.photometric
                    if len(page.shape) != 2:
                        raise TomosegError(f"{f}: slice has shape {page.shape}; a folder of slices needs 2D "
                                           "grayscale images")
                if page.dtype != dtype:
                    raise TomosegError(f"{folder}: slices differ in data type: {files[0].name} is {dtype}, "
                                       f"{f.name} is {page.dtype}; all slices of a stack must have the same type")
        except TomosegError:
            raise
        except Exception as exc:
            raise TomosegError(f"{f}: is not a readable TIFF slice ({exc})") from None
        if len(shapes) > 1:
            (s0, f0), (s1, f1) = list(shapes.items())[:2]
            raise TomosegError(f"{folder}: slices differ in size: {f0.name} is {s0}, {f1.name} is {s1}; "
                               "all slices of a stack must have the same size")
    check_slice_names(folder, files)  # after each file's own check: a 3D TIFF among them is named as such
    shape2d = next(iter(shapes))
    vol = Volume(_SliceStack(files, shape2d, dtype, layout=layout, offsets=offsets), path=folder,
                 format="tiff-folder", voxel_size=voxel_size, chunks=(1,) + shape2d)
    vol.voxel_size_note = assumed
    warn_white_is_zero(photometric, folder)
    return vol


class _SliceWriter:
    def __init__(self, folder: Path, shape, dtype, voxel_size):
        from .output_guard import FOLDER_MARKER, MARK
        from .disk_space import reserve

        self.folder, self.shape, self.dtype = folder, tuple(shape), np.dtype(dtype)
        folder.mkdir(parents=True)
        (folder / FOLDER_MARKER).write_text("a volume written by tomoseg: one TIFF per z slice\n", encoding="utf-8")
        digits = max(4, len(str(shape[0] - 1)))
        self.files = [folder / f"slice_{z:0{digits}d}.tif" for z in range(shape[0])]
        kwargs = imagej_kwargs(voxel_size)
        kwargs["metadata"] = {k: v for k, v in kwargs["metadata"].items() if k != "axes"}
        for f in self.files:
            m = tifffile.memmap(f, shape=self.shape[1:], dtype=self.dtype, imagej=True, software=MARK, **kwargs)
            del m
            reserve(f, f.stat().st_size)

    def __setitem__(self, key, value):
        zkey, ykey, xkey = key
        zs = range(self.shape[0])[zkey] if isinstance(zkey, slice) else [zkey]
        value = np.broadcast_to(np.asarray(value, self.dtype),
                                (len(zs),) + np.empty(self.shape[1:], np.bool_)[ykey, xkey].shape)
        for i, z in enumerate(zs):
            mm = tifffile.memmap(self.files[z], mode="r+")
            mm[ykey, xkey] = value[i]
            mm.flush()
            del mm


def create_tiff_folder(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None) -> Sink:
    check_dtype(dtype)
    return Sink(_SliceWriter(tmp, shape, dtype, voxel_size))
