"""Length units as written by imaging software, converted to nanometres."""

from __future__ import annotations

_NM_PER_UNIT = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3,
    "micrometre": 1e3, "micrometers": 1e3, "micrometres": 1e3, "\\u00B5m": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "cm": 1e7, "m": 1e9, "meter": 1e9, "metre": 1e9,
    "a": 0.1, "å": 0.1, "angstrom": 0.1,
}


def nm_per_unit(unit: str | None) -> float | None:
    """Nanometres in one ``unit``; ``None`` for an unknown or missing unit."""
    if unit is None:
        return None
    return _NM_PER_UNIT.get(str(unit).strip().lower())
