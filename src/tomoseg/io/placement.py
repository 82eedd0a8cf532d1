"""Where two volumes of one comparison lie in space, compared (adversarial review LO3).

``evaluate`` compares a prediction and its ground truth voxel by voxel, index by index. Files that record a
placement (an NRRD's ``space``, ``space directions`` and ``space origin``; an OME-Zarr level's translation) and
record different ones were compared without a word: a ground truth in another frame (rotated, flipped, or cut at
another origin) is scored against voxels it does not lie on. :func:`placement_difference` says what differs,
beyond rounding; a volume that records no placement (a TIFF, an HDF5 dataset) is compared with nothing.
"""

from __future__ import annotations

import numpy as np

ROUNDING = 1e-3  # of a voxel: origins and direction cosines closer than this are the same (a decimal rounded)


def _placement(volume) -> dict | None:
    """``{"space", "axes" (3x3, rows x, y, z: unit steps), "origin", "units"}`` of ``volume``: an NRRD's header
    (tomoseg keeps none for an NRRD along its axes at 0: that is its placement), an NRRD's axis mins or an OME-Zarr
    level's translation (nm, along the array's axes; 0 for an OME-Zarr image without one); None where the file
    records none."""
    orientation = getattr(volume, "orientation", None)
    if orientation:
        from .nrrd_file import space_units

        dirs = np.asarray(orientation["space directions"], dtype=float)
        lengths = np.linalg.norm(dirs, axis=1)
        if not np.all(lengths > 0):
            return None
        origin = orientation.get("space origin")
        units = space_units(orientation)  # mm for an anatomical space without units, as its voxel size
        return {"space": orientation.get("space"), "axes": dirs / lengths[:, None],
                "origin": np.zeros(3) if origin is None else np.asarray(origin, dtype=float),
                "units": units}
    origin = getattr(volume, "origin_nm", None)  # an OME-Zarr translation, an NRRD's axis mins (z, y, x nm)
    if getattr(volume, "format", None) == "nrrd" and origin is None:
        return {"space": None, "axes": np.eye(3), "origin": np.zeros(3), "units": None}
    at_zero = origin is None and getattr(volume, "ngff_at_zero", False)  # no translation: at 0, NGFF
    if at_zero:
        origin = (0.0, 0.0, 0.0)
    if origin is not None:  # (z, y, x) nm; here x, y, z as an NRRD's
        return {"space": None, "axes": np.eye(3), "origin": np.asarray(origin, dtype=float)[::-1],
                "units": ["nm"] * 3, "at_zero": at_zero}
    return None


def _axes_text(axes: np.ndarray) -> str:
    """How a volume's axes (unit steps along x, y, z) lie: along the array's, flipped, swapped or rotated."""
    if np.allclose(axes, np.eye(3), atol=ROUNDING):
        return "along the array's axes"
    rounded = np.round(axes)
    if np.allclose(axes, rounded, atol=ROUNDING) and np.allclose(np.abs(rounded).sum(axis=0), 1):
        if np.allclose(np.abs(rounded), np.eye(3)):
            return "flipped (" + ", ".join(a for a, s in zip("xyz", np.diag(rounded)) if s < 0) + ")"
        return "swapped or turned by 90 degrees"
    return "rotated"


def _origin_nm(place: dict) -> np.ndarray | None:
    from .units import nm_per_unit

    units = place["units"]
    if units is None and place["space"] is None and not place["origin"].any():
        return np.zeros(3)  # at 0, in any unit
    if units is None:
        return None
    return place["origin"] * np.array([nm_per_unit(u) for u in units], dtype=float)


