"""Rigid (or similarity) registration of two scans of one sample, in bounded memory.

Two stages, both on band-passed images (difference of Gaussians inside the pillar), so a change of gray
levels between the scans and the lab-fixed background (the reconstruction circle) do not pull the
answer:

1. **Coarse**, on block-averaged copies of at most ``coarse_voxels`` voxels, read slab by slab: the
   rotation about the pillar's axis (z) from the Fourier–Mellin idea (the rotation of the Fourier
   magnitude, summed along k_z, found as a shift of its polar resampling; magnitudes are blind to the
   translation), checked against its 180° twin and no rotation; then the translation by phase correlation.
2. **Fine**, at full resolution on crops (``crop_size``³ where the images have the most structure): each
   AFTER crop is resampled through the current transform, its residual shift to the BEFORE crop found by
   sub-voxel phase correlation, and the transform refitted to the crop correspondences (Kabsch; Umeyama with
   a scale for a similarity), in nm, rejecting crops that disagree. Repeated until the shifts vanish.

Only crops and slabs are ever read, so volumes larger than memory register as well.

Convention: ``matrix`` (4 × 4) maps a BEFORE voxel (z, y, x) to the AFTER voxel where the same material is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from ..errors import TomosegError


class RegistrationError(TomosegError):
    """The two images cannot be registered (too little structure, too little overlap): give a transform."""


@dataclass(frozen=True)
class RegistrationOptions:
    """Settings of :func:`register`."""

    similarity: bool = False          # also estimate one isotropic scale factor
    max_rotation_deg: float = 180.0   # search range of the rotation about z (0: rotation left to the fine stage)
    coarse_voxels: int = 2_000_000    # size of the block-averaged copies of the coarse stage
    crop_size: int = 48               # edge of the fine stage's crops, voxels
    crops: int = 24                   # how many crops
    iterations: int = 6               # fine-stage rounds at most
    band: tuple = (2.0, 6.0)          # difference-of-Gaussians sigmas (full-resolution voxels)

    def __post_init__(self):
        if self.crop_size < 16:
            raise TomosegError(f"crop_size {self.crop_size} must be at least 16 voxels")
        if self.crops < 3:
            raise TomosegError(f"crops {self.crops}: a rigid transform needs at least 3 crops")
        if not 0 <= self.max_rotation_deg <= 180:
            raise TomosegError(f"max_rotation_deg {self.max_rotation_deg} must be between 0 and 180")


@dataclass
class Registration:
    """The transform and how well it fits.

    ``matrix``: 4 × 4, BEFORE voxel → AFTER voxel. ``rotation_deg`` (about z, y, x; R = Rz·Ry·Rx),
    ``translation_vox`` and ``scale`` describe it as ``S q = s R S (p - c) + S (c + t)`` about the volume's
    centre c, S = diag(voxel size): R is the sample's rotation in physical space (``q = s R (p - c) + c + t``
    for cubic voxels).
    ``residual_vox``: RMS distance between the crops' matched centres after the fit. ``crops``: a table,
    one row per crop. ``ncc_before`` / ``ncc_after``: mean normalized correlation of the band-passed crops
    under the coarse and the final transform.
    """

    matrix: np.ndarray
    rotation_deg: tuple
    rotation_angle_deg: float
    translation_vox: tuple
    scale: float
    residual_vox: float
    residual_nm: float
    ncc_before: float
    ncc_after: float
    crops: dict
    source: str = "estimated"
    seconds: float = 0.0
    coarse: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"matrix": self.matrix.tolist(), "rotation_deg": list(self.rotation_deg),
                "rotation_angle_deg": self.rotation_angle_deg, "translation_vox": list(self.translation_vox),
                "scale": self.scale, "residual_vox": self.residual_vox, "residual_nm": self.residual_nm,
                "ncc_before": self.ncc_before, "ncc_after": self.ncc_after, "source": self.source,
                "seconds": self.seconds, "coarse": self.coarse, "crops_used": int(np.sum(self.crops["used"]))
                if len(self.crops.get("used", [])) else 0}


# ------------------------------------------------------------------ transforms
def euler_zyx(rotation: np.ndarray) -> tuple[float, float, float]:
    """Angles (degrees) about z, y, x with R = Rz·Ry·Rx, as :func:`tomoseg.synthetic.pair.rotation_matrix`."""
    r = np.asarray(rotation, float)
    ay = np.arcsin(np.clip(r[0, 2], -1, 1))
    ax = np.arctan2(-r[0, 1], r[0, 0])
    az = np.arctan2(-r[1, 2], r[2, 2])
    return tuple(float(v) for v in np.rad2deg([az, ay, ax]))


def rotation_angle(rotation: np.ndarray) -> float:
    """The angle (degrees) of a rotation matrix: atan2 of its sine (half the norm of the skew part) and cosine
    ((trace - 1) / 2). ``arccos`` of the cosine alone lost the small angles: 1e-16 of rounding in the trace read
    as 1e-6 degrees."""
    r = np.asarray(rotation, float)
    sine = np.linalg.norm([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / 2
    return float(np.rad2deg(np.arctan2(sine, (np.trace(r) - 1) / 2)))


def physical(matrix: np.ndarray, voxel_size=None) -> np.ndarray:
    """The 3 × 3 linear part of a BEFORE voxel → AFTER voxel matrix in nm: S·A·S⁻¹, S = diag(voxel size)
    (a rigid motion of the sample is a rotation there, not in voxels when the voxels are not cubic)."""
    a = np.asarray(matrix, float)[:3, :3]
    if voxel_size is None:
        return a
    vs = np.asarray(voxel_size, float)
    return vs[:, None] * a / vs[None, :]


def nearest_rotation(linear: np.ndarray) -> np.ndarray:
    """The rotation nearest a 3 × 3 matrix (polar decomposition by SVD), so a slightly non-orthogonal estimate
    still gives its rotation's angles."""
    u, _, vt = np.linalg.svd(np.asarray(linear, float))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ d @ vt


