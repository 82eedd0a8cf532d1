"""Two scans of one synthetic pillar: before and after a thermal cycle, with the exact expected matches.

The sample is built once in its own frame (the BEFORE scan's voxel grid): the pillar, its grain-like
texture and its objects. The AFTER scan sees the same sample moved by a known rigid (or similarity)
motion, with a known subset of objects changed (grown, shrunk, removed, added, merged in pairs, split
in two), a gray-level change, and fresh imaging (ring artifacts, blur, noise, drift). Labels are exact
in both scans (a voxel belongs to an object where at least half of it is covered), so the expected
match of every object is known.

Motion convention (used by :mod:`tomoseg.track` too): a point ``p`` of the BEFORE grid, (z, y, x)
voxels, is at ``q = s R (p - c) + c + t`` in the AFTER grid, ``c`` the volume's centre; as a 4 × 4
homogeneous matrix, :func:`motion_matrix`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import TomosegError
from .config import PhantomConfig
from .phantom import _check_shape, _config, _occupancy, _place_objects, _smooth_noise, apply_imaging, objects_table

STATUSES = ("persisting", "appeared", "vanished", "merged", "split")
MIN_GAP = 2.5  # voxels between object surfaces, as make_phantom keeps them: labels never touch


@dataclass(frozen=True)
class Motion:
    """Rigid motion of the sample between the scans: rotations (degrees) about the z, y and x axes
    through the volume's centre, then a translation (z, y, x voxels); ``scale`` != 1 for a similarity."""

    rotation_deg: tuple = (0.0, 0.0, 0.0)
    translation_vox: tuple = (0.0, 0.0, 0.0)
    scale: float = 1.0


@dataclass(frozen=True)
class PairChanges:
    """Shares of the BEFORE objects that change, and by how much (radii in voxels)."""

    grow: float = 0.15
    grow_by: float = 1.0          # added to the equivalent radius
    shrink: float = 0.08
    shrink_by: float = 0.7
    remove: float = 0.06
    add: float = 0.06             # new objects, as a share of the BEFORE count
    merge: float = 0.08           # share of objects that merge (in pairs)
    split: float = 0.04
    gray_gain: float = 0.93       # AFTER gray = gain × BEFORE gray + offset (beam and detector changes)
    gray_offset: float = 10.0
    object_gray_sd: float = 4.0   # random change of each object's own gray value
    # new objects formed beside removed ones' spots (off by default): a share of the removed objects, each with a
    # new ball of radius in beside_radius whose centre lies beside_distance voxels from the removed one's. The
    # truth keeps them apart (vanished, and appeared with change "added_beside_removed"): what a tracker pairs as
    # one object that changed, with one scan before and one after
    beside_removed: float = 0.0
    beside_distance: tuple = (1.5, 3.5)
    beside_radius: tuple = (1.5, 4.0)

    def __post_init__(self):
        for name in SHARES + ("add",) + RADIUS_CHANGES:
            problem = change_problem(name, getattr(self, name))
            if problem:
                raise TomosegError(f"PairChanges {name}={getattr(self, name)!r}: {problem}")


SHARES = ("grow", "shrink", "remove", "merge", "split", "beside_removed")  # of PairChanges, each 0-1
# add: new objects as a share of the BEFORE count, 0 or more (more new precipitates than old ones is a real case)
RADIUS_CHANGES = ("grow_by", "shrink_by")  # voxels of equivalent radius
SHRUNK_MIN_RADIUS = 2.5  # only objects of this equivalent radius (voxels) or more are shrunk


