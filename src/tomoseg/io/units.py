"""Length units as written by imaging software, converted to nanometres."""

from __future__ import annotations

_NM_PER_UNIT = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3,
    "micrometre": 1e3, "micrometers": 1e3, "micrometres": 1e3, "\\u00b5m": 1e3,  # ImageJ's escaped µ (keys lower case)
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6, "millimeters": 1e6, "millimetres": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7, "centimeters": 1e7, "centimetres": 1e7,
    "dm": 1e8, "decimeter": 1e8, "decimetre": 1e8,
    "m": 1e9, "meter": 1e9, "metre": 1e9, "meters": 1e9, "metres": 1e9,
    "a": 0.1, "å": 0.1, "\u212b": 0.1, "angstrom": 0.1, "angstroms": 0.1, "ångström": 0.1,
    "pm": 1e-3, "picometer": 1e-3, "picometre": 1e-3, "picometers": 1e-3, "picometres": 1e-3,
    "fm": 1e-6, "femtometer": 1e-6, "femtometre": 1e-6,
    "in": 2.54e7, "inch": 2.54e7, "inches": 2.54e7,
}
# OME's UnitsLength symbols that differ from the ones above only in case (Mm megametre, Pm petametre): never a
# voxel size, so refused rather than read as mm or pm
_CASE_SENSITIVE = {"Mm", "Pm", "Em", "Zm", "Ym", "Tm", "Gm"}


def nm_per_unit(unit: str | None) -> float | None:
    """Nanometres in one ``unit``; ``None`` for an unknown or missing unit."""
    if unit is None:
        return None
    text = str(unit).strip()
    if text in _CASE_SENSITIVE:
        return None
    return _NM_PER_UNIT.get(text.lower())


_ASCII_NAMES = {1e3: "um", 0.1: "angstrom"}  # the units above written with a character beyond ASCII (µm, Å)


def ascii_unit(unit: str) -> str:
    """``unit`` in ASCII, for a header that other readers decode as ASCII (NRRD: pynrrd drops what is not, reading
    Fiji's ``"µm"`` as ``"m"``; ITK and 3D Slicer read bytes): itself where it is ASCII, else the ASCII name of the
    same length (``"µm"``, ``"μm"``: ``"um"``; ``"Å"``: ``"angstrom"``), else (a unit tomoseg does not know) its
    other characters escaped (``\\xb5``).

    >>> ascii_unit("µm"), ascii_unit("nm"), ascii_unit("Å")
    ('um', 'nm', 'angstrom')
    """
    text = str(unit)
    if text.isascii():
        return text
    name = _ASCII_NAMES.get(nm_per_unit(text))
    return name if name is not None else text.encode("ascii", "backslashreplace").decode("ascii")


def parse_length_nm(text: str) -> float:
    """``"650"`` (nm), ``"650nm"``, ``"0.65um"``, ``"0.65 µm"``, ``"1e-3mm"`` to nanometres.

    Raises
    ------
    ValueError
        For text that is not a number with an optional known unit.
    """
    import re

    m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf))\s*([^\d\s].*?)?\s*",
                     str(text), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a length: write a number in nm (650) or with a unit (0.65um)")
    value = float(m.group(1))
    unit = m.group(2)
    if unit is None:
        return value
    factor = nm_per_unit(unit)
    if factor is None:
        raise ValueError(f"{text!r}: unknown unit {unit!r}; use nm, um (or µm) or mm")
    return value * factor


def attribute_text(value) -> str | None:
    """A file's attribute (HDF5, Zarr) or scalar dataset as a non-empty string, else None."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) and value else None


def voxel_size_text(voxel_size, unit: str = " nm") -> str:
    """A voxel size (z, y, x in nm) as every message and report writes it: ``29.33 × 29.33 × 29.33 nm``
    (``unit=""``: the numbers alone).

    Sizes of a millimetre and more are written out to the nm (``1000000``, ``1234567``; ``:g`` wrote ``1e+06`` and
    ``1.23457e+06``, a size off by 33 nm shown as the same: review VS1).

    >>> voxel_size_text((60.0, 30, 30.5)), voxel_size_text([29.33] * 3, unit="")
    ('60 × 30 × 30.5 nm', '29.33 × 29.33 × 29.33')
    >>> voxel_size_text((1e6, 1234567, 0.001))
    '1000000 × 1234567 × 0.001 nm'
    """
    return " × ".join(_length_text(float(v)) for v in voxel_size) + unit


def _length_text(v: float) -> str:
    return f"{v:.0f}" if 1e6 <= abs(v) < 1e12 else f"{v:g}"


def readable_unit(largest_nm: float) -> tuple[str, float]:
    """The unit (nm, µm or mm) in which lengths up to ``largest_nm`` are written, and its size in nm: the largest
    unit that the value reaches, so a figure's ticks or a message never read 200000 nm (a 50 µm voxel scan's radii)
    nor 0.0003 mm.

    >>> readable_unit(293.0), readable_unit(2.25e5), readable_unit(5e6), readable_unit(float("nan"))
    (('nm', 1.0), ('µm', 1000.0), ('mm', 1000000.0), ('nm', 1.0))
    """
    for name, size in (("mm", 1e6), ("µm", 1e3)):
        if abs(largest_nm) >= size:
            return name, size
    return "nm", 1.0


def number_text(v: float) -> str:
    """A measured number as messages and reports write it: 4 significant digits, and from 10,000 up whole, in
    grouped digits (``.4g`` turns scientific there, and one column mixed 8.419e+04 with 114,270).

    >>> number_text(3.14159), number_text(84190.2), number_text(1.589e6)
    ('3.142', '84,190', '1,589,000')
    """
    short = f"{v:.4g}"
    return f"{v:,.0f}" if "e+" in short else short


MM3_BELOW_PER_UM3 = 1e-4  # number densities under this per µm³ (objects mm apart: lab scans) are said per mm³ too

