"""Every object of a block of labels measured at once, with array operations over the objects' voxels.

Measuring object by object (a crop, a few NumPy calls, scikit-image's marching cubes) cost 160-600 µs an object,
whatever its size: hours for the tens of millions of objects of a terabyte scan. Here each measurement is a sum
over voxels or over 2x2x2 cubes, taken for all objects of a block together:

- volume, centroid, bounding box, mean gray value and probability: per-object sums over the objects' voxels,
  after one sort of the voxels by label;
- the voxel-face surface: each object voxel's 6 neighbours, counted where they hold another label (or lie
  outside the volume);
- the marching-cubes surface and its enclosed volume. On a binary field at level 0.5 every vertex lies halfway
  along a cube edge (or, for Lewiner's ambiguous cases, is set by the cube's own 8 values), so each cube's
  triangles depend only on which of its 8 corners are inside: one of 256 cases. scikit-image's own
  ``marching_cubes`` is run once on each case's 2x2x2 cube (:func:`cube_cases`); an object's area is then the
  sum, over the cubes holding one of its voxels, of its case's area, and its enclosed volume (the divergence
  theorem's sum of ``det(a, b, c) / 6`` over triangles) the sum of its case's ``det`` plus the cube's position
  dotted with its case's summed normals. Tests hold this to :func:`~tomoseg.objects.measure.mesh_area_volume`
  (scikit-image on the object's padded crop) within 1e-12.

Each object's sums run over its voxels and cubes in raster order and its cube positions are taken from its own
bounding box, so an object gives the same numbers, bit for bit, from any block that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CORNERS = tuple((dz, dy, dx) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1))  # bit j of a cube's case


@lru_cache(maxsize=1)
def cube_cases() -> tuple:
    """scikit-image's marching-cubes triangles of each of the 256 cases of a 2x2x2 binary cube at level 0.5, on
    unit voxels: (triangles: a list of (n, 3, 3) arrays, ``det``: (256,) sums of det(a, b, c) over a case's
    triangles, ``normal``: (256, 3) sums of (b - a) x (c - a))."""
    from skimage import measure

    from .measure import _cross

    triangles, det, normal = [np.zeros((0, 3, 3))], np.zeros(256), np.zeros((256, 3))
    for case in range(1, 256):
        cube = np.zeros((2, 2, 2), np.float32)
        for j, corner in enumerate(CORNERS):
            cube[corner] = case >> j & 1
        if case == 255:  # all inside: no surface (scikit-image refuses a level outside the values)
            triangles.append(np.zeros((0, 3, 3)))
            continue
        verts, faces, _, _ = measure.marching_cubes(cube, level=0.5)
        tri = verts[faces].astype(np.float64)
        triangles.append(tri)
        det[case] = np.einsum("ij,ij->i", tri[:, 0], _cross(tri[:, 1], tri[:, 2])).sum()
        normal[case] = _cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).sum(axis=0)
    return triangles, det, normal


@lru_cache(maxsize=32)
def case_areas(voxel_size: tuple) -> np.ndarray:
    """The area (nm², or voxel faces for unit voxels) of each case's triangles on voxels of ``voxel_size``."""
    from .measure import _cross

    spacing = np.asarray(voxel_size, np.float64)
    areas = np.zeros(256)
    for case, tri in enumerate(cube_cases()[0]):
        if len(tri):
            t = tri * spacing
            areas[case] = ((_cross(t[:, 0] - t[:, 1], t[:, 0] - t[:, 2]) ** 2).sum(axis=1) ** 0.5).sum() / 2.0
    return areas


