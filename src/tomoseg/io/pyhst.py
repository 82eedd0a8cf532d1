"""PyHST2 raw volumes: ``NAME.vol`` (float32, x fastest) with a ``NAME.vol.info`` sidecar.

A ``DATA_TYPE`` line in the sidecar (pymicro's ``HST_write``: ``uint8``, ``uint16``, ``float32``) gives the
type of other raw volumes; without it the data are PyHST2's float32.

The sidecar holds ``NUM_X``, ``NUM_Y``, ``NUM_Z``, ``voxelSize`` (µm) and
``BYTEORDER`` (``LOWBYTEFIRST`` or ``HIGHBYTEFIRST``). Where only PyHST2's other sidecar,
``NAME.vol.xml`` (``SIZEX``, ``SIZEY``, ``SIZEZ``, ``BYTE_ORDER``, optionally ``voxelSize``), is
beside the volume, it is read instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .volume import ReleasingMap, Sink, Volume

EXTENSIONS = (".vol",)
# DATA_TYPE of a .vol.info (pymicro's HST_write writes uint8, uint16 or float32); without it, PyHST2's float32
DATA_TYPES = {"uint8": "u1", "int8": "i1", "uint16": "u2", "int16": "i2", "uint32": "u4", "int32": "i4",
              "float32": "f4", "float64": "f8"}


def info_path(path: Path) -> Path:
    return path.with_name(path.name + ".info")


def xml_path(path: Path) -> Path:
    return path.with_name(path.name + ".xml")


def read_info(path: Path) -> dict[str, str]:
    info = info_path(path)
    if not info.exists():
        if xml_path(path).exists():
            return read_xml(path)
        raise TomosegError(f"{path}: its sidecar {info.name} is missing; PyHST2 volumes need NAME.vol.info "
                           "(NUM_X, NUM_Y, NUM_Z, voxelSize, BYTEORDER) or NAME.vol.xml beside them")
    fields = {}
    for line in info.read_text(errors="replace").splitlines():
        m = re.match(r"\s*([A-Za-z_0-9]+)\s*=\s*(.*?)\s*$", line)
        if m:
            fields[m.group(1).upper()] = m.group(2)
    return fields


def read_xml(path: Path) -> dict[str, str]:
    """The fields of ``NAME.vol.xml`` under the names of ``NAME.vol.info`` (SIZEX -> NUM_X, BYTE_ORDER ->
    BYTEORDER), plus ``_SOURCE`` naming the file."""
    import xml.etree.ElementTree as ET

    xml = xml_path(path)
    try:
        root = ET.fromstring(xml.read_text(errors="replace"))
    except ET.ParseError as exc:
        raise TomosegError(f"{xml}: is not readable XML ({exc}); give the volume's .vol.info instead") from None
    names = {"SIZEX": "NUM_X", "SIZEY": "NUM_Y", "SIZEZ": "NUM_Z", "BYTE_ORDER": "BYTEORDER",
             "BYTEORDER": "BYTEORDER", "VOXELSIZE": "VOXELSIZE"}
    fields = {"_SOURCE": xml.name}
    for el in root.iter():
        key = names.get(str(el.tag).upper())
        if key and key not in fields and el.text and el.text.strip():
            fields[key] = el.text.strip()
    return fields


def open_vol(path: Path) -> Volume:
    fields = read_info(path)
    sidecar = xml_path(path) if "_SOURCE" in fields else info_path(path)
    try:
        shape = tuple(int(fields[k]) for k in ("NUM_Z", "NUM_Y", "NUM_X"))
    except (KeyError, ValueError):
        raise TomosegError(f"{sidecar}: needs integer " + ("SIZEX, SIZEY and SIZEZ" if "_SOURCE" in fields
                           else "NUM_X, NUM_Y and NUM_Z")) from None
    if min(shape) < 1:
        raise TomosegError(f"{sidecar}: NUM_X, NUM_Y and NUM_Z must be positive, not "
                           f"{shape[2]}, {shape[1]}, {shape[0]}")
    order = fields.get("BYTEORDER", "LOWBYTEFIRST").upper()
    kind = fields.get("DATA_TYPE", "float32").strip().lower()
    if kind not in DATA_TYPES:
        raise TomosegError(f"{sidecar}: gives DATA_TYPE = {fields['DATA_TYPE']}; tomoseg reads .vol data of type "
                           f"{', '.join(DATA_TYPES)} (PyHST2 writes float32; PACKED_BINARY, one bit a voxel, is "
                           "not read): convert it, e.g. with pymicro's HST_read and numpy.save")
    dtype = np.dtype(DATA_TYPES[kind]).newbyteorder("<" if order.startswith("LOW") else ">")
    expected = shape[0] * shape[1] * shape[2] * dtype.itemsize  # Python ints: no overflow
    actual = path.stat().st_size
    if actual != expected:
        voxels = shape[0] * shape[1] * shape[2]
        given = f"DATA_TYPE = {fields['DATA_TYPE']}" if "DATA_TYPE" in fields else "no DATA_TYPE: PyHST2's float32"
        fits = [t for t, c in DATA_TYPES.items() if np.dtype(c).itemsize * voxels == actual and t != kind]
        hint = (f"; if the data are {' or '.join(fits)}, write DATA_TYPE = {fits[0]} in {sidecar.name}"
                if fits and "_SOURCE" not in fields else "")
        raise TomosegError(f"{path}: holds {actual} bytes, but {sidecar.name} describes "
                           f"{shape[2]}×{shape[1]}×{shape[0]} {kind} ({given}) = {expected} bytes; the file is "
                           f"truncated or the sidecar belongs to another volume{hint}")
    voxel_size = None
    if "VOXELSIZE" in fields:
        try:
            v = float(fields["VOXELSIZE"]) * 1e3
        except ValueError:
            v = float("nan")
        voxel_size = (v, v, v)  # an invalid one is reported by open_volume; --voxel-size overrides
    array = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    vol = Volume(array, path=path, format="pyhst-vol", voxel_size=voxel_size)
    if "_SOURCE" in fields:
        vol.notes.append(f"no {info_path(path).name}: shape and byte order read from {fields['_SOURCE']}"
                         + ("" if voxel_size else ", which gives no voxel size"))
    return vol


def create_vol(tmp: Path, shape, dtype, *, voxel_size=None, chunks=None) -> Sink:
    if np.dtype(dtype) != np.float32:
        raise TomosegError(f"PyHST2 .vol files hold float32, not {np.dtype(dtype)}; choose another format")
    if voxel_size is not None and not (voxel_size[0] == voxel_size[1] == voxel_size[2]):
        raise TomosegError(f"PyHST2 .vol files hold one isotropic voxel size, not {voxel_size}")
    from .disk_space import reserve

    mm = ReleasingMap(np.memmap(tmp, dtype="<f4", mode="w+", shape=tuple(shape)))
    reserve(tmp, tmp.stat().st_size)

    def finish():
        mm.flush()
        lines = ["! PyHST_SLAVE VOLUME INFO FILE", "! written by tomoseg", f"NUM_X = {shape[2]}", f"NUM_Y = {shape[1]}",
                 f"NUM_Z = {shape[0]}"]
        if voxel_size is not None:
            lines.append(f"voxelSize = {voxel_size[0] / 1e3:.9g}")
        lines.append("BYTEORDER = LOWBYTEFIRST")
        info_path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")

    return Sink(mm, finish=finish, companions=(".info",))
