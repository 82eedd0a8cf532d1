"""Zarr v3 and OME-Zarr (NGFF): the natural format for volumes larger than memory.

Written as Zarr v3 with OME-Zarr 0.5 metadata (a group with ``ome.multiscales``
and one scale level ``0``), so readers of OME-Zarr 0.5 (napari with tomoseg's
plugin, or napari-ome-zarr with ome-zarr-py 0.12 or later) open it at the right
scale; tools that read only Zarr v2 / OME-Zarr 0.4 cannot (docs/viewers.md).
Plain zarr arrays and NGFF 0.4 groups (zarr v2) are read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import zarr

from ..errors import TomosegError
from .units import nm_per_unit
from .zarr_chunks import parallel_reader
from .volume import Sink, Volume, squeeze_leading
from .voxel_sizes import BOOLEAN, boolean_note, boolean_problem, is_boolean, shown, voxel_size_from_attributes

EXTENSIONS = (".zarr", ".ome.zarr", ".zarr3", ".zarr.zip", ".ome.zarr.zip")  # zipped: read only
ZIP_EXTENSIONS = (".zarr.zip", ".ome.zarr.zip")
DEFAULT_CHUNKS = (64, 128, 128)



def _transform_of(node: dict, kind: str = "scale"):
    """The ``scale`` (or ``translation``) list of an NGFF node's ``coordinateTransformations`` (a dataset or a
    multiscale), or None (none, or one that is not a list: :func:`_transform_value` gives it as it is)."""
    value = _transform_value(node, kind)
    return value if isinstance(value, list) else None


def _transform_value(node: dict, kind: str = "scale"):
    """The value of the ``scale`` (or ``translation``) transform of an NGFF node (a dataset or a multiscale) as the
    metadata give it: a list (OME-NGFF), or anything else JSON holds (a string, a number, an object, null), which
    :func:`_transform_problem` says cannot be used; :data:`_NONE` where the node has no such transform."""
    transforms = node.get("coordinateTransformations") if isinstance(node, dict) else None
    return next((t[kind] for t in transforms or [] if isinstance(t, dict) and t.get("type") == kind and kind in t),
                _NONE)


def _nm_per_axis_unit(multiscale: dict) -> list | None:
    """Nanometres per unit of each of the multiscale's last three axes; None where one is missing or not a
    length."""
    units = [a.get("unit") if isinstance(a, dict) else None for a in multiscale.get("axes", [])][-3:]
    factors = [nm_per_unit(u) for u in units]
    return factors if len(factors) == 3 and all(f is not None for f in factors) else None

def is_zarr_dir(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def _multiscales(attrs) -> list | None:
    if "ome" in attrs and "multiscales" in attrs["ome"]:
        return attrs["ome"]["multiscales"]
    return attrs.get("multiscales")


def open_zarr(path: Path, dataset: str | None = None) -> Volume:
    """The volume of a Zarr store: a folder, or a zip file (``.zarr.zip``, zarr's ZipStore), read in place."""
    import zipfile

    if dataset is not None:
        dataset = dataset.rstrip("/") or None  # store:1/ (a trailing slash from tab completion) is level 1
    if path.is_file():
        if zipfile.is_zipfile(path):
            return _open_zip(path, dataset)
        raise TomosegError(zip_problem(path) or f"{path}: is a file but not a zip file; a Zarr store is a folder "
                           "(or a zipped one, .zarr.zip)")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise TomosegError(f"{path}: is not a readable Zarr store ({exc})") from None
    return _open_checked(node, path, dataset)


def _open_checked(node, path: Path, dataset: str | None, close=None) -> Volume:
    try:
        return _open_node(node, path, dataset, close=close)
    except TomosegError:
        raise
    except Exception as exc:  # metadata that zarr accepted but that make no sense
        raise TomosegError(f"{path}: Zarr metadata cannot be used ({type(exc).__name__}: {exc}); the store may be "
                           "damaged") from None


_STORE_KEYS = ("zarr.json", ".zarray", ".zgroup")


def is_zipped_zarr(path: Path) -> bool:
    """Whether ``path`` is a zip file holding a Zarr store at its top or in its one top folder (what zipping a
    ``scan.zarr`` folder gives, whatever the zip is called: ``scan.zip``)."""
    import zipfile

    try:
        if not (path.is_file() and zipfile.is_zipfile(path)):
            return False
        _zip_root(path, _names(path))
    except (TomosegError, OSError, zipfile.BadZipFile):
        return False
    return True


def _macos_extra(name: str) -> bool:
    """Whether a zip entry is what macOS's Finder adds to every zip it makes (``__MACOSX/`` with the files' resource
    forks, ``.DS_Store``): no part of the store."""
    return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1] == ".DS_Store"