def change_problem(name: str, value) -> str | None:
    """What is wrong with ``value`` for the :class:`PairChanges` field ``name`` (None where nothing is): the
    shares lie in 0-1 (``add``, new objects per BEFORE object, is 0 or more), a radius grows by more than 0 voxels, and shrinks by more than 0 and less than
    :data:`SHRUNK_MIN_RADIUS` (the smallest object shrunk would vanish)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "give a number"
    if not np.isfinite(v):
        return "give a finite number"
    if name in SHARES and not 0 <= v <= 1:
        return "give a share between 0 and 1 (e.g. 0.3 for 30 %)"
    if name == "add" and v < 0:
        return "give the new objects as a share of the BEFORE objects' count, 0 or more (e.g. 0.1, or 2 for twice as many)"
    if name == "grow_by" and not v > 0:
        return "give the voxels added to a grown object's radius, more than 0 (e.g. 1)"
    if name == "shrink_by" and not 0 < v < SHRUNK_MIN_RADIUS:
        return (f"give the voxels taken from a shrunk object's radius, more than 0 and less than {SHRUNK_MIN_RADIUS} "
                f"(objects of radius {SHRUNK_MIN_RADIUS} voxels or more are shrunk)")
    return None


@dataclass
class PhantomPair:
    """``before`` and ``after`` scans (each ``image`` uint8, ``labels`` uint8, ``instances`` uint32; ``before``
    also ``objects``, the objects table of :func:`~tomoseg.synthetic.make_phantom`), the
    ``matrix`` (4 × 4, BEFORE voxel → AFTER voxel), the ``motion``, and ``truth``: the expected matches,
    one row per link (``before_label``, ``after_label`` instance ids, 0 for none; ``status``; ``change``;
    ``group``; ``edge`` = 1 where the object touches or leaves a field of view in either scan), and
    ``formed_beside``: {AFTER instance id: BEFORE instance id} of each new object formed beside a removed one's
    spot (:attr:`PairChanges.beside_removed`; empty by default)."""

    before: dict
    after: dict
    matrix: np.ndarray
    motion: Motion
    changes: PairChanges
    truth: dict
    config: PhantomConfig = field(repr=False, default=None)
    formed_beside: dict = field(default_factory=dict)


def rotation_matrix(rotation_deg) -> np.ndarray:
    """R = Rz · Ry · Rx in (z, y, x) coordinates (rotation about z turns the y–x plane)."""
    az, ay, ax = np.deg2rad(np.asarray(rotation_deg, float))
    rz = np.array([[1, 0, 0], [0, np.cos(az), -np.sin(az)], [0, np.sin(az), np.cos(az)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[np.cos(ax), -np.sin(ax), 0], [np.sin(ax), np.cos(ax), 0], [0, 0, 1]])
    return rz @ ry @ rx


def motion_matrix(motion: Motion, shape, voxel_size=None) -> np.ndarray:
    """4 × 4 homogeneous matrix mapping BEFORE voxel coordinates (z, y, x) to AFTER ones. The rotation is the
    sample's, in physical space: with non-cubic voxels (``voxel_size``, z, y, x nm) the voxel matrix is
    S⁻¹·sR·S, S = diag(voxel_size); the translation stays in voxels."""
    c = (np.asarray(shape, float) - 1) / 2
    a = motion.scale * rotation_matrix(motion.rotation_deg)
    if voxel_size is not None:
        vs = np.asarray(voxel_size, float)
        a = a * vs[None, :] / vs[:, None]
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = c + np.asarray(motion.translation_vox, float) - a @ c
    return m


def random_motion(rng, *, max_rotation_z: float = 20.0, max_tilt: float = 2.0, max_shift: float = 6.0) -> Motion:
    rng = np.random.default_rng(rng)
    return Motion(rotation_deg=(float(rng.uniform(-max_rotation_z, max_rotation_z)),
                                float(rng.uniform(-max_tilt, max_tilt)), float(rng.uniform(-max_tilt, max_tilt))),
                  translation_vox=tuple(float(v) for v in rng.uniform(-1, 1, 3) * np.array([0.5, 1, 1]) * max_shift))


# ------------------------------------------------------------------ bodies: one object = one or more ellipsoids
def _body(centre, axes, rot, gray) -> dict:
    return {"parts": [(np.asarray(centre, float), np.asarray(axes, float), np.asarray(rot, float))],
            "gray": float(gray)}


def _reach(body) -> tuple[np.ndarray, float]:
    """A bounding sphere of the body: (centre, radius)."""
    centres = np.array([p[0] for p in body["parts"]])
    c = centres.mean(axis=0)
    return c, float(max(np.linalg.norm(p[0] - c) + p[1].max() for p in body["parts"]))


def _fits(body, others, skip=()) -> bool:
    c, r = _reach(body)
    for j, other in enumerate(others):
        if j in skip or other is None:
            continue
        for piece in other if isinstance(other, list) else [other]:
            oc, orr = _reach(piece)
            if np.linalg.norm(oc - c) - r - orr < MIN_GAP:
                return False
    return True


def _align(direction) -> np.ndarray:
    """A rotation whose first axis is ``direction`` (for ellipsoids along a line)."""
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    helper = np.array([1.0, 0, 0]) if abs(u[0]) < 0.9 else np.array([0, 1.0, 0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v)
    return np.stack([u, v, np.cross(u, v)], axis=1)


def _scaled(body, factor) -> dict:
    return {"parts": [(c, a * factor, r) for c, a, r in body["parts"]], "gray": body["gray"]}


def _eq_radius(body) -> float:
    return float(np.cbrt(body["parts"][0][1].prod()))


def _plan_changes(bodies, changes: PairChanges, rng, inside) -> tuple[list, list]:
    """AFTER bodies (sample frame) and the links: (before ids, after index, status, change)."""
    n = len(bodies)
    radius = np.array([_eq_radius(b) for b in bodies])
    after: list = [dict(b) for b in bodies]  # index i = object i+1 unless changed
    kind = ["none"] * n
    partner: dict = {}
    order = rng.permutation(n)
    # at least one of each change asked for (a merge takes two objects)
    counts = {k: max(int(round(getattr(changes, k) * n / (2 if k == "merge" else 1))), int(getattr(changes, k) > 0))
              for k in ("grow", "shrink", "remove", "merge", "split")}
    # merges: pairs of close objects joined by a bridge
    for i in order:
        if counts["merge"] <= 0:
            break
        if kind[i] != "none" or radius[i] < 2.0:
            continue
        ci, ri = _reach(bodies[i])
        best = None
        for j in range(n):
            if j == i or kind[j] != "none" or radius[j] < 2.0:
                continue
            cj, rj = _reach(bodies[j])
            gap = np.linalg.norm(cj - ci) - ri - rj
            if gap < 6.0 and (best is None or gap < best[1]):
                best = (j, gap)
        if best is None:
            continue
        j = best[0]
        cj, _ = _reach(bodies[j])
        d = cj - ci
        bridge_r = 0.6 * min(radius[i], radius[j])
        bridge = (ci + d / 2, np.array([np.linalg.norm(d) / 2, bridge_r, bridge_r]), _align(d))
        merged = {"parts": bodies[i]["parts"] + bodies[j]["parts"] + [bridge],
                  "gray": (bodies[i]["gray"] + bodies[j]["gray"]) / 2}
        if not _fits(merged, after, skip=(i, j)):
            continue
        after[i], after[j] = merged, None
        kind[i] = kind[j] = "merged"
        partner[i] = j
        counts["merge"] -= 1
    # splits: one object into two smaller ones side by side
    for i in order:
        if counts["split"] <= 0:
            break
        if kind[i] != "none" or radius[i] < 3.5:
            continue
        u = rng.standard_normal(3)
        u /= np.linalg.norm(u)
        r2 = 0.55 * radius[i]  # two pieces with 2.5 voxels between them, mostly where the object was
        c = bodies[i]["parts"][0][0]
        pieces = [_body(c + s * u * (r2 + 1.25), [r2] * 3, np.eye(3), bodies[i]["gray"]) for s in (-1, 1)]
        if not all(_fits(p, after, skip=(i,)) for p in pieces):
            continue
        after[i] = pieces
        kind[i] = "split"
        counts["split"] -= 1
    for i in order:
        if kind[i] != "none":
            continue
        if counts["remove"] > 0:
            after[i], kind[i] = None, "removed"
            counts["remove"] -= 1
        elif counts["grow"] > 0:
            grown = _scaled(bodies[i], (radius[i] + changes.grow_by) / radius[i])
            if _fits(grown, after, skip=(i,)):
                after[i], kind[i] = grown, "grown"
                counts["grow"] -= 1
        elif counts["shrink"] > 0 and radius[i] >= SHRUNK_MIN_RADIUS:
            after[i], kind[i] = _scaled(bodies[i], (radius[i] - changes.shrink_by) / radius[i]), "shrunk"
            counts["shrink"] -= 1
    # AFTER objects and links
    out, links = [], []
    for i in range(n):
        if kind[i] == "merged" and after[i] is None:
            continue
        if after[i] is None:
            links.append(([i + 1], [], "vanished", "removed"))
        elif kind[i] == "split":
            out.extend(after[i])
            links.append(([i + 1], [len(out) - 2, len(out) - 1], "split", "split"))
        elif kind[i] == "merged":
            out.append(after[i])
            links.append(([i + 1, partner[i] + 1], [len(out) - 1], "merged", "merged"))
        else:
            out.append(after[i])
            links.append(([i + 1], [len(out) - 1], "persisting", kind[i]))
    return out, links


def _add_objects(cfg, count, bodies, shape, centre_yx, pillar_r, rng, keep_in) -> list:
    """New objects in free space of the sample, inside the AFTER field of view (``keep_in(point)``)."""
    added = []
    candidates = _place_objects(cfg.with_(object_fraction=max(cfg.object_fraction, 1e-4), cluster_fraction=0.0),
                                shape, centre_yx, pillar_r, rng)
    for c, a, r, g in zip(candidates["centres"], candidates["semi_axes"], candidates["rotations"],
                          candidates["gray"]):
        if len(added) >= count:
            break
        body = _body(c, a, r, g)
        if keep_in(c, a.max()) and _fits(body, bodies + added):
            added.append(body)
    return added


def _form_beside(removed: list, changes: PairChanges, others: list, rng, keep_in) -> list:
    """New balls formed beside the spots of a share (``changes.beside_removed``, at least one) of the ``removed``
    bodies, as (index into ``removed``, body): centre ``beside_distance`` voxels from the removed body's centre in
    a random direction, radius in ``beside_radius``, the removed body's gray value; each keeps the gap to the
    ``others`` (the AFTER bodies) and lies inside both fields of view, else that spot gets none."""
    count = max(int(round(changes.beside_removed * len(removed))), 1) if removed else 0
    formed = []
    for k in rng.permutation(len(removed)):
        if len(formed) >= count:
            break
        centre, _ = _reach(removed[k])
        for _ in range(30):  # a direction and size where the new ball fits
            u = rng.standard_normal(3)
            radius = rng.uniform(*changes.beside_radius)
            body = _body(centre + rng.uniform(*changes.beside_distance) * u / np.linalg.norm(u), [radius] * 3,
                         np.eye(3), removed[k]["gray"])
            if keep_in(body["parts"][0][0], radius) and _fits(body, others + [b for _, b in formed]):
                formed.append((int(k), body))
                break
    return formed


def _carried_ellipsoid(lin: np.ndarray, axes, rot) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes and rotation of the ellipsoid ``rot·diag(axes)·(unit ball)`` carried through the linear map
    ``lin``: from the SVD of lin·rot·diag(axes) = U·Σ·Vᵀ, axes Σ and rotation U (Vᵀ only turns the ball)."""
    u, sigma, _ = np.linalg.svd(lin @ np.asarray(rot, float) @ np.diag(np.asarray(axes, float)))
    if np.linalg.det(u) < 0:  # an ellipsoid is symmetric: flip one axis for a proper rotation
        u[:, 2] = -u[:, 2]
    return sigma, u


