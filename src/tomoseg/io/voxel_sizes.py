"""Voxel sizes that two sources give for the same voxels, compared (review U1, U2).

``--voxel-size`` against the size the file records (:func:`override_message`): a correction is said and
kept in the run's notes; a factor near 1000 (a length in µm typed as nm) or the file's size in reverse order
(x y z for Z Y X) is warned about. The volumes of one analysis (a map and its gray image, a prediction and its
ground truth) against each other (:func:`shared_voxel_size`): they hold the same voxels, so sizes that differ
mean one file is wrong, and the measurements use one of them.
"""

from __future__ import annotations

import math

from ..errors import warn
from .units import voxel_size_text

#: said by analyze, evaluate and track where no voxel size is known (review U5: the sphericities, unitless, are
#: still computed, for cubic voxels, which the note did not say)
UNKNOWN_NOTE = ("voxel size unknown; nm columns are empty, and the sphericities are computed for cubic voxels. "
                "Pass --voxel-size Z Y X.")
RELATIVE_TOLERANCE = 1e-3  # sizes closer than this are the same (rounded µm in one file, nm in another)
UNIT_SLIP = 0.05           # a ratio within 5 % of 10^3 or 10^6 is read as a unit mistake


def voxel_size_from_attributes(attrs, notes: list, what: str = "dataset") -> tuple | None:
    """(z, y, x) in nm from an HDF5 dataset's or a Zarr array's attributes: ``element_size_um`` (µm; the
    convention of ilastik, Fiji's HDF5 plugin and BigDataViewer) or ``voxel_size_nm``, or ``voxel_size`` or
    ``pixel_size`` (the volume's own pixels: the attribute is the dataset's) with a ``units`` (or ``unit``)
    attribute; one number is an isotropic size (said in ``notes``). ``voxel_size`` or ``pixel_size`` without a
    length unit is not guessed (a bare 0.65 could be µm, or m as Data Exchange's SI default has it): the size
    stays unknown, said in ``notes``. None where none is given; NaN where one is unreadable (reported as not
    valid; ``--voxel-size`` overrides)."""
    import numpy as np

    from .units import attribute_text, nm_per_unit

    units = attrs.get("units") if "units" in attrs else attrs.get("unit")
    unit_text = attribute_text(units)
    unit = nm_per_unit(unit_text)
    if "element_size_um" in attrs:
        key, factor = "element_size_um", 1e3
    elif "voxel_size_nm" in attrs:
        key, factor = "voxel_size_nm", 1.0
    else:
        key = next((k for k in ("voxel_size", "pixel_size") if k in attrs), None)
        if key is None:
            return None
        own = _length_text(attrs[key])  # "0.65 um": a length with its unit in the value itself (review HP1)
        if own is not None:
            notes.append(f"the {what}'s {key} is {attribute_text(attrs[key])!r}, taken as an isotropic voxel size "
                         f"of {own:g} nm")
            return (own,) * 3
        axis_units = _per_axis_units(units)  # ["um", "um", "um"]: a unit for each axis (HP2)
        if not unit and axis_units is not None and len({nm_per_unit(u) for u in axis_units}) == 1:
            unit_text, factor = axis_units[0], nm_per_unit(axis_units[0])
        elif not unit and axis_units is not None:
            unit_text, factor = f"(units {', '.join(axis_units)})", np.array([nm_per_unit(u) for u in axis_units])
        elif not unit:
            said = ("no units attribute" if units is None else f"units {unit_text!r}, not a length" if unit_text
                    else f"units {shown(units)}, not a length tomoseg knows")
            notes.append(f"the {what}'s {key} has {said}; voxel size unknown: pass --voxel-size Z Y X")
            return None
        else:
            factor = unit
    if is_boolean(attrs[key]):  # True read as 1 (um): 1000 nm (review HP5)
        notes.append(boolean_note(f"the {what}'s {key}", attrs[key]))
        return None
    try:
        raw = np.ravel(np.asarray(attrs[key], dtype=np.float64))
        values = tuple(float(v) for v in raw * factor)
    except (TypeError, ValueError, OSError):
        return (float("nan"),) * 3
    if len(values) == 1:
        notes.append(f"the {what}'s {key} is one number ({float(raw[0]):g}), taken as an isotropic voxel size of "
                     f"{values[0]:g} nm")
        return values * 3
    if len(values) != 3:
        notes.append(f"the {what}'s {key} holds {len(values)} values, not 1 or 3 (z, y, x); voxel size unknown")
        return None
    if key == "pixel_size":
        notes.append(f"voxel size from the {what}'s pixel_size ({', '.join(f'{float(v):g}' for v in raw)} "
                     f"{unit_text}, z, y, x)")
    return values


def _length_text(value) -> float | None:
    """A ``pixel_size`` or ``voxel_size`` attribute written as text with its unit (``"0.65 um"``, ``b"650nm"``) in
    nm; None for anything else (a number, text without a unit)."""
    from .units import attribute_text, parse_length_nm

    text = attribute_text(value)
    if text is None or not any(c.isalpha() for c in text.replace("e", "").replace("E", "")):
        return None
    try:
        return parse_length_nm(text)
    except ValueError:
        return None


def _per_axis_units(units) -> list | None:
    """A ``units`` attribute that gives one length unit for each of three axes (``["um", "um", "um"]``), as text;
    None for anything else."""
    import numpy as np

    from .units import attribute_text, nm_per_unit

    items = np.ravel(np.asarray(units, dtype=object)) if units is not None else []
    texts = [attribute_text(u) for u in items]
    if len(texts) != 3 or any(t is None or nm_per_unit(t) is None for t in texts):
        return None
    return texts