def placement_difference(a, a_name, b, b_name, voxel_size=None) -> str | None:
    """What differs between where the volumes ``a`` and ``b`` (named ``a_name``, ``b_name`` in the message) lie, as
    their files record it; None where they agree to :data:`ROUNDING` of a voxel (``voxel_size``, z, y, x nm; else of
    a nm), or either records nothing.

    >>> import numpy as np
    >>> from tomoseg.io import Volume
    >>> p = Volume(np.zeros((2, 2, 2), np.uint8), path="p.zarr", format="zarr")
    >>> g = Volume(np.zeros((2, 2, 2), np.uint8), path="g.zarr", format="zarr")
    >>> p.origin_nm, g.origin_nm = (0.0, 0.0, 0.0), (0.0, 0.0, 600.0)
    >>> placement_difference(p, "p.zarr", g, "g.zarr", (30.0, 30.0, 30.0))
    'origin (x, y, z nm): p.zarr 0, 0, 0; g.zarr 600, 0, 0'
    """
    pa, pb = _placement(a), _placement(b)
    if pa is None or pb is None:
        return None
    for p, q in ((pa, pb), (pb, pa)):
        if p.get("at_zero") and (not np.allclose(q["axes"], np.eye(3), atol=ROUNDING) or _origin_nm(q) is None):
            return None  # a place an OME-Zarr cannot hold (rotated, an origin in no known unit): tomoseg's Zarr
            #              output of such an input has no translation, and lies where its input does
    said = []
    space_a, space_b = (str(p["space"]).strip().lower() if p["space"] else None for p in (pa, pb))
    if space_a and space_b and space_a != space_b:
        said.append(f"space: {a_name} {pa['space']}, {b_name} {pb['space']}")
    if not np.allclose(pa["axes"], pb["axes"], atol=ROUNDING):
        text_a, text_b = _axes_text(pa["axes"]), _axes_text(pb["axes"])
        said.append(f"axes: both {text_a}, differently" if text_a == text_b
                    else f"axes: {a_name}'s {text_a}, {b_name}'s {text_b}")
    oa, ob = _origin_nm(pa), _origin_nm(pb)
    step = min(voxel_size) if voxel_size else 1.0
    if oa is not None and ob is not None:
        if np.abs(oa - ob).max() > ROUNDING * step:
            said.append(f"origin (x, y, z nm): {a_name} {_numbers(oa)}; {b_name} {_numbers(ob)}")
    elif not (np.allclose(pa["origin"], pb["origin"]) and pa["units"] == pb["units"]):
        said.append(f"origin (x, y, z): {a_name} {_numbers(pa['origin'])} {_unit_text(pa)}; {b_name} "
                    f"{_numbers(pb['origin'])} {_unit_text(pb)}")
    return "; ".join(said) or None


def _numbers(values) -> str:
    from .units import voxel_size_text

    return voxel_size_text(values, unit="").replace(" × ", ", ")


def _unit_text(place: dict) -> str:
    return f"({', '.join(place['units'])})" if place["units"] else "(no units)"


def warn_if_placed_apart(a, a_name, b, b_name, voxel_size=None, *, how: str = "compared voxel by voxel") -> bool:
    """Warn (one line naming both files and what differs) where ``a`` and ``b`` are recorded to lie apart; whether
    it did. ``how``: what is done with them together (evaluate compares them; analyze reads the gray values of
    ``--intensity`` at the map's voxels)."""
    return _warn(placement_difference(a, a_name, b, b_name, voxel_size), a_name, b_name, how)


def warn_if_files_placed_apart(a_path, a_name, b_path, b_name, *, how: str) -> bool:
    """:func:`warn_if_placed_apart` for two files not yet opened (``segment --sample-mask``: the input is opened by
    :func:`~tomoseg.inference.segment`): both are opened only for their headers, and only where both are in a
    format that records a placement (NRRD, Zarr); what opening them says is said again when they are read, so not
    here. A file that cannot be opened is left to that reading to report."""
    import warnings

    from . import format_of, open_volume
    from ..errors import TomosegError

    try:
        if not all(format_of(p) in ("nrrd", "zarr") for p in (a_path, b_path)):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_volume(a_path) as a, open_volume(b_path) as b:
                differs = placement_difference(a, a_name, b, b_name, a.voxel_size)
    except (TomosegError, OSError, ValueError):
        return False
    return _warn(differs, a_name, b_name, how)


def _warn(differs: str | None, a_name, b_name, how: str) -> bool:
    from ..errors import warn

    if differs:
        warn(f"{a_name} and {b_name} are {how}, but their files place them differently in space "
             f"({differs}): check that both are on the same voxel grid (the same scan, cut and orientation)")
    return bool(differs)