# ------------------------------------------------------------------ rendering
def _render_objects(image, instances, bodies, shape, to_scan=None):
    """Draw bodies into ``image`` (in place) and their ids into ``instances``; returns the label voxels and the
    occupancy volume (voxels) per body."""
    voxels = np.zeros(len(bodies), np.int64)
    occupancy = np.zeros(len(bodies))
    for k, body in enumerate(bodies):
        parts = []
        for c, a, r in body["parts"]:
            if to_scan is not None:
                c, a, r = to_scan(c, a, r)
            lo = np.floor(c - a.max() - 1).astype(int)
            hi = np.ceil(c + a.max() + 1).astype(int) + 1
            if np.any(hi <= 0) or np.any(lo >= np.asarray(shape)):
                continue  # out of the field of view
            parts.append(_occupancy(c, a, r, shape))
        if not parts:
            continue
        lo = np.min([[s.start for s in sl] for sl, _ in parts], axis=0)
        hi = np.max([[s.stop for s in sl] for sl, _ in parts], axis=0)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        occ = np.zeros(tuple(hi - lo), np.float32)
        for sl, o in parts:
            sub = tuple(slice(s.start - a, s.stop - a) for s, a in zip(sl, lo))
            np.maximum(occ[sub], o, out=occ[sub])
        region = image[box]
        region += occ * (np.float32(body["gray"]) - region)
        mask = occ >= 0.5
        instances[box][mask] = k + 1
        voxels[k] = int(mask.sum())
        occupancy[k] = float(occ.sum())
    return voxels, occupancy