def _stores_in(names: list[str]) -> list[str]:
    """The folders of a zip's listing that hold a Zarr store (a zarr.json, .zarray or .zgroup), outermost only."""
    roots = sorted({n.rpartition("/")[0] for n in names if n.rpartition("/")[2] in _STORE_KEYS})
    return [r for r in roots if not any(o != r and (o == "" or r.startswith(o + "/")) for o in roots)]


def zip_problem(path: Path) -> str | None:
    """What more can be said of a ``.zip`` input that is not a zipped Zarr store tomoseg reads than that it holds
    none (review ZP2): a damaged or cut-short zip, or Zarr stores further down in it, or several; None else."""
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not zipfile.is_zipfile(path):
            return (f"{path}: is a damaged or incomplete zip file (it starts as one, but the table of contents a zip "
                    "ends with is missing: cut short while copied or downloaded?); copy it again"
                    if head == b"PK\x03\x04" else None)
        names = [n for n in _names(path) if not _macos_extra(n)]
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return f"{path}: is a damaged zip file ({exc}); copy it again"
    stores = _stores_in(names)
    if not stores or "" in stores:
        return None
    shown = ", ".join(stores[:4]) + (f" and {len(stores) - 4} more" if len(stores) > 4 else "")
    where = "a Zarr store" if len(stores) == 1 else f"{len(stores)} Zarr stores"
    return (f"{path}: holds {where} further down ({shown}): tomoseg reads a zip holding one store, at its top or in "
            f"its one top folder; unzip it and give {'the' if len(stores) == 1 else 'one'} store's folder "
            f"({stores[0]})")


def _zip_root(path: Path, names: list[str]) -> str:
    """Where the store lies inside the zip ``path``: at its top (``""``, as zarr's ZipStore and ``cd x.zarr && zip
    -r ../x.zarr.zip .`` put it), or in its one top folder (``zip -r x.zarr.zip x.zarr``); what macOS's Finder adds
    (``__MACOSX/``, ``.DS_Store``) left aside."""
    names = [n for n in names if not _macos_extra(n)]
    if any(k in names for k in _STORE_KEYS):
        return ""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1:
        top = tops.pop()
        if any(f"{top}/{k}" in names for k in _STORE_KEYS):
            return top
    raise TomosegError(zip_problem(path) or
                       f"{path}: is a zip file without a Zarr store at its top (no zarr.json, .zarray or .zgroup); "
                       "tomoseg reads a zipped Zarr store (.zarr.zip); unzip this one and give the volume inside")


def _open_zip(path: Path, dataset: str | None) -> Volume:
    """A zipped Zarr store (review readers2 RD4), read in place through zarr's ZipStore (read-only; its chunks
    are read through Zarr, not tomoseg's own chunk reader); the store is closed with the volume."""
    from zarr.storage import ZipStore

    try:
        root = _zip_root(path, _names(path))
        _refuse_encrypted(path)
        store = ZipStore(path, mode="r")
    except TomosegError:
        raise
    except Exception as exc:
        raise TomosegError(f"{path}: is not a readable zipped Zarr store ({exc})") from None
    try:
        node = zarr.open(store, mode="r", path=root)
    except Exception as exc:
        store.close()
        raise TomosegError(f"{path}: is not a readable zipped Zarr store ({exc})") from None
    try:
        return _open_checked(node, path, dataset, close=store.close)
    except BaseException:
        store.close()
        raise