def is_boolean(value) -> bool:
    """Whether a size or position a file gives holds a boolean (``True``, ``np.bool_``, a list or array with one in
    it, ``[true, 1, 1]`` in JSON), which NumPy and ``float`` read as the numbers 1 and 0: no length."""
    import numpy as np

    try:
        if np.asarray(value).dtype == bool:
            return True
        items = np.ravel(np.asarray(value, dtype=object))  # a JSON list keeps its True among numbers here
    except Exception:  # noqa: BLE001 - unreadable: left to the reading that follows
        return False
    return any(isinstance(v, (bool, np.bool_)) for v in items)


BOOLEAN = "a boolean (true or false), not a length"  # how every reader says it (review HP5), in its notes


def boolean_note(where: str, value) -> str:
    """The note for ``where`` (an attribute, a dataset, a transform) holding the boolean ``value``."""
    return f"{where} is {shown(value)}, {BOOLEAN}; voxel size unknown: pass --voxel-size Z Y X"


def boolean_problem(path, voxel_size, notes: list) -> str | None:
    """The warning for a volume at ``path`` whose voxel size is unknown (``voxel_size`` None) because its file gives
    a boolean for it (a note of :func:`boolean_note`): kept as ``Volume.voxel_size_problem``, which every command
    says when it opens the file (not only ``info``: a file's broken size, not one it does not give) unless
    ``--voxel-size`` replaces it; None otherwise."""
    if voxel_size is not None:
        return None
    said = next((n for n in notes if BOOLEAN in n and "voxel size unknown" in n), None)
    return f"{path}: {said}" if said else None


def shown(value) -> str:
    """An attribute's value as messages write it (a list for an array)."""
    import numpy as np

    return str(np.ravel(np.asarray(value, dtype=object)).tolist() if np.ndim(value) else value)


def same_voxel_size(a, b) -> bool:
    """Whether two (z, y, x) sizes agree to :data:`RELATIVE_TOLERANCE`."""
    return all(math.isclose(float(u), float(v), rel_tol=RELATIVE_TOLERANCE) for u, v in zip(a, b))


def _unit_slip(given: float, recorded: float) -> int:
    """The power of ten (±3, ±6) by which ``given`` is off from ``recorded`` where that looks like a unit
    mistake, else 0."""
    ratio = math.log10(given / recorded)
    for power in (-6, -3, 3, 6):
        if abs(ratio - power) < math.log10(1 + UNIT_SLIP):
            return power
    return 0


def override_message(recorded, given, where, *, option: str = "--voxel-size",
                     source: str = "the file") -> tuple[str, str] | None:
    """``("note" | "warning", message)`` for ``option`` ``given`` (z, y, x nm) replacing the size ``recorded``
    by ``source`` (``where``: its name); None where they agree or ``source`` records none. The napari widget
    passes its voxel-size field and the layer's scale."""
    if recorded is None or given is None or not all(math.isfinite(v) and v > 0 for v in recorded):
        return None
    if same_voxel_size(recorded, given):
        return None
    head = f"{where}: {option} {voxel_size_text(given)}"
    slips = [_unit_slip(g, r) for g, r in zip(given, recorded)]
    if any(slips):
        power = next(p for p in slips if p)
        if getattr(given, "said_implausible", False):  # the warning just said gave the same advice: once is enough
            return "note", (f"{head} replaces {source}'s {voxel_size_text(recorded)}, {10 ** abs(power):,}x "
                            f"{'smaller' if power < 0 else 'larger'} (see the warning above)")
        if power < 0:
            unit, name = ("um", "µm") if power == -3 else ("mm", "mm")
            spelled = " ".join(f"{g:g}{unit}" for g in given)
            nm = " ".join(f"{g * 10 ** -power:g}" for g in given)
            hint = f"if {name} were meant, write {option} {spelled} (or the nm: {nm})"
        else:
            hint = f"check the unit ({option} is in nm unless written with one: 0.65um)"
        return "warning", (f"{head} is {10 ** abs(power):,}x {'smaller' if power < 0 else 'larger'} than "
                           f"{source}'s {voxel_size_text(recorded)}: {hint}; measuring with {option} as given")
    if recorded[0] != recorded[2] and same_voxel_size(tuple(reversed(recorded)), given):
        return "warning", (f"{head} is {source}'s {voxel_size_text(recorded)} in reverse order: {option} is Z Y X "
                           f"(z first); give {option} {' '.join(f'{v:g}' for v in recorded)} if {source} is right; "
                           f"measuring with {option} as given")
    return "note", f"{head} replaces {source}'s {voxel_size_text(recorded)}"


def shared_voxel_size(volumes):
    """The voxel size of the first of ``volumes`` (``(name, volume)`` pairs; a volume may be None or record no
    size) that records one, the measured volume first; a warning names any other that records a different
    size, and says which is used."""
    chosen = None
    for name, volume in volumes:
        size = getattr(volume, "voxel_size", None) if volume is not None else None
        if size is None:
            continue
        if chosen is None:
            chosen = (name, size)
        elif not same_voxel_size(chosen[1], size):
            warn(f"{name} records voxel size {voxel_size_text(size)} and {chosen[0]} {voxel_size_text(chosen[1])}, "
                 f"but they hold the same voxels: measuring with {chosen[0]}'s; pass --voxel-size Z Y X to set the "
                 "right one")
    return chosen[1] if chosen else None