def _imaging(image, cfg: PhantomConfig, rng, r_axis, recon2d) -> np.ndarray:
    """The imaging chain of :func:`~tomoseg.synthetic.make_phantom`, to 8 bits."""
    image = apply_imaging(image, cfg, rng, r_axis, recon2d)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _base(shape, cfg, centre_yx, pillar_r, texture, inverse=None, slab=16) -> np.ndarray:
    """Matrix, surroundings and texture of the sample seen in a scan (``inverse``: scan → sample frame)."""
    Z, Y, X = shape
    image = np.empty(shape, np.float32)
    for z0 in range(0, Z, slab):
        zz, yy, xx = np.mgrid[z0:min(z0 + slab, Z), 0:Y, 0:X].astype(np.float32)
        if inverse is not None:
            pts = np.stack([zz, yy, xx]).reshape(3, -1)
            pts = (inverse[:3, :3] @ pts + inverse[:3, 3:]).astype(np.float32)
            zz, yy, xx = (p.reshape(zz.shape) for p in pts)
        r = np.hypot(yy - centre_yx[0], xx - centre_yx[1])
        edge = np.clip(pillar_r - r + 0.5, 0, 1)
        base = cfg.environment_gray + edge * (cfg.matrix_gray - cfg.environment_gray)
        base += cfg.edge_ring_gray * np.exp(-0.5 * ((r - pillar_r + cfg.edge_ring_width) / cfg.edge_ring_width) ** 2)
        if texture is not None:
            if inverse is None:
                tex = texture[z0:z0 + slab]
            else:
                tex = ndimage.map_coordinates(texture, [zz, yy, xx], order=1, mode="nearest")
            base += tex * edge
        image[z0:z0 + slab] = base
    return image