def decompose(matrix: np.ndarray, shape, voxel_size=None) -> dict:
    """Scale, rotation and translation of a 4 × 4 similarity about the volume's centre; the rotation and
    scale in physical space (nm, from ``voxel_size``; voxels taken as cubic without it), the translation in
    voxels."""
    a = physical(matrix, voxel_size)
    scale = float(np.cbrt(abs(np.linalg.det(a))))
    r = nearest_rotation(a)
    c = (np.asarray(shape, float) - 1) / 2
    t = apply(matrix, c) - c
    return {"scale": scale, "rotation": r, "rotation_deg": euler_zyx(r), "rotation_angle_deg": rotation_angle(r),
            "translation_vox": tuple(float(v) for v in t)}


def rotation_error_deg(matrix: np.ndarray, truth: np.ndarray, voxel_size=None) -> float:
    """The angle (degrees) between two transforms' rotations in physical space."""
    r, r_true = (nearest_rotation(physical(m, voxel_size)) for m in (matrix, truth))
    return rotation_angle(r.T @ r_true)


def corner_error_vox(matrix: np.ndarray, truth: np.ndarray, shape) -> float:
    """The largest distance (voxels) between where two transforms put the corners of a volume of ``shape``."""
    corners = np.array([[z, y, x] for z in (0, shape[0] - 1) for y in (0, shape[1] - 1) for x in (0, shape[2] - 1)],
                       float)
    return float(np.linalg.norm(apply(matrix, corners) - apply(truth, corners), axis=1).max())


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points (..., 3) through a 4 × 4 matrix."""
    m = np.asarray(matrix, float)
    return np.asarray(points, float) @ m[:3, :3].T + m[:3, 3]


def _translation(t) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


def fit_transform(src: np.ndarray, dst: np.ndarray, *, similarity: bool = False, weights=None) -> np.ndarray:
    """Least-squares rigid (or similarity) 4 × 4 matrix with dst ≈ M src (Kabsch 1976; Umeyama 1991)."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    xs, xd = src - ms, dst - md
    cov = (xd * w[:, None]).T @ xs
    u, s, vt = np.linalg.svd(cov)
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    r = u @ d @ vt
    scale = float(np.trace(np.diag(s) @ d) / (w @ (xs ** 2).sum(1))) if similarity else 1.0
    m = np.eye(4)
    m[:3, :3] = scale * r
    m[:3, 3] = md - scale * r @ ms
    return m