def _refuse_encrypted(path: Path) -> None:
    """Refuse a password-protected zip (any entry encrypted: its metadata, or only its chunks, which failed once the
    work had started), saying what to do (review ZP5)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        if any(i.flag_bits & 0x1 for i in z.infolist() if not _macos_extra(i.filename)):
            raise TomosegError(f"{path}: is an encrypted (password-protected) zip file: tomoseg cannot read it in "
                               "place; unzip it with its password and give the Zarr store inside (a folder)")


def _names(path: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.namelist()


def _check_array_path(path: Path, dataset) -> str:
    if not isinstance(dataset, str) or not dataset or dataset.startswith("/") or ".." in dataset.split("/") \
            or "\\" in dataset:
        raise TomosegError(f"{path}: array path {dataset!r} in the metadata is not a plain path inside the store "
                           "(no '..', no leading '/'); the store is damaged or not safe to read")
    return dataset


def _open_node(node, path: Path, dataset: str | None, prefix: str = "", close=None) -> Volume:
    """The volume ``dataset`` of ``node`` (a group's image or level, or the array ``node``); ``prefix``: the
    group's path inside the store, for the names the messages give; ``close``: what closing the volume closes
    (a zip store)."""
    if isinstance(node, zarr.Group) and dataset:  # a group or level below the store's top (review U7)
        member = _member(node, dataset)
        if isinstance(member, zarr.Group):  # store:labels/objects: that image's level 0, at its scale
            return _open_node(member, path, None, f"{prefix}{dataset}/", close)
        head, _, tail = dataset.rpartition("/")
        if head and isinstance(_member(node, head), zarr.Group):  # store:labels/objects/1: a level of that image
            return _open_node(_member(node, head), path, tail, f"{prefix}{head}/", close)
    voxel_size = origin = scale_problem = origin_problem = None
    at_zero = False
    notes: list[str] = []
    if isinstance(node, zarr.Group):
        ms = _multiscales(dict(node.attrs))
        if ms is not None and not (isinstance(ms, list) and ms and isinstance(ms[0], dict)
                                   and isinstance(ms[0].get("datasets"), list) and ms[0]["datasets"]
                                   and isinstance(ms[0]["datasets"][0], dict)):
            raise TomosegError(f"{path}: its OME-NGFF 'multiscales' metadata are malformed; name the array as "
                               f"{path}:NAME")
        if dataset is None and not ms:
            arrays = [k for k, _ in node.arrays()]
            if len(arrays) != 1:
                nested = arrays or [k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)]
                named = [prefix + n for n in nested]
                raise TomosegError(f"{path}{':' + prefix.rstrip('/') if prefix else ''}: is a Zarr group without "
                                   "OME-NGFF metadata; it holds "
                                   + (f"the arrays {', '.join(named[:8])}" if named else "no array")
                                   + (f"; name one as {path}:NAME (e.g. {path}:{named[0]})" if named else ""))
            dataset = arrays[0]
        ds = None
        if dataset is None:
            ds = ms[0]["datasets"][0]
            dataset = _check_array_path(path, ds.get("path"))
        elif ms:  # a level named by the user: its own scale from the metadata
            ds = next((d for d in ms[0]["datasets"] if isinstance(d, dict) and d.get("path") == dataset), None)
        if ds is not None:
            voxel_size, origin, scale_problem, origin_problem, at_zero = _level_place(ms[0], ds, notes)
        if dataset not in node:
            nested = [k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)]
            raise TomosegError(f"{path}: has no array {prefix + dataset!r}"
                               + (f"; it holds {', '.join(prefix + n for n in nested[:8])}: name one as {path}:NAME"
                                  if nested else ""))
        array = node[dataset]
    else:
        if dataset:  # store.zarr:7 of a store that is one array: no level 7 to read (it read the array, silently)
            raise TomosegError(f"{path}: is one Zarr array, not a group of images or levels: it holds no "
                               f"{dataset!r}; give {path} without ':{dataset}'")
        array = node
        voxel_size = voxel_size_from_attributes(array.attrs, notes, "array")  # element_size_um too (ilastik)
        place = _place_from_parent(path, notes) if voxel_size is None else None
        if place is not None:  # a level named by its path (store/0): placed as when named store:0
            voxel_size, origin, scale_problem, origin_problem, at_zero = place
    shape = array.shape
    reader = parallel_reader(array) if len(shape) == 3 else array  # chunks read and decompressed by the reader
    if reader is array:  #                                             threads themselves, where this can
        reader = ZarrReads(array)  # read through Zarr's event loop: a failed read's other chunks finished first
    array = squeeze_leading(reader) if len(shape) > 3 else reader  # t=c=1 of a TCZYX image; z, y and x stay
    chunks = getattr(array, "chunks", None) or getattr(getattr(array, "_array", None), "chunks", None)
    if chunks is not None and len(chunks) > 3:
        chunks = chunks[-3:]
    if chunks is not None and any(int(c) < 1 for c in chunks):
        raise TomosegError(f"{path}: Zarr chunk shape {tuple(chunks)} is not valid; the store is damaged")
    vol = Volume(array, path=path, format="zarr", voxel_size=voxel_size, chunks=chunks, close=close)
    vol.origin_nm = origin
    vol.ngff_at_zero = at_zero
    vol.notes.extend(notes)
    vol.voxel_size_problem = (vol.voxel_size_problem or (f"{path}: {scale_problem}" if scale_problem else None)
                              or boolean_problem(path, voxel_size, notes))
    vol.origin_problem = f"{path}: {origin_problem}" if origin_problem else None
    return vol


ORIGIN_UNKNOWN = ("origin unknown (positions in nm are counted from voxel (0, 0, 0)); correct it in the store's "
                  "metadata (zarr.json or .zattrs) to place the volume")


class _Place(NamedTuple):
    """Where an NGFF level lies and how large its voxels are (:func:`_level_place`)."""

    voxel_size: tuple | None
    origin: tuple | None
    scale_problem: str | None
    origin_problem: str | None
    at_zero: bool  # no translation at all: NGFF places the image at 0


def _level_place(multiscale: dict, ds: dict, notes: list) -> _Place:
    """The :class:`_Place` of the NGFF level ``ds`` of ``multiscale``: its voxel size and origin (z, y, x nm,
    :func:`_level_voxel_size`, :func:`_level_origin`), each None where a ``scale`` or ``translation`` it is made of
    cannot be used (:func:`_transform_problem`: no list, a boolean, which Python reads as 1, a string or null, or
    not one value per axis), said in ``notes``; the problems are those notes (None where there
    is none), which every command warns of (the file's place or size is broken, not merely not given); ``at_zero``:
    neither the level nor the multiscale has a translation."""
    n_axes = len(multiscale["axes"]) if isinstance(multiscale.get("axes"), list) and multiscale["axes"] else None
    scale_problem = origin_problem = None
    unusable = set()
    for node, whose in ((ds, f"level {ds.get('path')!r}"), (multiscale, "the multiscale")):
        for kind in ("scale", "translation"):
            values = _transform_value(node, kind)
            why = None if values is _NONE else _transform_problem(values, multiscale, n_axes)
            if why is None:
                continue
            unusable.add((node is ds, kind))
            where = f"the OME-NGFF {kind} of {whose} (coordinateTransformations)"
            if kind == "scale" and why == BOOLEAN:
                said = boolean_note(where, values)
            elif kind == "scale":
                said = f"{where} is {_value_text(values)}, {why}; voxel size unknown: pass --voxel-size Z Y X"
            else:
                said = f"{where} is {_value_text(values)}, {why}; {ORIGIN_UNKNOWN}"
            notes.append(said)
            if kind == "scale":
                scale_problem = scale_problem or said
            else:
                origin_problem = origin_problem or said
    voxel_size = None if scale_problem else _level_voxel_size(multiscale, ds)
    # the multiscale's scale multiplies the level's translation: where it cannot be used, neither can the origin
    no_origin = origin_problem or ((False, "scale") in unusable and _transform_of(ds, "translation") is not None)
    origin = None if no_origin else _level_origin(multiscale, ds)
    if no_origin and not origin_problem:
        origin_problem = (f"the OME-NGFF scale of the multiscale (coordinateTransformations), "
                          f"{_value_text(_transform_value(multiscale))}, cannot be used, and it scales the "
                          f"translation of level {ds.get('path')!r}; {ORIGIN_UNKNOWN}")
        notes.append(origin_problem)
    at_zero = _transform_value(ds, "translation") is _NONE and _transform_value(multiscale, "translation") is _NONE
    return _Place(voxel_size, origin, scale_problem, origin_problem, at_zero)


def _transform_problem(values, multiscale: dict, n_axes: int | None) -> str | None:
    """Why an NGFF ``scale`` or ``translation`` cannot be used, as notes say it after its value; None where it can.
    OME-NGFF: a list of one number for each of the multiscale's ``n_axes`` axes (t and c included; the last three
    are z, y, x). A boolean is :data:`~.voxel_sizes.BOOLEAN` (Python reads true as 1); a value that is no list (a
    string, a number, an object, null: passed over without a word before brief H7) cannot be used either."""
    import math

    if is_boolean(values):
        return BOOLEAN
    if not isinstance(values, list):
        return "not a list (OME-NGFF: one number per axis)"
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                or not math.isfinite(v)), _NONE)
    if bad is not _NONE:
        said = "null" if bad is None else repr(bad) if isinstance(bad, str) else shown(bad)
        return f"and {said} is not a number (OME-NGFF: one number per axis)"
    if n_axes is not None and len(values) != n_axes:
        names = [a.get("name") if isinstance(a, dict) else a for a in multiscale["axes"]]
        return (f"{len(values)} value{'s' if len(values) != 1 else ''} for the {n_axes} axes "
                f"({', '.join(map(str, names))}) of the multiscale (OME-NGFF: one per axis); which axes they "
                "are for is not known")
    return None


_NONE = object()  # no such item (None is JSON's null, a value)


def _value_text(value) -> str:
    """An NGFF transform's value as notes write it: a list as Python writes it (``['a', 0, 0]``), a string quoted,
    JSON's null as null."""
    return "null" if value is None else repr(value) if isinstance(value, str) else shown(value)


class ZarrReads:
    """A Zarr array read through Zarr's event loop (a zipped store, a sharded one...), whose failed read leaves
    none of its chunk reads running.

    Zarr reads a box's chunks as tasks on its event-loop thread and raises at the first that fails (a chunk failing
    its CRC in a zip), leaving the others in flight: a command that then exits left them pending, and asyncio printed
    "Task was destroyed but it is pending!" for each, hundreds of lines after the error (adversarial review ZP).
    A failed read here waits for Zarr's loop to finish them (at most :data:`SETTLE_S` seconds, then cancels the
    rest) before it raises. Attributes it does not have are the array's."""

    def __init__(self, array):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception:
            finish_zarr_reads()
            raise

    def __getattr__(self, name):  # chunks, attrs, metadata, ...: the array's
        return getattr(self.array, name)


SETTLE_S = 30.0  # how long a failed read waits for Zarr's other reads in flight


def finish_zarr_reads(timeout: float = SETTLE_S) -> None:
    """Wait until the tasks on Zarr's event loop (other than this wait) are done, cancelling those still running
    after ``timeout`` seconds; their exceptions are taken, so that asyncio says nothing of them either."""
    import asyncio

    async def others_done():
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        if not others:
            return
        _, running = await asyncio.wait(others, timeout=timeout)
        for t in running:
            t.cancel()
        if running:
            await asyncio.wait(running, timeout=1.0)
        for t in others:
            if t.done() and not t.cancelled():
                t.exception()

    try:
        from zarr.core.sync import sync  # Zarr's own loop (zarr 3's internals: absent, nothing to wait for)

        sync(others_done())
    except Exception:  # noqa: BLE001 - a loop already closed or stopped, or another Zarr: nothing to wait for
        pass


def _member(group, name: str):
    """The array or group ``name`` (a path) inside ``group``, or None."""
    try:
        return group[name] if name in group else None
    except (KeyError, ValueError):
        return None


def _level_origin(multiscale: dict, ds: dict) -> tuple | None:
    """(z, y, x) in nm of the centre of voxel (0, 0, 0) of the NGFF level ``ds``: its ``translation``, then the
    multiscale's own scale and translation (NGFF applies them after each dataset's); None where neither has a
    translation, or a unit is missing or not a length."""
    inner, outer_t = _transform_of(ds, "translation"), _transform_of(multiscale, "translation")
    if inner is None and outer_t is None:
        return None
    n = len(inner if inner is not None else outer_t)  # checked against the axes (_transform_problem): not the scale's
    origin = [float(v) for v in inner] if inner is not None and len(inner) == n else [0.0] * n
    outer_s = _transform_of(multiscale)
    # it scales the level's translation, not its own: without the former, an unusable one is not read (0 stays 0)
    if inner is not None and outer_s is not None and len(outer_s) == n:
        origin = [o * float(s) for o, s in zip(origin, outer_s)]
    if outer_t is not None and len(outer_t) == n:
        origin = [o + float(t) for o, t in zip(origin, outer_t)]
    factors = _nm_per_axis_unit(multiscale)
    if n < 3 or factors is None:
        return None
    return tuple(o * f for o, f in zip(origin[-3:], factors))


def _level_voxel_size(multiscale: dict, ds: dict) -> tuple | None:
    """(z, y, x) in nm of the NGFF level ``ds`` of ``multiscale``: its ``scale``, times the multiscale's own
    (NGFF: applied after each dataset's), in the units of the last three axes; None where a unit is missing or
    not a length."""
    scale = _transform_of(ds)
    outer = _transform_of(multiscale)
    if scale is not None and outer is not None and len(outer) == len(scale):
        scale = [float(a) * float(b) for a, b in zip(scale, outer)]
    factors = _nm_per_axis_unit(multiscale)
    if scale is None or len(scale) < 3 or factors is None:
        return None
    return tuple(float(s) * f for s, f in zip(scale[-3:], factors))


def _place_from_parent(path: Path, notes: list) -> _Place | None:
    """An array named by its path inside an OME-Zarr image (``image.ome.zarr/0``, ``image.ome.zarr/labels/mask/1``,
    as napari and shell completion name a level): the :class:`_Place` of that level (voxel size, origin and their
    problems, :func:`_level_place`) from the ``multiscales`` of the nearest group above it that lists it, as
    ``image.ome.zarr:0`` gives it, with a note saying where they come from; None elsewhere."""
    here = Path(path)
    for parent in list(here.parents)[:4]:
        if not is_zarr_dir(parent):
            return None
        try:
            group = zarr.open_group(str(parent), mode="r")
            ms = _multiscales(dict(group.attrs))
        except Exception:
            return None
        if not (isinstance(ms, list) and ms and isinstance(ms[0], dict)
                and isinstance(ms[0].get("datasets"), list)):
            continue
        level = here.relative_to(parent).as_posix()
        ds = next((d for d in ms[0]["datasets"] if isinstance(d, dict) and d.get("path") == level), None)
        if ds is None:
            continue
        place = _level_place(ms[0], ds, notes)
        found = [w for w, v in (("voxel size", place.voxel_size), ("origin", place.origin)) if v is not None]
        if found:
            notes.append(f"{' and '.join(found)} of level {level} from the OME-NGFF multiscales of {parent.name}")
        return place
    return None


def ngff_attributes(shape, voxel_size, name: str, origin=None) -> dict:
    """OME-Zarr 0.5 attributes of a one-level image: the voxel size in nm, and ``origin`` (nm, where voxel
    (0, 0, 0)'s centre lies: an input's translation) where given with a voxel size."""
    scale = list(voxel_size) if voxel_size is not None else [1.0, 1.0, 1.0]
    axes = [{"name": a, "type": "space"} for a in "zyx"]
    transforms = [{"type": "scale", "scale": scale}]
    if voxel_size is not None:
        for a in axes:
            a["unit"] = "nanometer"
        if origin is not None:
            transforms.append({"type": "translation", "translation": [float(o) for o in origin]})
    return {"ome": {"version": "0.5", "multiscales": [{
        "name": name, "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transforms}],
    }]}}


def store_chunks(array):
    """``array`` set to store every chunk it is given, without Zarr's test of each against the fill value.

    That test (``write_empty_chunks=False``, Zarr's default) compares a full chunk with the fill value in
    Zarr's one event-loop thread, so writer threads do not share it: it was 0.26 of the 0.43 s of writing a
    256x1024x1024 probability map in 128^3 chunks. Writers that may meet all-zero chunks skip them themselves
    (:func:`write_chunk`)."""
    return array.with_config({"write_empty_chunks": True})


def write_chunk(array, region, block: np.ndarray) -> None:
    """Write ``block`` at ``region`` (whole chunks of a new ``array`` whose fill value is 0) unless it is all zeros:
    what Zarr's own test does, at a tenth of its cost (``block.any()``)."""
    if block.any():
        array[region] = block


def create_zarr(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None, name: str | None = None,
                origin=None) -> Sink:
    chunks = tuple(min(int(c), int(s)) for c, s in zip(chunks or DEFAULT_CHUNKS, shape))
    from .._version import __version__
    from .output_guard import MARK

    group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    group.attrs.update({**ngff_attributes(shape, voxel_size, name or tmp.name.split(".")[0], origin),
                        MARK: {"written_by": f"tomoseg {__version__}"}})
    array = group.create_array("0", shape=tuple(shape), chunks=chunks, dtype=np.dtype(dtype), fill_value=0,
                               dimension_names=["z", "y", "x"])
    return Sink(array)