def make_phantom_pair(shape, *, rng=None, motion: Motion | None = None, changes: PairChanges | None = None,
                      preset_name: str = "default", config: PhantomConfig | None = None, voxel_size=None,
                      **overrides) -> PhantomPair:
    """Two scans of one synthetic pillar, before and after a thermal cycle, with exact expected matches.

    Parameters
    ----------
    shape : (z, y, x)
        Size of both scans in voxels.
    rng : numpy.random.Generator or int, optional
        All random choices come from it: the same seed gives the same pair.
    motion : Motion, optional
        The sample's motion between the scans; random (up to 20° about z, 2° tilts, 6 voxels) by default.
    changes : PairChanges, optional
        Which share of the objects grow, shrink, vanish, appear, merge or split; and, off by default
        (``beside_removed``), new objects formed 1.5-3.5 voxels from removed ones' spots.
    voxel_size : (z, y, x) nm, optional
        The motion is rigid in physical space with these voxels (cubic voxels without it); objects, defined in
        the BEFORE scan's voxels, are carried into the AFTER scan as the ellipsoids they become.
    preset_name, config, **overrides
        The phantom's parameters, as for :func:`~tomoseg.synthetic.make_phantom`.

    Examples
    --------
    >>> from tomoseg.synthetic.pair import make_phantom_pair
    >>> pair = make_phantom_pair((32, 96, 96), rng=0)
    >>> set(pair.truth["status"]) <= {"appeared", "merged", "persisting", "split", "vanished"}
    True
    """
    shape = _check_shape(shape)
    cfg = _config(config, preset_name, overrides)
    rng = np.random.default_rng(rng)
    changes = changes or PairChanges()
    motion = motion or random_motion(rng)
    Z, Y, X = shape
    side = min(Y, X)
    if cfg.pillar_radius * side < 8:
        raise TomosegError(f"phantom shape {shape}: make y and x at least 48")
    if cfg.object_fraction > 0 and 2 * cfg.radius_max + 4 > Z:
        raise TomosegError(f"phantom shape {shape} is too small for objects of radius up to {cfg.radius_max:.1f}")
    centre_yx = np.array([(Y - 1) / 2, (X - 1) / 2]) + rng.uniform(-1, 1, 2) * cfg.pillar_offset * side
    pillar_r = cfg.pillar_radius * side
    placed = _place_objects(cfg, shape, centre_yx, pillar_r, rng)
    bodies = [_body(c, a, r, g) for c, a, r, g in zip(placed["centres"], placed["semi_axes"], placed["rotations"],
                                                        placed["gray"])]
    cubic = voxel_size is None or np.ptp(np.asarray(voxel_size, float)) == 0
    matrix = motion_matrix(motion, shape, None if cubic else voxel_size)
    inverse = np.linalg.inv(matrix)
    lin = matrix[:3, :3]

    def to_after(c, a, r):
        if cubic:  # lin is s·R: the ellipsoid keeps its axes, turned
            return lin @ c + matrix[:3, 3], a * motion.scale, (lin / motion.scale) @ r
        return (lin @ c + matrix[:3, 3], *_carried_ellipsoid(lin, a, r))

    def keep_in(c, reach):
        q = lin @ c + matrix[:3, 3]
        return bool(np.all(q - reach - 2 >= 0) and np.all(q + reach + 2 <= np.asarray(shape) - 1)
                    and np.all(c - reach - 2 >= 0) and np.all(c + reach + 2 <= np.asarray(shape) - 1))

    after_bodies, links = _plan_changes(bodies, changes, rng, keep_in)
    for k, body in enumerate(after_bodies):  # each persisting object's own gray value changes a little
        after_bodies[k] = {**body, "gray": float(np.clip(body["gray"] + rng.normal(0, changes.object_gray_sd), 0, 255))}
    added = _add_objects(cfg, int(round(changes.add * len(bodies))), bodies + after_bodies, shape, centre_yx,
                         pillar_r, rng, keep_in)
    for body in added:
        after_bodies.append(body)
        links.append(([], [len(after_bodies) - 1], "appeared", "added"))
    formed_beside = {}
    if changes.beside_removed > 0:  # no random draws otherwise: the default pairs stay as they were
        removed_ids = [before_ids[0] for before_ids, _, status, _ in links if status == "vanished"]
        for k, body in _form_beside([bodies[b - 1] for b in removed_ids], changes, after_bodies, rng, keep_in):
            after_bodies.append(body)
            links.append(([], [len(after_bodies) - 1], "appeared", "added_beside_removed"))
            formed_beside[len(after_bodies)] = removed_ids[k]

    texture = _smooth_noise(shape, cfg.matrix_texture, 6.0, rng) if cfg.matrix_texture > 0 else None
    yy, xx = np.mgrid[0:Y, 0:X].astype(np.float32)
    r_axis = np.hypot(yy - (Y - 1) / 2, xx - (X - 1) / 2)
    recon2d = r_axis <= side / 2.0
    scans = {}
    for name, scene_bodies, inv, to_scan in (("before", bodies, None, None),
                                             ("after", after_bodies, inverse, to_after)):
        image = _base(shape, cfg, centre_yx, pillar_r, texture, inverse=inv)
        instances = np.zeros(shape, np.uint32)
        voxels, occupancy = _render_objects(image, instances, scene_bodies, shape, to_scan)
        if name == "after":
            image = image * np.float32(changes.gray_gain) + np.float32(changes.gray_offset)
        image = _imaging(image, cfg, rng, r_axis, recon2d)
        scans[name] = {"image": image, "labels": (instances > 0).astype(np.uint8), "instances": instances,
                       "label_voxels": voxels}
        if name == "before":  # the BEFORE scan's objects table, as make_phantom's (no random draws)
            scans[name]["objects"] = objects_table(placed["centres"], placed["semi_axes"], voxels, occupancy,
                                                   placed["gray"])
    truth = _truth(links, bodies, after_bodies, scans, shape)
    return PhantomPair(before=scans["before"], after=scans["after"], matrix=matrix, motion=motion, changes=changes,
                       truth=truth, config=cfg, formed_beside=formed_beside)