def _rotation_z(angle_deg: float, centre) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    m = np.eye(4)
    m[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    c = np.asarray(centre, float)
    m[:3, 3] = c - m[:3, :3] @ c
    return m


# ------------------------------------------------------------------ images
def downsample(volume, factor: int, *, slab_voxels: int = 2**23, progress=None) -> np.ndarray:
    """Block means of ``factor``³ voxels (float32) over the volume cut to whole blocks (a Volume or an array).

    Read in blocks of whole storage chunks of at most ``slab_voxels`` (or one chunk), whatever ``factor``: a
    block of chunks need not hold whole ``factor``³ blocks, its sums are added into the coarse grid's cells it
    touches (a cell split between blocks gets its parts from each), so memory stays bounded by the block size
    and every chunk is read once. Integer images are summed exactly; the mean is divided once at the end.
    Blocks are read and summed on worker threads. ``progress`` is given the volume's voxels as they are read
    (those beyond the last whole ``factor`` at the end)."""
    from ..io.blocks import read_ahead, storage_chunks, worker_threads

    factor = int(factor)
    Z, Y, X = (s // factor * factor for s in volume.shape)
    if min(Z, Y, X) == 0:
        raise TomosegError(f"volume {tuple(volume.shape)} is too small to downsample by {factor}")
    sums = np.zeros((Z // factor, Y // factor, X // factor), np.float64)

    def block_sums(region):  # on a worker thread
        data = np.asarray(volume[region])
        return data.size, _cell_sums(data, [s.start for s in region], factor)

    blocks = downsample_blocks((Z, Y, X), storage_chunks(volume), slab_voxels)
    for region, (n, part) in read_ahead(blocks, block_sums, threads=worker_threads(4)):
        at = tuple(slice(s.start // factor, s.start // factor + k) for s, k in zip(region, part.shape))
        sums[at] += part
        if progress is not None:
            progress.update(n)
    if progress is not None:
        progress.update(int(np.prod(volume.shape, dtype=np.int64)) - Z * Y * X)
    sums /= factor ** 3
    return sums.astype(np.float32)


def downsample_blocks(shape, chunks, max_voxels: int) -> list:
    """The blocks :func:`downsample` reads: :func:`~tomoseg.io.blocks.block_grid`'s blocks of whole storage
    chunks, cut along x too (on chunk edges) where a row of chunks across the slice exceeds ``max_voxels``;
    so each holds at most ``max_voxels`` or one chunk (one slice without chunks), whatever the volume's size."""
    from ..io.blocks import block_grid

    out = []
    cx = int(chunks[2]) if chunks else 0
    for zs, ys, xs in block_grid(shape, chunks, max_voxels=max_voxels):
        rows = (zs.stop - zs.start) * (ys.stop - ys.start)
        step = xs.stop if not cx or rows * xs.stop <= max_voxels else max(1, max_voxels // rows // cx) * cx
        out.extend((zs, ys, slice(x, min(x + step, xs.stop))) for x in range(0, xs.stop, step))
    return out


def _cell_sums(data: np.ndarray, start, factor: int) -> np.ndarray:
    """Sums of ``data`` (a block starting at ``start``) over the cells of the grid of ``factor``³ blocks that
    it touches, whole or in part (the cell holding ``start`` first), as float64; one slice at a time, so the
    temporaries stay below a few bytes a voxel of one slice. Integer images are summed exactly (8- and 16-bit
    ones in float32 along x: at most 256 values below 2^16, then in float64)."""
    cuts = []
    for axis in range(3):
        first = -int(start[axis]) % factor  # where the block's second cell begins
        cuts.append(np.r_[0, np.arange(first or factor, data.shape[axis], factor)])
    if data.dtype.kind in "biu":
        along_x = np.float32 if data.dtype.itemsize <= 2 and factor <= 256 else np.int64
    else:
        along_x = np.result_type(data.dtype, np.float32)
    out = np.zeros((len(cuts[0]), len(cuts[1]), len(cuts[2])), np.float64)
    cell = (np.arange(data.shape[0]) + int(start[0])) // factor - int(start[0]) // factor
    for i in range(data.shape[0]):
        rows = np.add.reduceat(data[i], cuts[2], axis=1, dtype=along_x)
        out[cell[i]] += np.add.reduceat(rows, cuts[1], axis=0, dtype=np.float64)
    return out


def interior(image: np.ndarray, margin: float) -> np.ndarray:
    """A soft weight inside the sample: the bright pillar found by Otsu's threshold, eroded by ``margin``."""
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(image, 1.0)
    inside = smooth > threshold_otsu(smooth[:: max(1, smooth.shape[0] // 16)])
    inside = ndimage.binary_fill_holes(inside)
    dist = ndimage.distance_transform_edt(inside)
    return np.clip((dist - margin) / max(margin, 1.0), 0, 1).astype(np.float32)


def band_pass(image: np.ndarray, band) -> np.ndarray:
    img = np.asarray(image, np.float32)
    return ndimage.gaussian_filter(img, band[0]) - ndimage.gaussian_filter(img, band[1])


def _features(image: np.ndarray, band, margin: float, weight=None) -> np.ndarray:
    f = band_pass(image, band) * (interior(image, margin) if weight is None else weight)
    sd = f[f != 0].std() if np.any(f != 0) else 1.0
    return f / max(float(sd), 1e-6)


def _window(shape) -> np.ndarray:
    w = np.ones(shape, np.float32)
    for axis, n in enumerate(shape):
        h = np.hanning(n + 2)[1:-1].astype(np.float32)
        w *= h.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return w


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def _phase(reference, moving, upsample: int = 1, normalization="phase"):
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(reference, moving, upsample_factor=upsample, normalization=normalization)
    return np.asarray(shift, float)


def warp(image: np.ndarray, matrix: np.ndarray, shape, *, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """``out[p] = image[M p]``: an AFTER image seen in the BEFORE grid (M: BEFORE → AFTER)."""
    m = np.asarray(matrix, float)
    return ndimage.affine_transform(image, m[:3, :3], offset=m[:3, 3], output_shape=tuple(shape), order=order,
                                    cval=cval, mode="constant")


def image_agreement(before, after, matrix, centres, *, size: int = 32, band=(2.0, 6.0)) -> float:
    """Mean normalized correlation of the band-passed BEFORE image, on crops of ``size``³ voxels about
    ``centres`` (BEFORE voxels; crops moved inside the scan), with the AFTER image seen there through ``matrix``
    (BEFORE voxel -> AFTER voxel); NaN where no crop lies in both fields of view. Reads only those crops: a check
    of a given transform that costs no registration."""
    shape_b = np.asarray(before.shape)
    size = int(min(size, *shape_b))
    win = _window((size,) * 3)
    values = []
    for c in np.asarray(centres, float).reshape(-1, 3):
        lo = np.clip(np.round(c).astype(int) - size // 2, 0, shape_b - size)
        moving = _after_crop(after, np.asarray(matrix, float), lo, size, tuple(after.shape))
        if moving is None:
            continue
        fixed = band_pass(_read_crop(before, lo, size), band)
        values.append(_ncc(fixed * win, band_pass(moving, band) * win))
    return float(np.mean(values)) if values else float("nan")


# ------------------------------------------------------------------ coarse stage
def _axis(weight: np.ndarray) -> np.ndarray:
    """(y, x) of the pillar's axis: the centroid of its interior weight."""
    w = weight.sum(axis=0)
    yy, xx = np.indices(w.shape)
    return np.array([(w * yy).sum(), (w * xx).sum()]) / max(float(w.sum()), 1e-9)


def _cylindrical(f: np.ndarray, axis_yx, radius: int, n_angles: int) -> np.ndarray:
    """``f`` resampled on (z, θ, r) around a vertical axis: a rotation about it becomes a circular shift in θ."""
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    r = np.arange(radius, dtype=float)
    yy = axis_yx[0] + np.sin(theta)[:, None] * r[None, :]
    xx = axis_yx[1] + np.cos(theta)[:, None] * r[None, :]
    out = np.empty((f.shape[0], n_angles, radius), np.float32)
    for z in range(f.shape[0]):
        out[z] = ndimage.map_coordinates(f[z], [yy, xx], order=1, mode="constant")
    return out


def _z_rotation(fb, fa, wb, wa, max_deg: float) -> list[np.ndarray]:
    """Candidate coarse transforms (small grid): a rotation about the pillar's axis found as the circular
    shift of cylindrical resamplings (any angle), a z shift, and the move of the axis; plus no rotation."""
    cb, ca = _axis(wb), _axis(wa)
    radius = int(min(np.sqrt(wb.sum(axis=0).astype(bool).sum() / np.pi) + 2, min(fb.shape[1:]) // 2))
    n_angles = int(2 ** np.ceil(np.log2(max(64, 2 * np.pi * radius))))
    pb = _cylindrical(fb, cb, radius, n_angles)
    pa = _cylindrical(fa, ca, radius, n_angles)
    z = max(len(pb), len(pa))  # scans of different heights: pad the shorter with zeros (features are zero-mean)
    pb, pa = (np.pad(p, ((0, z - len(p)), (0, 0), (0, 0))) for p in (pb, pa))
    s = _phase(pb, pa, upsample=4, normalization=None)  # plain cross-correlation: robust here
    angle = float(s[1] * 360.0 / n_angles)
    angle = (angle + 180.0) % 360.0 - 180.0
    cands = []
    for a in ([angle] if abs(angle) <= max_deg else []) + [0.0]:
        m = _rotation_z(a, (0.0, cb[0], cb[1]))
        m[1:3, 3] += ca - cb
        m[0, 3] -= s[0]
        cands.append((a, m))
    return cands


def _coarse(before, after, options: RegistrationOptions, shape, progress=None, ratio=None) -> tuple[np.ndarray, dict]:
    """``ratio``: BEFORE voxel size / AFTER voxel size along (z, y, x), where they differ."""
    size = float(np.prod(shape))
    factor = max(1, int(np.ceil((size / options.coarse_voxels) ** (1 / 3))))
    small_b = downsample(before, factor, progress=progress)
    small_a = downsample(after, factor, progress=progress)
    to_after = np.eye(4)  # the search's AFTER grid -> AFTER's own (small grids)
    if ratio is not None and not np.allclose(ratio, 1.0, rtol=1e-3):
        # AFTER voxels of another size: its block means resampled to BEFORE-sized voxels over its whole extent,
        # so the search compares like with like; the transform it finds is composed with this scaling below
        to_after[:3, :3] = np.diag(ratio)
        small_a = warp(small_a, to_after, tuple(max(1, int(round(n / r))) for n, r in zip(small_a.shape, ratio)))
    band = tuple(max(0.7, b / factor) for b in options.band)
    margin = max(2.0, 8.0 / factor)
    wb, wa = interior(small_b, margin), interior(small_a, margin)
    fb = _features(small_b, band, margin, wb)
    fa = _features(small_a, band, margin, wa)
    best = None
    for angle, rot in _z_rotation(fb, fa, wb, wa, options.max_rotation_deg):
        moved = warp(fa, rot, fb.shape)
        s = _phase(fb, moved, upsample=4)
        m = rot @ _translation(-s)
        score = _ncc(fb, warp(fa, m, fb.shape))
        if best is None or score > best[0]:
            best = (score, m, angle)
    score, m_small, angle = best
    m_small = to_after @ m_small
    # small grid p_s ↔ full grid p = f p_s + (f - 1)/2
    d = np.eye(4)
    d[:3, :3] *= factor
    d[:3, 3] = (factor - 1) / 2
    m_full = d @ m_small @ np.linalg.inv(d)
    return m_full, {"factor": factor, "rotation_z_deg": angle, "ncc": score,
                    "interior": wb, "features": fb}


# ------------------------------------------------------------------ fine stage
def _crop_centres(info: dict, shape, options: RegistrationOptions) -> np.ndarray:
    """Centres (full-resolution voxels) of the crops with the most structure, spread over the sample."""
    f = info["factor"]
    feat = info["features"]
    half = options.crop_size / 2
    energy = ndimage.uniform_filter(feat ** 2, max(1, int(options.crop_size / f)))
    energy *= info["interior"] > 0.5
    full = np.asarray(shape)
    cz, cy, cx = np.indices(feat.shape)
    centre_full = np.stack([cz, cy, cx], -1) * f + (f - 1) / 2
    ok = np.all((centre_full >= half + 2) & (centre_full <= full - half - 3), axis=-1)
    energy = np.where(ok, energy, 0)
    order = np.argsort(energy.ravel())[::-1]
    picked: list = []
    spacing = options.crop_size * 0.9
    for idx in order[: 200000]:
        if energy.flat[idx] <= 0 or len(picked) >= options.crops:
            break
        c = centre_full.reshape(-1, 3)[idx]
        if all(np.linalg.norm(c - p) >= spacing for p in picked):
            picked.append(c)
    if len(picked) < 3:
        raise RegistrationError(f"the BEFORE scan holds too little structure to register: only {len(picked)} "
                                f"regions of {options.crop_size}³ voxels with structure (objects, edges) found "
                                "inside the sample, at least 3 needed. Give the transform (--transform JSON with "
                                "a 4x4 'matrix', BEFORE voxel -> AFTER voxel), or register larger scans")
    return np.round(np.asarray(picked)).astype(int)


def _read_crop(volume, lo, size) -> np.ndarray:
    sl = tuple(slice(int(a), int(a) + size) for a in lo)
    return np.asarray(volume[sl], np.float32)


def _after_crop(after, matrix, lo, size, shape_after):
    """The AFTER image seen through ``matrix`` on a BEFORE crop starting at ``lo`` (None if out of view)."""
    corners = np.array([[lo[0] + dz, lo[1] + dy, lo[2] + dx] for dz in (0, size) for dy in (0, size)
                        for dx in (0, size)], float)
    q = apply(matrix, corners)
    a0 = np.maximum(np.floor(q.min(0)).astype(int) - 2, 0)
    a1 = np.minimum(np.ceil(q.max(0)).astype(int) + 3, np.asarray(shape_after))
    if np.any(a1 - a0 < size // 2):
        return None  # mostly out of the AFTER field of view
    region = np.asarray(after[tuple(slice(a, b) for a, b in zip(a0, a1))], np.float32)
    local = _translation(-a0) @ matrix @ _translation(lo)
    m = np.asarray(local, float)
    return ndimage.affine_transform(region, m[:3, :3], offset=m[:3, 3], output_shape=(size,) * 3, order=1,
                                    mode="nearest")


def _fine(before, after, matrix, centres, options: RegistrationOptions, voxel_size,
          coarse_ncc: float = np.inf) -> tuple[np.ndarray, dict, float]:
    """Refine ``matrix`` on crops of both scans (phase correlation, a fit in nm, then Gauss-Newton on the
    crops together). Where fewer than 3 crops give a plausible shift but the coarse stage matched well
    (``coarse_ncc`` at least :data:`MIN_CORRELATION`: a small pair has few crops, and one false peak leaves 2),
    the coarse transform is kept, moved by the good crops' mean shift: the crop count
    then marks the registration unreliable (:func:`reliability_problems`) until the refit on objects."""
    size = options.crop_size
    half = size // 2
    vs = np.asarray(voxel_size, float)
    win = _window((size,) * 3)
    crops_b = [band_pass(_read_crop(before, c - half, size), options.band) for c in centres]
    used = np.ones(len(centres), bool)
    shifts = np.zeros((len(centres), 3))
    ncc = np.full(len(centres), np.nan)
    first_ncc = None
    for it in range(options.iterations):
        src, dst, ok = [], [], []
        for i, c in enumerate(centres):
            moving = _after_crop(after, matrix, c - half, size, after.shape)
            if moving is None:
                ok.append(False)
                src.append(c)
                dst.append(c)
                continue
            fm = band_pass(moving, options.band)
            ncc[i] = _ncc(crops_b[i] * win, fm * win)
            s = _phase(crops_b[i] * win, fm * win, upsample=10, normalization=None)
            if np.any(np.abs(s) > size / 4):
                s = np.zeros(3)
                ok.append(False)
            else:
                ok.append(True)
            shifts[i] = s
            src.append(c.astype(float))
            dst.append(apply(matrix, c - s))
        if first_ncc is None:
            first_ncc = float(np.nanmean(ncc))
        ok = np.asarray(ok) & used
        src, dst = np.asarray(src), np.asarray(dst)
        if ok.sum() < 3:
            if it > 0:  # the fit of the round before stands
                break
            if coarse_ncc < MIN_CORRELATION or not ok.any():
                raise RegistrationError(
                    f"registration failed: only {int(ok.sum())} of {len(centres)} crops matched after the coarse "
                    f"stage (correlation {coarse_ncc:.2f}; the scans may share too little of the sample, or be "
                    "turned by more than --max-rotation); give the transform (--transform JSON)")
            keep = ok.copy()  # too few crops for a fit: the coarse transform, moved by their mean shift
            matrix = matrix @ _translation(-shifts[keep].mean(axis=0))
            break
        keep = ok.copy()
        for _ in range(3):  # fit, drop crops far from the consensus, refit
            m_nm = fit_transform(src[keep] * vs, dst[keep] * vs, similarity=options.similarity)
            res = np.linalg.norm(apply(m_nm, src * vs) / vs - dst, axis=1)
            limit = max(1.0, 3 * np.median(res[keep]))
            new_keep = ok & (res <= limit)
            if new_keep.sum() < 3 or np.array_equal(new_keep, keep):
                break
            keep = new_keep
        used = keep if it >= 1 else used
        s_mat = np.diag(np.append(vs, 1.0))
        matrix = np.linalg.inv(s_mat) @ m_nm @ s_mat
        if np.abs(shifts[keep]).max() < 0.02:
            break
    if keep.sum() >= 3:  # (fewer do not fix a rotation: Gauss-Newton on 2 crops turned an exact coarse fit 1 deg)
        matrix = _lucas_kanade(crops_b, after, matrix, centres, keep, options, vs)
    # check: each crop's remaining shift under the final transform
    for i, c in enumerate(centres):
        moving = _after_crop(after, matrix, c - half, size, after.shape)
        if moving is None:
            continue
        fm = band_pass(moving, options.band)
        ncc[i] = _ncc(crops_b[i] * win, fm * win)
        shifts[i] = _phase(crops_b[i] * win, fm * win, upsample=10, normalization=None)
    res_vox = np.linalg.norm(shifts, axis=1)
    res_nm = np.linalg.norm(shifts * vs, axis=1)
    table = {"crop": np.arange(1, len(centres) + 1), "centre_z": centres[:, 0], "centre_y": centres[:, 1],
             "centre_x": centres[:, 2], "shift_z_vox": shifts[:, 0], "shift_y_vox": shifts[:, 1],
             "shift_x_vox": shifts[:, 2], "residual_vox": res_vox, "residual_nm": res_nm, "ncc": ncc,
             "used": keep.astype(np.int64)}
    return matrix, table, first_ncc


def _small_motion(x: np.ndarray, centre, similarity: bool) -> np.ndarray:
    """4 × 4 matrix of q -> (1 + s) R(ω) (q - c) + c + τ from x = (τ, ω[, s])."""
    w = x[3:6]
    th = float(np.linalg.norm(w))
    r = np.eye(3)
    if th > 1e-12:
        k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]) / th
        r = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k
    a = (1 + (x[6] if similarity else 0.0)) * r
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = centre + x[:3] - a @ centre
    return m


def _lucas_kanade(crops_b, after, matrix, centres, keep, options: RegistrationOptions, vs, *, iterations: int = 10):
    """Gauss–Newton on the band-passed crops together (intensity-based; every voxel of every crop counts):
    solve for the small rigid (similarity) motion that best explains BEFORE − AFTER∘M, compose, repeat."""
    size = options.crop_size
    half = size // 2
    win = _window((size,) * 3).ravel()
    npar = 7 if options.similarity else 6
    s_mat = np.diag(np.append(vs, 1.0))
    s_inv = np.linalg.inv(s_mat)
    centre = centres[keep].mean(axis=0) * vs
    grid = np.indices((size,) * 3).reshape(3, -1).astype(float)
    for _ in range(iterations):
        jtj = np.zeros((npar, npar))
        jtr = np.zeros(npar)
        for i in np.nonzero(keep)[0]:
            moving = _after_crop(after, matrix, centres[i] - half, size, after.shape)
            if moving is None:
                continue
            fm = band_pass(moving, options.band)
            fb = crops_b[i]
            fb = fb / max(float(np.sqrt((fb.ravel() ** 2 * win).mean())), 1e-6)
            fm = fm / max(float(np.sqrt((fm.ravel() ** 2 * win).mean())), 1e-6)
            g = np.stack([d.ravel() for d in np.gradient(fm)]) / vs[:, None]
            q = (grid + (centres[i] - half)[:, None]) * vs[:, None] - centre[:, None]
            rows = [g[0], g[1], g[2], q[1] * g[2] - q[2] * g[1], q[2] * g[0] - q[0] * g[2], q[0] * g[1] - q[1] * g[0]]
            if options.similarity:
                rows.append((q * g).sum(axis=0))
            j = np.stack(rows)
            jw = j * win
            jtj += jw @ j.T
            jtr += jw @ (fb.ravel() - fm.ravel())
        scale = np.sqrt(np.maximum(np.diag(jtj), 1e-12))
        x = np.linalg.solve(jtj / np.outer(scale, scale) + 1e-9 * np.eye(npar), jtr / scale) / scale
        matrix = matrix @ s_inv @ _small_motion(x, centre, options.similarity) @ s_mat
        if np.linalg.norm(x[:3] / vs) < 0.01 and np.linalg.norm(x[3:6]) < 1e-4:
            break
    return matrix


def register(before, after, *, voxel_size=None, after_voxel_size=None, options: RegistrationOptions | None = None,
             initial: np.ndarray | None = None, progress=None) -> Registration:
    """Estimate the rigid (or similarity) transform from the BEFORE scan to the AFTER scan.

    Parameters
    ----------
    before, after : ndarray or Volume (z, y, x)
        The two gray-value images (any dtype; a gray-level change between them is fine).
    voxel_size : (z, y, x) nm, optional
        The fit is done in nm (1 nm voxels if unknown).
    after_voxel_size : (z, y, x) nm, optional
        The AFTER scan's, where it differs (a binned scan, a change of magnification): the coarse stage starts
        from their ratio as a scale (the fine stage needs ``options.similarity`` to refine it). Without it the
        coarse stage takes the voxel grids as of one size and a scan binned 2x failed to register.
    options : RegistrationOptions, optional
    initial : 4 × 4 array, optional
        A starting transform: skips the coarse stage.
    progress : optional
        Given the voxels of both images as the coarse stage reads them (``update(n)``; BEFORE's only with
        ``initial``).

    Returns
    -------
    Registration

    Examples
    --------
    >>> import numpy as np
    >>> from tomoseg.synthetic.pair import Motion, make_phantom_pair
    >>> pair = make_phantom_pair((48, 160, 160), rng=0, motion=Motion((5.0, 0, 0), (1.0, 2.0, -3.0)))
    >>> reg = register(pair.before["image"], pair.after["image"])
    >>> round(reg.rotation_deg[0]), [round(t) for t in reg.translation_vox]
    (5, [1, 2, -3])
    """
    t0 = time.perf_counter()
    options = options or RegistrationOptions()
    if len(before.shape) != 3 or len(after.shape) != 3:
        raise TomosegError(f"registration needs two 3D images, got {tuple(before.shape)} and {tuple(after.shape)}")
    shape = tuple(int(s) for s in before.shape)
    smallest = min(min(shape), min(after.shape))
    if smallest < 24:
        raise RegistrationError(f"images {shape} and {tuple(after.shape)} are too small to register (under 24 "
                                "voxels)")
    if smallest < options.crop_size + 8:  # thin volumes: crops as thick as they allow
        options = replace(options, crop_size=max(16, (smallest - 8) // 2 * 2))
    vs = tuple(voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    if initial is None:
        ratio = None if after_voxel_size is None else np.asarray(vs, float) / np.asarray(after_voxel_size, float)
        coarse_m, info = _coarse(before, after, options, shape, progress, ratio)
    else:
        coarse_m = np.asarray(initial, float)
        info = _coarse_info_only(before, options, shape, progress)
    centres = _crop_centres(info, shape, options)
    matrix, table, ncc0 = _fine(before, after, coarse_m, centres, options, vs, info.get("ncc", np.inf))
    parts = decompose(matrix, shape, vs)
    used = table["used"].astype(bool)
    rms_vox = float(np.sqrt(np.mean(table["residual_vox"][used] ** 2)))
    rms_nm = float(np.sqrt(np.mean(table["residual_nm"][used] ** 2)))
    coarse = {k: v for k, v in info.items() if k in ("factor", "rotation_z_deg", "ncc")}
    coarse["matrix"] = coarse_m.tolist()
    return Registration(matrix=matrix, rotation_deg=parts["rotation_deg"],
                        rotation_angle_deg=parts["rotation_angle_deg"], translation_vox=parts["translation_vox"],
                        scale=parts["scale"], residual_vox=rms_vox, residual_nm=rms_nm, ncc_before=ncc0,
                        ncc_after=float(np.nanmean(table["ncc"][used])), crops=table,
                        seconds=time.perf_counter() - t0, coarse=coarse)


def _coarse_info_only(before, options: RegistrationOptions, shape, progress=None) -> dict:
    factor = max(1, int(np.ceil((float(np.prod(shape)) / options.coarse_voxels) ** (1 / 3))))
    small = downsample(before, factor, progress=progress)
    margin = max(2.0, 8.0 / factor)
    band = tuple(max(0.7, b / factor) for b in options.band)
    return {"factor": factor, "interior": interior(small, margin), "features": _features(small, band, margin)}


def overlap_fraction(matrix, shape_before, shape_after, *, points: int = 16) -> float:
    """The share of the BEFORE volume that ``matrix`` (BEFORE voxel -> AFTER voxel) puts inside the AFTER
    volume, from a grid of ``points``³ voxel centres spread over BEFORE (0 to 1)."""
    axes = [np.linspace(0, s - 1, min(points, int(s))) for s in shape_before]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    q = apply(np.asarray(matrix, float), grid)
    inside = np.all((q >= -0.5) & (q <= np.asarray(shape_after, float) - 0.5), axis=1)
    return float(inside.mean())


# A registration is called unreliable when its own figures say so. On phantom pairs (48 x 128 x 128, seeds 0-3;
# 64 x 160 x 160, seed 0), whole or with the AFTER scan cropped, 13 registrations came within 2.6 voxels of the
# truth (before the refit on objects): the crops' mean correlation under the final transform 0.53-0.81, their RMS
# residual 0.40-1.83 voxel. The 6 that failed (8 to 240 voxels off; AFTER cropped in y/x) had a correlation of
# 0.06-0.58 and a residual of 3.2-7.9 voxels: every one above MAX_RESIDUAL_VOX, 4 of 6 below MIN_CORRELATION.
# The share of crops kept is no sign: good ones kept as few as 3 of 4.
MIN_CORRELATION = 0.4
MAX_RESIDUAL_VOX = 2.5
# With 3-5 crops the rigid fit passes close to each of them, so their residual says nothing about the rotation:
# 40 x 96 x 96 phantom pairs registered on 3 crops were 3.7-6.1 voxels off at the corners with good figures
# (correlation 0.60-0.77, residual 0.9-1.9); on 48 x 128 x 128 pairs with 4-6 crops 1.3-2.2 voxels.
MIN_CROPS = 6


def reliability_problems(reg: Registration) -> list[str]:
    """What in an estimated registration's own figures says it failed (empty when nothing does); fewer than
    :data:`MIN_CROPS` crops count only where the transform was not refitted on matched objects."""
    problems = []
    if np.isfinite(reg.ncc_after) and reg.ncc_after < MIN_CORRELATION:
        problems.append(f"the crops' correlation under the final transform is {reg.ncc_after:.2f} (a good "
                        f"registration gives 0.5 or more; below {MIN_CORRELATION} it has failed)")
    if np.isfinite(reg.residual_vox) and reg.residual_vox > MAX_RESIDUAL_VOX:
        problems.append(f"the crops disagree with it by {reg.residual_vox:.1f} voxels RMS (a good registration: "
                        f"under 2; above {MAX_RESIDUAL_VOX} it has failed)")
    used = int(np.sum(reg.crops.get("used", []))) if isinstance(reg.crops, dict) else 0
    if 0 < used < MIN_CROPS and reg.source == "estimated":  # not when refitted on >= 6 objects' centroids
        problems.append(f"it rests on {used} crops (fewer than {MIN_CROPS}: their fit can be several voxels off at "
                        "the volume's corners while every crop agrees with it)")
    return problems


def given_transform(matrix, shape, *, source: str = "given", voxel_size=None) -> Registration:
    """A :class:`Registration` for a transform the user gives (no fit, no residual); angles in nm space."""
    m = np.asarray(matrix, float)
    if m.shape == (3, 4):
        m = np.vstack([m, [0, 0, 0, 1]])
    if m.shape != (4, 4):
        raise TomosegError(f"transform must be an invertible 4 x 4 (or 3 x 4) matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise TomosegError("transform holds NaN or infinite values")
    if abs(np.linalg.det(m[:3, :3])) < 1e-6:
        raise TomosegError(f"transform is not an invertible 4 x 4 matrix (determinant of its 3 x 3 part "
                           f"{np.linalg.det(m[:3, :3]):.3g})")
    parts = decompose(m, shape, voxel_size)
    return Registration(matrix=m, rotation_deg=parts["rotation_deg"], rotation_angle_deg=parts["rotation_angle_deg"],
                        translation_vox=parts["translation_vox"], scale=parts["scale"], residual_vox=float("nan"),
                        residual_nm=float("nan"), ncc_before=float("nan"), ncc_after=float("nan"), crops={},
                        source=source)