def _groups(values: np.ndarray) -> tuple:
    """Stable sort order of ``values`` and where each run of one value starts: (order, starts, the values)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return order, starts, ordered[starts]


@dataclass
class _Voxels:
    """The voxels of the objects to measure, by object, each object's in raster order within its block."""

    ids: np.ndarray      # (k,) the objects' labels, ascending
    starts: np.ndarray   # (k,) each object's first voxel
    obj: np.ndarray      # (m,) each voxel's object, 0..k-1
    local: tuple         # three (m,) arrays: each voxel's position in its block
    flat: np.ndarray     # the blocks' labels, ravelled one after another
    at: np.ndarray       # (m,) each voxel's index in ``flat``
    dims: np.ndarray     # the block's shape (3,), or each object's block's (k, 3)
    base: np.ndarray     # where the block starts in the volume (3,), or each object's block (k, 3)
    gray: np.ndarray | None   # (m,) gray values, float64
    prob: np.ndarray | None   # (m,) probabilities in [0, 1], float64

    def of_objects(self, values: np.ndarray, rows) -> np.ndarray:
        """``values`` (a block's (3,), or (k, 3)) for ``rows`` (objects), column by column: (len(rows), 3)."""
        return np.broadcast_to(values, (len(rows), 3)) if values.ndim == 1 else values[rows]


def _as_float(values, where, unit: bool = False):
    """``values`` at ``where`` as float64 (a 0-255 uint8 probability divided by 255 where ``unit``)."""
    if values is None:
        return None
    values = np.asarray(values)
    out = values[where].astype(np.float64)
    return out / 255.0 if unit and values.dtype == np.uint8 else out


def measure_region(labels: np.ndarray, region, *, wanted=None, intensity=None, probability=None,
                   voxel_size=(1.0, 1.0, 1.0), shape=None, origin=(0.0, 0.0, 0.0)) -> dict:
    """Measure the objects ``wanted`` (every label in ``labels`` where None) of ``labels``, the block ``region``
    (three slices) of a volume of ``shape``.

    Each wanted object must lie wholly inside the block with a voxel of margin on each side, except where it
    meets the volume's own edge. ``intensity`` and ``probability`` are the same block's gray values and
    probabilities (uint8 0-255 or float 0-1), or None. Returns the table of
    :func:`~tomoseg.objects.measure.measure_table` (its columns, 1 nm voxels counted where ``voxel_size`` is
    unit), one row per wanted object present, in label order."""
    from .measure import _empty_table

    labels = np.ascontiguousarray(labels)
    where = np.flatnonzero(labels)
    values = labels.ravel()[where]
    if wanted is not None:
        keep = np.isin(values, np.asarray(wanted, dtype=values.dtype))
        where, values = where[keep], values[keep]
    if where.size == 0:
        return _empty_table()
    order, starts, ids = _groups(values)
    where = where[order]  # the voxels by object, each object's in raster order
    obj = np.repeat(np.arange(len(ids)), np.diff(np.append(starts, where.size)))
    local = np.unravel_index(where, labels.shape)
    voxels = _Voxels(ids, starts, obj, local, labels.ravel(), where, np.array(labels.shape, np.int64),
                     np.array([r.start for r in region], np.int64), _as_float(intensity, local),
                     _as_float(probability, local, unit=True))
    return _table(voxels, voxel_size, labels.shape if shape is None else shape, origin)