def _touches(instances, ids, shape) -> set:
    """Ids of ``instances`` that touch the volume's border."""
    faces = [instances[0], instances[-1], instances[:, 0], instances[:, -1], instances[:, :, 0], instances[:, :, -1]]
    return set(np.unique(np.concatenate([f.ravel() for f in faces])).tolist()) & set(ids)


def _truth(links, bodies, after_bodies, scans, shape) -> dict:
    vb, va = scans["before"]["label_voxels"], scans["after"]["label_voxels"]
    edge_b = _touches(scans["before"]["instances"], range(1, len(bodies) + 1), shape)
    edge_a = _touches(scans["after"]["instances"], range(1, len(after_bodies) + 1), shape)
    rows = {k: [] for k in ("group", "before_label", "after_label", "status", "change", "edge",
                            "before_voxels", "after_voxels", "before_radius_vox", "after_radius_vox")}
    for g, (before_ids, after_ids, status, change) in enumerate(links, start=1):
        for b, a in [(b, a) for b in before_ids or [0] for a in after_ids or [None]]:
            after_label = 0 if a is None else a + 1
            edge = (b in edge_b or after_label in edge_a or (b and vb[b - 1] == 0)
                    or (after_label and va[after_label - 1] == 0))
            rows["group"].append(g)
            rows["before_label"].append(b)
            rows["after_label"].append(after_label)
            rows["status"].append(status)
            rows["change"].append(change)
            rows["edge"].append(int(bool(edge)))
            rows["before_voxels"].append(int(vb[b - 1]) if b else 0)
            rows["after_voxels"].append(int(va[after_label - 1]) if after_label else 0)
            rows["before_radius_vox"].append(_eq_radius(bodies[b - 1]) if b else np.nan)
            rows["after_radius_vox"].append(_eq_radius(after_bodies[a]) if a is not None else np.nan)
    out = {k: np.asarray(v) for k, v in rows.items()}
    for g in np.unique(out["group"]):  # a group is at the edge if any of its objects is
        sel = out["group"] == g
        out["edge"][sel] = out["edge"][sel].max()
    out["status"] = out["status"].astype(object)
    out["change"] = out["change"].astype(object)
    return out


def motion_record(pair: PhantomPair) -> dict:
    """The truth's transform as JSON-ready data (the format ``tomoseg track --transform`` reads)."""
    return {"matrix": pair.matrix.tolist(), **{k: list(v) if isinstance(v, tuple) else v
                                              for k, v in asdict(pair.motion).items()}}
