"""TIFF: one multi-page file, with ImageJ voxel-size metadata (a folder of 2D slices: :mod:`.tiff_folder`).

Reading is lazy: uncompressed contiguous files are memory-mapped; compressed
ones are read page by page through tifffile's zarr store. Writing uses
tifffile memory maps of ImageJ-style files, so Fiji opens them at scale
(``spacing`` for z, the resolution tags for y and x, ``unit: nm``). Past
4 GiB (:data:`BIGTIFF_BYTES`) ImageJ files cannot exist; those outputs are
OME BigTIFF: the OME-XML ``<Pixels>`` carry PhysicalSizeX/Y/Z in nm (read by
Bio-Formats, hence Fiji, and by tomoseg) and the resolution tags carry pixels
per centimetre for x and y (ResolutionUnit 3) for plain TIFF readers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import numpy as np
import tifffile

from ..errors import TomosegError, install_hint, warn
from ..errors import note as say
from .units import nm_per_unit
from .volume import ReleasingMap, Sink, Squeezed, Volume

EXTENSIONS = (".tif", ".tiff")
_IMAGEJ_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}
NM_PER_CM = 1e7


def voxel_size_from_tiff(tif: tifffile.TiffFile, path: Path, *, folder: bool = False, series_index: int = 0):
    """(z, y, x) in nm and a note when a size was assumed (None where all three are given).

    OME-XML ``<Pixels>`` first; then ImageJ's description (its ``unit``, tomoseg's older JSON description alike)
    with the resolution tags; then, in a plain TIFF, resolution tags in pixels per centimetre (ResolutionUnit 3,
    which tomoseg's BigTIFF outputs carry for plain TIFF readers; pixels per inch are ignored, 72 dpi defaults
    are common). z where the file does not give it, as Fiji reads it: a multi-page ImageJ stack without
    ``spacing`` has 1.0 of its unit (ImageJ leaves ``spacing`` out when it is 1); a folder of 2D slices takes
    z = x (File > Import > Image Sequence does); a plain multi-page TIFF has no z (voxel size unknown)."""
    ome = _ome_voxel_size(tif, series_index)
    if ome is not None:
        return ome, None
    series = tif.series[series_index] if tif.series else None
    page = series.keyframe if series is not None else tif.pages.first
    imagej = tif.imagej_metadata
    ij = imagej or _shaped_metadata(tif)
    unit = ij.get("unit")
    factor = nm_per_unit(unit)
    if unit is None and int(getattr(page, "resolutionunit", 0) or 0) == 3:
        unit, factor = "cm", NM_PER_CM  # resolution tags in pixels per centimetre, no unit in a description
    if factor is None:
        return None, None
    try:
        xres = page.tags["XResolution"].value
        yres = page.tags["YResolution"].value
    except KeyError:
        return None, None
    note = None
    try:
        x = xres[1] / xres[0] * factor
        y = yres[1] / yres[0] * factor
        if "spacing" in ij:
            z = float(ij["spacing"]) * factor
        elif folder:
            z = x
            note = (f"{path}: the slices give no z spacing (2D images carry none): z taken equal to x ({x:g} nm), "
                    "as Fiji's File > Import > Image Sequence does; pass --voxel-size Z Y X if the slices are "
                    "spaced otherwise")
        elif imagej:
            z = factor  # ImageJ's voxel depth when its description has no spacing
            note = (f"{path}: its ImageJ description gives no z spacing (ImageJ leaves it out when it is 1): z taken "
                    f"as 1 {unit} ({z:g} nm), as ImageJ and Fiji read it (x is {x:g} nm); pass --voxel-size Z Y X "
                    "if the slices are spaced otherwise")
        elif unit == "cm":
            return None, (f"{path}: its resolution tags give y {y:g} nm and x {x:g} nm (pixels per centimetre) but "
                          f"no z spacing: voxel size unknown; pass --voxel-size Z {y:g} {x:g} with the slices' "
                          "spacing Z in nm")
        else:
            z = x
            note = (f"{path}: its description gives no z spacing: z taken equal to x ({x:g} nm); pass "
                    "--voxel-size Z Y X if the slices are spaced otherwise")
    except (ZeroDivisionError, TypeError, ValueError, IndexError, OverflowError):
        return None, None  # resolution 0 or unparsable spacing: no voxel size (the caller warns)
    return (z, y, x), note


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_pixels(tif: tifffile.TiffFile, series_index: int) -> dict | None:
    """The attributes of the OME-XML ``<Pixels>`` element of the image that series ``series_index`` holds
    (tifffile makes one series per ``<Image>``, in order; matched by name where the counts differ)."""
    import xml.etree.ElementTree as ET

    text = tif.ome_metadata
    if not text:
        return None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    images = [el for el in root if _local(el.tag) == "Image"]
    series = tif.series[series_index] if series_index < len(tif.series) else None
    name = getattr(series, "name", None)
    if len(images) != len(tif.series) and name:
        images = [el for el in images if el.get("Name") == name][:1]
        series_index = 0
    if not 0 <= series_index < len(images):
        return None
    pixels = next((el for el in images[series_index] if _local(el.tag) == "Pixels"), None)
    return dict(pixels.attrib) if pixels is not None else None


def _ome_voxel_size(tif: tifffile.TiffFile, series_index: int):
    """(z, y, x) in nm from the Pixels of the series read: each PhysicalSize with its own unit, µm where the unit
    is left out (OME's default); None unless all three are given in known units."""
    pixels = _ome_pixels(tif, series_index)
    if not pixels:
        return None
    sizes = {}
    for ax in "XYZ":
        value = pixels.get(f"PhysicalSize{ax}")
        factor = nm_per_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
        if value is None or factor is None:
            return None
        try:
            sizes[ax] = float(value) * factor
        except ValueError:
            return (float("nan"),) * 3  # present but unusable: reported as not valid; --voxel-size overrides
    return (sizes["Z"], sizes["Y"], sizes["X"])


def _shaped_metadata(tif) -> dict:
    """The JSON description tomoseg wrote into BigTIFF files before they were OME-TIFF (tifffile's shaped
    metadata: ``spacing`` and ``unit``, with the resolution tags in that unit per pixel); still read."""
    try:
        meta = tif.shaped_metadata
        return dict(meta[0]) if meta and isinstance(meta[0], dict) else {}
    except Exception:
        return {}


def _full_series(tif, index: int):
    """Series ``index`` of ``tif`` with its axes of length 1 (what :func:`_shape_axes` reads). tifffile before
    2026.5.2 keeps both shapes in one series (``get_shape(False)``); from 2026.5.2 on, ``tif.series`` is called
    for a series without its axes squeezed (``get_shape`` is gone)."""
    series = tif.series
    return series(squeeze=False)[index] if callable(series) else series[index]


def _shape_axes(series) -> tuple[tuple, str]:
    """The full (unsqueezed) shape and axes of a series from :func:`_full_series`, in either tifffile."""
    if hasattr(series, "get_shape"):
        return tuple(int(v) for v in series.get_shape(False)), series.get_axes(False)
    return tuple(int(v) for v in series.shape), series.axes


def _kept_axes(series) -> tuple[tuple, list[int]]:
    """The full (unsqueezed) shape of a series from :func:`_full_series` and the axes that make the volume: every
    axis longer than 1, and y and x; a z of length 1 stays where the rest would be 2D (a one-slice volume), never t,
    c or samples of 1."""
    full, axes = _shape_axes(series)
    keep = [i for i, (a, n) in enumerate(zip(axes, full)) if n != 1 or a in "YX"]
    if len(keep) == 2 and "Z" in axes:
        keep = sorted(keep + [axes.index("Z")])
    return full, keep


def _describe_series(tif) -> str:
    parts = []
    for i, s in enumerate(tif.series):
        full, keep = _kept_axes(_full_series(tif, i))
        name = f" {s.name!r}" if getattr(s, "name", "") else ""
        parts.append(f"{i}: {' × '.join(str(full[k]) for k in keep)}{name}")
    return "; ".join(parts)


def _pick_series(tif, path: Path, series_index: int | None) -> tuple[int, str | None]:
    """Which series to read: the one named (``file.tif:N``), the only one, or the largest 3D one (a thumbnail or a
    preview beside the volume is smaller); two 3D series of the same size are refused, listed."""
    n = len(tif.series)
    if series_index is not None:
        if not 0 <= series_index < n:
            raise TomosegError(f"{path}: has no series {series_index}; it holds {n} "
                               f"({_describe_series(tif)}): name one as {path}:N")
        return series_index, (f"series {series_index} of {n}, as named ({_describe_series(tif)})" if n > 1 else None)
    if n <= 1:
        return 0, None
    sizes = []
    for i in range(n):
        full, keep = _kept_axes(_full_series(tif, i))
        if len(keep) == 3:
            sizes.append((int(np.prod([full[k] for k in keep])), i))
    if not sizes:
        return 0, None  # none is 3D: the first is refused as what it is
    largest = max(sizes)[0]
    best = [i for size, i in sizes if size == largest]
    if len(best) > 1:
        raise TomosegError(f"{path}: holds {n} images (series {_describe_series(tif)}) and {len(best)} of them are "
                           f"volumes of the same size; name the one to read as {path}:N (e.g. {path}:{best[0]})")
    return best[0], (f"the file holds {n} images (series {_describe_series(tif)}); series {best[0]}, the "
                     f"largest, is read: name another as {path}:N")


def _check_codec(series, path: Path) -> None:
    """Refuse, at open, data compressed with a codec that tifffile decodes only with imagecodecs (LZW, JPEG, ...)."""
    page = series.keyframe
    compression = getattr(page, "compression", 1)
    predictor = getattr(page, "predictor", 1)
    missing = []
    if compression not in tifffile.TIFF.DECOMPRESSORS:
        missing.append(f"{getattr(compression, 'name', compression)} compression")
    if predictor not in tifffile.TIFF.PREDICTORS:
        missing.append(f"the {getattr(predictor, 'name', predictor)} predictor")
    if missing:
        raise TomosegError(f"{path}: is saved with {' and '.join(missing)}, which tifffile reads only with the "
                           f"imagecodecs package: {install_hint('imagecodecs')}, or save the stack "
                           "uncompressed or with deflate (zip) or zstd compression")


class _OffsetsPastTheEnd(logging.Handler):
    """Collects what tifffile logs (and does not raise) while it parses a file: an IFD or a tag's value at an
    offset past the file's end, which a truncated file has. tifffile then drops the pages or tags it cannot
    reach, so the file reads as a shorter stack (or another series is taken for the largest)."""

    PATTERN = re.compile(r"invalid (page|value) offset (\d+)")

    def __init__(self, size: int):
        super().__init__(logging.WARNING)
        self.size = size
        self.found: list[str] = []

    def emit(self, record) -> None:
        message = record.getMessage()
        hit = self.PATTERN.search(message)
        # a page's IFD past the end: pages lost; a tag's value past the end: the file is shorter than written (a
        # junk offset below the end, which some writers leave in a private tag, is not truncation)
        if hit and (hit.group(1) == "page" or int(hit.group(2)) >= self.size):
            self.found.append(" ".join(message.split()))


@contextlib.contextmanager
def _watching_offsets(path: Path):
    """Raise a TomosegError naming ``path`` as truncated where tifffile met offsets past the file's end (its own
    log lines are kept off stderr meanwhile)."""
    log = logging.getLogger("tifffile")
    handler, propagate = _OffsetsPastTheEnd(path.stat().st_size), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    if handler.found:
        raise TomosegError(f"{path}: is truncated or damaged (tifffile: {handler.found[0]}; the file is "
                           f"{path.stat().st_size} bytes); copy the file again")


def _open_tiff_file(path: Path, series_index: int | None = None):
    tif = None
    try:
        with _watching_offsets(path):
            tif = tifffile.TiffFile(path)
            len(tif.pages)  # every page parsed now: an IFD past the end is met here
    except TomosegError:
        if tif is not None:
            tif.close()
        raise
    except Exception as exc:  # tifffile raises several types for damaged files
        raise TomosegError(f"{path}: is not a readable TIFF file ({exc}); check that the file is complete") from None
    try:
        _check_pages_alike(tif, path)
        if _is_page_by_page(tif):
            tif.close()
            tif = tifffile.TiffFile(path, is_shaped=False)
        index, note = _pick_series(tif, path, series_index)
        _check_samples(tif, path)
        _check_complete(tif, path)
        series = _full_series(tif, index)
        _check_codec(series, path)
        full, keep = _kept_axes(series)
        axes_note = _check_axes(series, full, keep, path)
        shape = tuple(full[k] for k in keep)
        if len(shape) == 2 and _one_slice_of_tomoseg(tif):  # a volume of one slice that tomoseg wrote
            shape = (1,) + tuple(shape)
        offset = series.dataoffset
        if offset is not None:
            nbytes = int(np.prod(full)) * series.dtype.itemsize
            if offset + nbytes > path.stat().st_size:
                raise TomosegError(f"{path}: is truncated ({path.stat().st_size} bytes, "
                                   f"{offset + nbytes} expected); copy the file again")
            array = np.memmap(path, dtype=series.dtype.newbyteorder(tif.byteorder), mode="r",
                              offset=offset, shape=full).reshape(shape)
            chunks = None
        else:
            import zarr

            array = zarr.open(series.aszarr(squeeze=False), mode="r")
            chunks = getattr(array, "chunks", None)
            chunks = tuple(chunks[k] for k in keep) if chunks is not None and len(keep) == len(shape) else None
            if len(keep) == len(shape):
                array = Squeezed(array, keep)
    except TomosegError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise TomosegError(f"{path}: TIFF data cannot be read ({exc}); the file may be truncated or damaged") from None
    return array, chunks, (index, note, axes_note), tif


def warn_white_is_zero(photometric, path: Path) -> None:
    """A WhiteIsZero (PhotometricInterpretation MINISWHITE) TIFF is read as stored, as tifffile reads it and as
    Fiji measures it (Fiji shows an 8-bit one through an inverting LUT): viewers show it inverted, so its
    objects are brighter in the values than they look; warned, with what to do."""
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        warn(f"{path}: is stored WhiteIsZero (PhotometricInterpretation MINISWHITE): viewers show it inverted "
             "(0 white; Fiji through an inverting LUT), and tomoseg reads the stored values, as tifffile does and "
             "Fiji measures, so objects that look dark are bright in the values: segment it with --objects "
             "bright, or save it with inverted values (in Fiji: Edit > Invert, then Image > Lookup Tables > "
             "Invert LUT)")


def _one_slice_of_tomoseg(tif) -> bool:
    """A single-page ImageJ file that tomoseg wrote: a volume of one slice (tifffile stores it as a 2D page)."""
    from .output_guard import MARK

    page = tif.pages.first
    return len(tif.pages) == 1 and getattr(page, "software", "") == MARK and bool(tif.imagej_metadata)


def check_shape(shape, path=None) -> None:
    """A TIFF file cannot hold a volume one voxel wide in x: ImageJ takes a last axis of 1 for samples."""
    if len(shape) == 3 and int(shape[2]) == 1:
        where = f"{path}: " if path else ""
        raise TomosegError(f"{where}a TIFF file cannot hold a volume of shape {tuple(shape)} (one voxel wide in x: "
                           "ImageJ reads it as samples); choose .zarr, .h5 or .npy")


def _check_pages_alike(tif, path: Path) -> None:
    """Refuse a plain multi-page TIFF with a page of another type or size among the slices, naming the page.

    tifffile groups a plain file's pages by type and size (skipping the odd page: the slices above it would sit
    one too low) or, for one written page by page, makes one series per page (the stack then looked 2D). A
    smaller page before or after the stack (a preview) is left to the choice of series; ImageJ and OME files
    describe their own series."""
    if tif.is_imagej or tif.is_ome or len(tif.pages) < 3:
        return
    try:
        count = len(tif.series)  # tifffile from 2026.5.2 parses the series here, not on tif.series
    except Exception:  # tifffile took the pages for alike (its 'uniform' series) and met one that is not
        count = None
        tif.pages.useframes = False
        tif.pages.set_keyframe(0)
    if count is not None and count < 2:
        return
    keys = []
    for i in range(len(tif.pages)):
        page = tif.pages[i]
        keys.append((tuple(page.shape), page.dtype))
    common = max(set(keys), key=keys.count)
    alike = [i for i, k in enumerate(keys) if k == common]
    odd = [i for i, k in enumerate(keys) if k != common]
    one_page_each = count is None or all(len(s) == 1 for s in tif.series)
    if not odd or (not one_page_each and not any(alike[0] < i < alike[-1] for i in odd)):
        return
    i = odd[0]
    (shape, dtype), (common_shape, common_dtype) = keys[i], common
    if dtype != common_dtype:
        what, others = f"is {dtype}", f"{common_dtype}"
    else:
        what, others = f"has shape {shape}", f"{common_shape}"
    more = f" (pages {', '.join(map(str, odd[:5]))}{' ...' if len(odd) > 5 else ''} differ)" if len(odd) > 1 else ""
    raise TomosegError(f"{path}: page {i} of its {len(keys)} pages (counting from 0) {what}, the other pages "
                       f"{others}{more}; all pages of a stack must have the same type and size: write the stack "
                       "again with one type and size for every page")


_AXIS_NAMES = {"C": "channels", "T": "time points", "S": "samples", "Z": "z", "Y": "y", "X": "x",
               "I": "images", "Q": "images"}


def _channels_why(series, n: int) -> str:
    """Why a 2D series of ``n`` gray channels may hold z slices, in the words of the program that wrote it (review
    readers2 RD9: tifffile was named for every file): tifffile's ``imagej=True`` (its description says
    ``ImageJ=1.11a``), an OME-TIFF, or Fiji itself."""
    tif = series.parent
    if getattr(tif, "is_ome", False):
        return f" (its OME metadata gives {n} channels and 1 z plane; Fiji shows them as channels)"
    if str((tif.imagej_metadata or {}).get("ImageJ", "")) == "1.11a":
        return (" (tifffile's imagej=True writes a 3D array as channels unless given metadata={'axes': 'ZYX'}; "
                "Fiji shows them as channels)")
    return (f" (Fiji shows them as channels; if they are z slices, set Slices (z) to {n} and Channels to 1 in "
            "Image > Properties and save again)")


def _check_axes(series, full, keep, path: Path) -> str | None:
    """Refuse axes that are not a volume's, naming them: a 4D series (channels or time points beside z), a 2D
    composite image of several channels (ImageJ ``mode=composite``/``color``). Where a 2D series has several
    channels in grayscale mode (what tifffile's ``imagej=True`` writes for a 3D array when no axes are given),
    time points or one page of several planes, they are read as z slices and the note returned says so."""
    axes = _shape_axes(series)[1]
    kept = [axes[k] for k in keep]
    if len(keep) > 3:
        dims = " × ".join(f"{full[k]} {_AXIS_NAMES.get(axes[k], axes[k])}" for k in keep)
        how = []
        if "C" in kept:
            index = ", ".join(":" if a != "C" else "0" for a in kept[:-2])
            how.append("save one channel as its own stack (in Fiji: Image > Color > Split Channels, then File > "
                       f"Save As > Tiff; in Python: tifffile.imwrite('c0.tif', tifffile.imread({str(path)!r})"
                       f"[{index}], imagej=True, metadata={{'axes': 'ZYX'}}))")
        if "T" in kept:
            how.append("save one time point as its own stack (in Fiji: Image > Duplicate, one frame)")
        raise TomosegError(f"{path}: holds {dims} (axes {''.join(kept)}); tomoseg needs one 3D volume (z, y, x): "
                           + ("; or ".join(how) if how else "save the volume as its own stack"))
    if len(keep) != 3 or kept[0] in "ZIQ":
        return None
    n, name = full[keep[0]], _AXIS_NAMES.get(kept[0], kept[0])
    mode = str((series.parent.imagej_metadata or {}).get("mode", "")).lower()
    if kept[0] == "C" and mode in ("composite", "color"):
        raise TomosegError(f"{path}: is a 2D image of {n} channels (ImageJ {mode} image, axes CYX), not a volume; "
                           "tomoseg needs z slices: give the 3D stack (in Fiji, Image > Properties says Slices "
                           "(z) and Channels)")
    why = {"C": _channels_why(series, n),
           "S": " (tifffile writes a 3D array of 3 or 4 slices as one RGB page unless given "
                "photometric='minisblack')"}.get(kept[0], "")
    return (f"the file's {n} {name} (axes {''.join(kept)}) are read as z slices{why}: if they are not the slices "
            "of one volume, the result is wrong")


def _is_page_by_page(tif) -> bool:
    """A stack written one 2D page at a time (``TiffWriter.write`` in a loop): one series per page."""
    series = tif.series
    return (len(series) > 1 and all(len(s.shape) == 2 for s in series)
            and len({(tuple(s.shape), s.dtype) for s in series}) == 1)


def _check_samples(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse colour images (several samples per pixel): tomoseg needs one gray value a voxel. One page of 3 or 4
    separate planes stays a volume: tifffile stores a 3- or 4-slice array so unless told otherwise."""
    page = tif.pages.first if len(tif.pages) else None
    samples = int(getattr(page, "samplesperpixel", 1) or 1)
    one_planar_page = len(tif.pages) == 1 and getattr(page, "planarconfig", 1) == 2
    if samples > 1 and not one_planar_page:
        raise TomosegError(f"{path}: holds colour images ({samples} samples per pixel); tomoseg needs gray values: "
                           "convert the stack to grayscale (in Fiji: Image > Type > 8-bit or 16-bit) and save it again")


def _check_complete(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse files whose metadata promise more pages or bytes than the file holds."""
    size = path.stat().st_size
    pages = len(tif.pages)
    expected = None
    if tif.imagej_metadata and "images" in tif.imagej_metadata:
        expected = int(tif.imagej_metadata["images"])
    elif tif.shaped_metadata:
        shape = tif.shaped_metadata[0].get("shape")
        if shape and len(shape) >= 3:
            expected = int(np.prod(shape)) // max(1, int(np.prod(tif.pages.first.shape)))  # pages of one plane
    plane = int(np.prod(tif.pages.first.shape)) if pages else 0
    short = tif.series and int(np.prod(tif.series[0].shape)) < (expected or 0) * plane
    if expected is not None and pages < expected and tif.series and (tif.series[0].dataoffset is None or short):
        raise TomosegError(f"{path}: is truncated (its metadata describe {expected} slices, the file holds "
                           f"{pages}); copy the file again")
    last = tif.pages[-1] if pages else None
    if last is not None and hasattr(last, "dataoffsets") and last.dataoffsets:
        end = max(o + c for o, c in zip(last.dataoffsets, last.databytecounts))
        if end > size:
            raise TomosegError(f"{path}: is truncated ({size} bytes, data up to byte {end}); copy the file again")


def check_dtype(dtype, path=None) -> None:
    if np.dtype(dtype) not in _IMAGEJ_DTYPES:
        where = f"{path}: " if path else ""
        raise TomosegError(f"{where}TIFF output supports uint8, uint16 and float32 (ImageJ's types), not "
                           f"{np.dtype(dtype)}; choose another format (.zarr, .h5) or cast the data")


def open_tiff(path: Path, series: str | None = None) -> Volume:
    """A multi-page TIFF; ``series`` (from ``file.tif:N``) names one of several images (OME-TIFF series)."""
    array, chunks, (index, note, axes_note), tif = _open_tiff_file(path, None if series is None else int(series))
    try:
        voxel_size, assumed = voxel_size_from_tiff(tif, path, series_index=index)
        vol = Volume(_Checked(array, path), path=path, format="tiff", voxel_size=voxel_size, chunks=chunks,
                     close=tif.close)
        vol.voxel_size_note = assumed
        if note:
            vol.notes.append(note)
        if axes_note:
            say(f"{path}: {axes_note}")
        warn_white_is_zero(getattr(tif.series[index].keyframe, "photometric", None), path)
        return vol
    except BaseException:
        tif.close()
        raise


class _Checked:
    """Turns read errors of a damaged file into a clear message."""

    def __init__(self, array, path):
        self._array, self._path = array, path
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, key):
        try:
            return np.asarray(self._array[key])
        except Exception as exc:
            raise TomosegError(f"{self._path}: data cannot be read ({type(exc).__name__}: {exc}); the file may be "
                               "damaged") from None


def imagej_kwargs(voxel_size):
    if voxel_size is None:
        return {"metadata": {"axes": "ZYX"}}
    z, y, x = voxel_size
    return {"resolution": (1.0 / x, 1.0 / y), "metadata": {"spacing": z, "unit": "nm", "axes": "ZYX"}}


# ImageJ hyperstacks are classic TIFF (32-bit offsets); past this size tifffile would truncate them
BIGTIFF_BYTES = 2**32 - 2**25



def _bigtiff_kwargs(voxel_size):
    """A BigTIFF that is also an OME-TIFF: Bio-Formats (Fiji's reader for BigTIFF) and tomoseg take the voxel size
    from the OME-XML ``<Pixels>`` (PhysicalSizeX/Y/Z in nm, z included); other TIFF readers from the resolution
    tags, in pixels per centimetre (x and y only). ImageJ's own reader cannot open BigTIFF."""
    base = {"bigtiff": True, "ome": True, "photometric": "minisblack"}
    if voxel_size is None:
        return {**base, "metadata": {"axes": "ZYX"}}
    z, y, x = (float(v) for v in voxel_size)
    metadata = {"axes": "ZYX"}
    for axis, size in (("X", x), ("Y", y), ("Z", z)):
        metadata[f"PhysicalSize{axis}"] = size
        metadata[f"PhysicalSize{axis}Unit"] = "nm"
    return {**base, "resolution": (NM_PER_CM / x, NM_PER_CM / y), "resolutionunit": "CENTIMETER",
            "metadata": metadata}


def create_tiff(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None) -> Sink:
    from .output_guard import MARK
    from .disk_space import reserve

    check_dtype(dtype)
    check_shape(shape, tmp)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    # over 4 GiB: an OME BigTIFF (Fiji opens it with Bio-Formats, which reads the OME voxel size), never a
    # truncated ImageJ file
    kwargs = _bigtiff_kwargs(voxel_size) if nbytes > BIGTIFF_BYTES else {"imagej": True,
                                                                         **imagej_kwargs(voxel_size)}
    mm = tifffile.memmap(tmp, shape=tuple(shape), dtype=np.dtype(dtype), software=MARK, **kwargs)
    reserve(tmp, tmp.stat().st_size)

    array = ReleasingMap(mm)
    return Sink(array, finish=array.flush)