def measure_crops(crops, *, voxel_size=(1.0, 1.0, 1.0), shape, origin=(0.0, 0.0, 0.0)) -> dict:
    """Measure objects each from a crop of its own, together: ``crops`` is a list of (label, region, labels,
    intensity, probability), ``labels`` the crop ``region`` of the volume holding the object with a voxel of
    margin (except at the volume's edge), ``intensity``/``probability`` the crop's, or None. Labels are
    distinct; an object without a voxel in its crop has no row. The table of :func:`measure_region`."""
    from .measure import _empty_table

    crops = sorted(crops, key=lambda c: c[0])
    if not crops:
        return _empty_table()
    arrays = [np.ascontiguousarray(c[2]) for c in crops]
    sizes = np.array([a.size for a in arrays], np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = np.concatenate([a.ravel() for a in arrays])
    label = np.array([c[0] for c in crops], np.int64)
    at = np.flatnonzero(flat == np.repeat(label, sizes).astype(flat.dtype, copy=False))
    crop = np.searchsorted(offsets, at, side="right") - 1
    present = np.unique(crop)
    if present.size == 0:
        return _empty_table()
    dims = np.array([a.shape for a in arrays], np.int64)
    base = np.array([[r.start for r in c[1]] for c in crops], np.int64)
    rank = np.full(len(crops), -1, np.int64)
    rank[present] = np.arange(present.size)
    obj = rank[crop]
    starts = np.searchsorted(obj, np.arange(present.size))
    rest = at - offsets[crop]
    yx = dims[crop, 1] * dims[crop, 2]
    local = (rest // yx, rest % yx // dims[crop, 2], rest % dims[crop, 2])

    def values(which, unit=False):  # the crops' gray values or probabilities (one volume's: one type)
        if crops[0][which] is None:
            return None
        return _as_float(np.concatenate([np.asarray(c[which]).ravel() for c in crops]), at, unit=unit)

    voxels = _Voxels(label[present], starts, obj, local, flat, at, dims[present], base[present], values(3),
                     values(4, unit=True))
    return _table(voxels, voxel_size, shape, origin)


def _table(v: _Voxels, voxel_size, shape, origin) -> dict:
    """The measurements of the objects of ``v``."""
    from .measure import COLUMNS, wadell_sphericity

    vs = tuple(float(x) for x in voxel_size)
    shape = np.array([int(n) for n in shape], np.int64)
    voxel_volume = vs[0] * vs[1] * vs[2]
    k, m = len(v.ids), len(v.obj)
    n = np.diff(np.append(v.starts, m))
    base = v.of_objects(v.base, np.arange(k))
    coords = [v.local[a].astype(np.int64) + base[v.obj, a] for a in range(3)]  # in the volume
    lo = np.stack([np.minimum.reduceat(c, v.starts) for c in coords], axis=1)
    hi = np.stack([np.maximum.reduceat(c, v.starts) for c in coords], axis=1) + 1
    # centroids from positions within each object's box: the same sums from any block
    centroid = [lo[:, a] + np.add.reduceat(coords[a] - lo[v.obj, a], v.starts) / n for a in range(3)]

    # a face where the neighbour holds another label or lies outside the block (the volume's outside where the
    # block meets its edge; elsewhere a wanted object keeps a voxel of margin)
    mine = v.ids[v.obj]
    dims = v.dims if v.dims.ndim == 1 else v.dims[v.obj].T
    strides = (dims[1] * dims[2], dims[2], 1)
    faces = []
    for a in range(3):
        open_faces = np.zeros(m, np.int64)
        for step, inside in ((-1, v.local[a] > 0), (1, v.local[a] < dims[a] - 1)):
            stride = strides[a] if np.ndim(strides[a]) == 0 else strides[a][inside]
            differs = ~inside
            differs[inside] = v.flat[v.at[inside] + step * stride] != mine[inside]
            open_faces += differs
        faces.append(np.bincount(v.obj, weights=open_faces, minlength=k))
    face_area = 0.0 + faces[0] * (vs[1] * vs[2])  # as voxel_face_area adds them, axis by axis
    face_area = face_area + faces[1] * (vs[0] * vs[2])
    face_area = face_area + faces[2] * (vs[0] * vs[1])

    mesh_area, mesh_volume = _mesh(v, lo, vs)

    volume_nm3 = n * voxel_volume
    table = {
        "label": v.ids.astype(np.int64), "volume_vox": n.astype(np.int64), "volume_nm3": volume_nm3.astype(np.float64),
        "equivalent_radius_vox": (3 * n / (4 * np.pi)) ** (1 / 3),
        "equivalent_radius_nm": (3 * volume_nm3 / (4 * np.pi)) ** (1 / 3),
    }
    for a, name in enumerate("zyx"):
        table[f"centroid_{name}"] = centroid[a]
        table[f"centroid_{name}_nm"] = float(origin[a]) + centroid[a] * vs[a]
    for a, name in enumerate("zyx"):
        table[f"bbox_{name}0"] = lo[:, a]
    for a, name in enumerate("zyx"):
        table[f"bbox_{name}1"] = hi[:, a]
    table["surface_voxel_nm2"] = face_area
    table["surface_mesh_nm2"] = mesh_area
    table["sphericity_voxel"] = wadell_sphericity(volume_nm3, face_area)
    table["sphericity_mesh"] = wadell_sphericity(mesh_volume, mesh_area)
    nan = np.full(k, np.nan)
    table["mean_gray"] = nan if v.gray is None else np.add.reduceat(v.gray, v.starts) / n
    table["mean_probability"] = nan if v.prob is None else np.add.reduceat(v.prob, v.starts) / n
    table["max_probability"] = nan.copy() if v.prob is None else np.maximum.reduceat(v.prob, v.starts)
    table["touches_border"] = (np.any(lo == 0, axis=1) | np.any(hi == shape, axis=1)).astype(np.int64)
    return {c: table[c] for c in COLUMNS}


def _mesh(v: _Voxels, lo, vs) -> tuple:
    """Each object's marching-cubes area and enclosed volume (see the module's notes), objects taken in batches
    of about :data:`BATCH_VOXELS` voxels."""
    k = len(v.ids)
    area, volume = np.zeros(k), np.zeros(k)
    ends = np.append(v.starts[1:], len(v.obj))
    first = 0
    while first < k:
        last = max(int(np.searchsorted(ends, v.starts[first] + BATCH_VOXELS, "right")), first + 1)
        top = np.max(v.dims.reshape(-1, 3) if v.dims.ndim == 1 else v.dims[first:last], axis=0)  # largest block
        # the keys' bit fields (object, z, y, x, corner) within 63 bits: fewer objects where the blocks are huge
        room = 62 - sum(int(t + 1).bit_length() for t in top) - 3
        last = max(min(last, first + (1 << max(room, 0))), first + 1)
        voxels = slice(int(v.starts[first]), int(ends[last - 1]))
        rows = np.arange(first, last)
        base = v.of_objects(v.base, rows) - lo[first:last]  # each object's block from its box's start
        area[first:last], volume[first:last] = _mesh_batch([c[voxels] for c in v.local], top,
                                                           v.obj[voxels] - first, base, vs)
        first = last
    return area, volume


BATCH_VOXELS = 1 << 20  # object voxels measured together: 8 (object, cube) keys each, 64 MB


def _mesh_batch(local, top, obj, base, vs) -> tuple:
    """:func:`_mesh` of the objects ``obj`` (0..len(base)-1), their voxels at ``local`` in blocks of at most
    ``top``, each block starting at ``base`` from its object's box: the cubes holding one of an object's voxels,
    each object's in raster order."""
    _, det, normal = cube_cases()
    areas = case_areas(vs)
    # cubes are named by their lowest corner, shifted by one so that a block's cubes start at 0: a voxel at p
    # is corner j of the cube at p + 1 - CORNERS[j]. Keys hold (object, cube z, y, x, j) in bit fields: sorted,
    # each object's cubes come in raster order, and a cube's case is the OR of the corners its keys name
    bits = [int(t + 1).bit_length() for t in top]
    shift = (sum(bits) + 3, bits[1] + bits[2] + 3, bits[2] + 3, 3)
    voxel_key = (obj.astype(np.int64) << shift[0])
    for c, s in zip(local, shift[1:]):
        voxel_key |= (c.astype(np.int64) + 1) << s
    corner_key = np.array([(dz << shift[1]) + (dy << shift[2]) + (dx << shift[3]) - j
                           for j, (dz, dy, dx) in enumerate(CORNERS)], np.int64)
    # eight runs, each sorted already (an object's voxels come in raster order): a stable sort merges them, 2.6x
    # as fast as a quicksort of the keys (np.unique's hash table, NumPy 2.3, took 20x as long)
    keys = (voxel_key[None, :] - corner_key[:, None]).ravel()
    keys.sort(kind="stable")
    cube_keys = keys >> 3
    first = np.flatnonzero(np.concatenate(([True], cube_keys[1:] != cube_keys[:-1])))
    case = np.bitwise_or.reduceat(np.left_shift(np.uint8(1), (keys & 7).astype(np.uint8)), first).astype(np.intp)
    cube_keys = cube_keys[first]
    owner = cube_keys >> (shift[0] - 3)
    pair_starts = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    area = np.add.reduceat(areas[case], pair_starts)
    # the cube's lowest corner from its object's box's start: its key's position - 1 + where the block starts
    term = det[case]
    for a, s in enumerate(shift[1:]):
        c = (cube_keys >> (s - 3)) & ((1 << bits[a]) - 1)
        term += (c - 1 + base[owner, a]) * normal[case, a]
    volume = np.abs(np.add.reduceat(term, pair_starts)) / 6.0 * (vs[0] * vs[1] * vs[2])
    return area, volume
