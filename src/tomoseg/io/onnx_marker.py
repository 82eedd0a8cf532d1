"""tomoseg's marker in an ONNX file: a ``metadata_props`` entry with the key ``tomoseg``.

ONNX files are Protocol Buffers messages (``ModelProto``), and a field appended to a serialized message is
part of it, so the marker is written by appending one ``metadata_props`` entry (field 14) to the exported
bytes, and read by walking the top-level fields: neither needs the ``onnx`` package. ``onnx.load`` and
ONNX runtimes see the entry as ordinary model metadata (``key="tomoseg"``).
"""

from __future__ import annotations

import json
from pathlib import Path

KEY = "tomoseg"
_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1; value = 2}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def add_marker(path, record: dict) -> None:
    """Append the ``tomoseg`` metadata entry (``record`` as JSON) to the ONNX file at ``path``."""
    entry = _field(1, KEY.encode()) + _field(2, json.dumps(record, sort_keys=True).encode())
    with open(path, "ab") as fh:
        fh.write(_field(_METADATA_PROPS, entry))


def _read_varint(fh) -> int | None:
    shift = value = 0
    for _ in range(10):
        b = fh.read(1)
        if not b:
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
    return None


def _entry(payload: bytes) -> dict:
    """The fields of a serialized StringStringEntryProto: {1: key, 2: value} (bytes)."""
    import io

    fh, fields = io.BytesIO(payload), {}
    while fh.tell() < len(payload):
        tag = _read_varint(fh)
        n = _read_varint(fh) if tag is not None and tag & 7 == 2 else None
        if n is None:
            return {}
        fields[tag >> 3] = fh.read(n)
    return fields


def read_marker(path) -> dict | None:
    """The ``tomoseg`` metadata entry of an ONNX file as a dict, or None (not ONNX, not marked, unreadable)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            while fh.tell() < size:
                tag = _read_varint(fh)
                if tag is None or tag >> 3 == 0:
                    return None
                kind = tag & 7
                if kind == 0:
                    if _read_varint(fh) is None:
                        return None
                elif kind == 2:
                    n = _read_varint(fh)
                    if n is None or fh.tell() + n > size:
                        return None
                    if tag >> 3 == _METADATA_PROPS and n < 1 << 20:
                        entry = _entry(fh.read(n))
                        if entry.get(1) == KEY.encode():
                            return _record(entry.get(2, b""))
                    else:
                        fh.seek(n, 1)
                else:  # ModelProto's top level holds varints and length-delimited fields only
                    return None
    except OSError:
        return None
    return None


def _record(value: bytes) -> dict | None:
    try:
        record = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None
