"""Synthetic TXM micropillar volumes with exact labels.

The image follows the paper's description of its data (Section 3.2, Figs. 2–3);
the labels are exact: a voxel belongs to an object where at least half of it
is covered (occupancy from 4×4×4 supersampling of each ellipsoid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import TomosegError
from .config import PhantomConfig, preset

SUPERSAMPLING = 4
# object sizes refused in a row before the sampler stops short of its volume budget: no draw fits it. A config that
# can fill its budget is never stopped here in practice, so no phantom of a preset changes: in the smallest volume
# check_fits allows (20x33x33) the default and large-objects presets accept about 1 draw in 200, and 10,000
# refusals in a row have a chance of about 1e-20
MAX_REFUSED_DRAWS = 10_000


@dataclass
class Phantom:
    """A generated volume: ``image`` (uint8), ``labels`` (uint8 0/1), ``instances`` (uint32 object ids),
    ``pillar`` (bool, inside the pillar and the reconstruction circle), ``objects`` (a table, one row per object),
    ``config``."""

    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    pillar: np.ndarray
    objects: dict
    config: PhantomConfig


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        whole = tuple(int(s) for s in shape)
        if any(w != s for w, s in zip(whole, shape)):  # 32.7 was cut to 32 without a word (review PH11)
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise TomosegError(f"phantom shape {shape!r} must be three whole numbers (z, y, x)") from None
    shape = whole
    if len(shape) != 3 or min(shape) < 1:
        raise TomosegError(f"phantom shape {shape} must be three positive sizes (z, y, x)")
    return shape


def check_fits(shape, cfg: PhantomConfig) -> None:
    """Refuse a shape too small for the configuration's pillar or largest objects (checked before a pool of
    phantoms is generated, too: :func:`tomoseg.synthetic.pool.check_item`)."""
    Z, Y, X = shape
    pillar_r = cfg.pillar_radius * min(Y, X)
    if pillar_r < 8:
        raise TomosegError(f"phantom shape {tuple(shape)}: the pillar would be {pillar_r:.1f} voxels in radius; "
                           "make y and x at least 48")
    largest = cfg.radius_max  # rare larger objects that do not fit are left out
    if cfg.object_fraction > 0 and (2 * largest + 4 > Z or largest + cfg.edge_ring_width + 3 > pillar_r):
        # what the volume needs, said in numbers (review PH8)
        z_min = int(np.ceil(2 * largest + 4))
        side_min = int(np.ceil(max(largest + cfg.edge_ring_width + 3, 8) / cfg.pillar_radius))
        raise TomosegError(f"phantom shape {tuple(shape)} is too small for objects of radius up to {largest:g} "
                           f"voxels (radius_max): they need z of at least {z_min} and y and x of at least {side_min}; "
                           "make the volume larger, lower radius_max (objects up to radius R need z of 2R + 4), or "
                           "set object_fraction to 0 for a volume without objects")


def _sample_radii(cfg: PhantomConfig, target_volume: float, rng: np.random.Generator) -> np.ndarray:
    """Equivalent radii (lognormal with the configured mean and s.d.) until their volumes reach the target."""
    if cfg.radius_sd > 0:
        sigma2 = np.log1p((cfg.radius_sd / cfg.radius_mean) ** 2)
        mu = np.log(cfg.radius_mean) - sigma2 / 2
    radii = []
    total = 0.0
    refused = 0  # draws in a row too large for the budget left (below)
    while total < target_volume and refused < MAX_REFUSED_DRAWS:
        if rng.random() < cfg.large_fraction:
            r = rng.uniform(cfg.radius_max, cfg.large_radius_max)
        elif cfg.radius_sd > 0:
            r = float(np.clip(rng.lognormal(mu, np.sqrt(sigma2)), cfg.radius_min, cfg.radius_max))
        else:
            r = cfg.radius_mean
        volume = 4 / 3 * np.pi * r**3
        if volume > 0.25 * target_volume and radii:
            # in a small volume one large object would be the whole budget; this also cuts the large tail of
            # the size distribution in small volumes (docs/phantoms.md, Known limitations, P7). Where no draw can
            # ever be small enough (radius_min, or a fixed radius, above a quarter of the budget) this would loop
            # for ever: after MAX_REFUSED_DRAWS refusals in a row the objects drawn so far are kept (review PH1)
            refused += 1
            continue
        refused = 0
        radii.append(r)
        total += volume
    return np.asarray(radii)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _place_objects(cfg: PhantomConfig, shape, centre_yx, pillar_r, rng) -> dict:
    Z, Y, X = shape
    volume = float(Z * Y * X)
    # the reconstruction circle (outside it the image is a constant): every object lies wholly inside it, so that
    # no label marks voxels where nothing is drawn (review PH4; with the presets' geometry, pillar_radius +
    # pillar_offset * sqrt(2) < 0.5, every object already does)
    axis_yx, recon_r = np.array([(Y - 1) / 2, (X - 1) / 2]), min(Y, X) / 2.0
    radii = _sample_radii(cfg, cfg.object_fraction * volume, rng) if cfg.object_fraction > 0 else np.zeros(0)
    radii = np.sort(radii)[::-1]  # large first: they are the hardest to fit
    centres, semi, rots, kept_r = [], [], [], []
    max_tries = 200
    for r in radii:
        if rng.random() < cfg.ellipsoid_fraction:
            # longest/shortest axis = s1**2*s2, up to max_aspect**3 (docs/phantoms.md, Known limitations, P2)
            s1, s2 = rng.uniform(1.0, cfg.max_aspect, 2)
            axes = np.array([r * s1, r * s2, r / (s1 * s2)])
        else:
            axes = np.array([r, r, r])
        reach = axes.max()
        inner = pillar_r - cfg.edge_ring_width - reach - 2.0
        zlo, zhi = reach + 1.0, Z - 1.0 - reach - 1.0
        if inner <= 0 or zhi <= zlo:
            continue  # does not fit this volume (checked for radius_max before any work)
        placed = False
        arr_c = np.asarray(centres) if centres else np.zeros((0, 3))
        arr_reach = np.asarray([s.max() for s in semi]) if semi else np.zeros(0)
        for _ in range(max_tries):
            if centres and rng.random() < cfg.cluster_fraction:
                j = rng.integers(len(centres))
                direction = rng.standard_normal(3)
                direction /= np.linalg.norm(direction)
                c = arr_c[j] + direction * (arr_reach[j] + reach + rng.uniform(2.5, 5.0))
            else:
                rho = inner * np.sqrt(rng.random())
                phi = rng.uniform(0, 2 * np.pi)
                c = np.array([rng.uniform(zlo, zhi), centre_yx[0] + rho * np.sin(phi),
                              centre_yx[1] + rho * np.cos(phi)])
            if not (zlo <= c[0] <= zhi and np.hypot(c[1] - centre_yx[0], c[2] - centre_yx[1]) <= inner):
                continue
            if np.hypot(c[1] - axis_yx[0], c[2] - axis_yx[1]) + reach + 1.0 > recon_r:
                continue
            if len(arr_c):
                gaps = np.linalg.norm(arr_c - c, axis=1) - arr_reach - reach
                if gaps.min() < 2.5:  # at least two empty voxels between objects: labels never merge
                    continue
            placed = True
            break
        if placed:
            centres.append(c)
            semi.append(axes)
            rots.append(_random_rotation(rng) if axes[0] != axes[2] else np.eye(3))
            kept_r.append(r)
    n = len(centres)
    return {
        "centres": np.asarray(centres).reshape(n, 3), "semi_axes": np.asarray(semi).reshape(n, 3),
        "rotations": np.asarray(rots).reshape(n, 3, 3), "radius": np.asarray(kept_r),
        "gray": np.clip(rng.normal(cfg.object_gray, cfg.object_gray_sd, n), 0, 255),
    }


def _occupancy(centre, axes, rot, shape):
    """Fraction of each voxel inside the ellipsoid, over its bounding box: (slices, occupancy)."""
    reach = axes.max() + 1
    lo = np.maximum(np.floor(centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
    s = SUPERSAMPLING
    offsets = (np.arange(s) + 0.5) / s - 0.5
    grids = [np.add.outer(np.arange(lo[i], hi[i]), offsets).ravel() - centre[i] for i in range(3)]
    gz, gy, gx = np.meshgrid(*grids, indexing="ij")
    pts = np.stack([gz, gy, gx], axis=-1) @ rot  # into the ellipsoid's frame
    inside = ((pts / axes) ** 2).sum(-1) <= 1.0
    n = hi - lo
    occ = inside.reshape(n[0], s, n[1], s, n[2], s).mean(axis=(1, 3, 5))
    return tuple(slice(a, b) for a, b in zip(lo, hi)), occ.astype(np.float32)


def _ring_profile(r: np.ndarray, radii: np.ndarray, amps: np.ndarray, width: float) -> np.ndarray:
    out = np.zeros_like(r, dtype=np.float32)
    for ri, a in zip(radii, amps):
        out += (a * np.exp(-0.5 * ((r - ri) / width) ** 2)).astype(np.float32)
    return out


def _smooth_noise(shape, sd, scale, rng) -> np.ndarray:
    """Slowly varying noise (grain-like texture): coarse random field, zoomed up."""
    coarse = [max(2, int(np.ceil(s / scale)) + 1) for s in shape]
    field = rng.standard_normal(coarse).astype(np.float32)
    field = ndimage.zoom(field, [s / c for s, c in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
    field = field[: shape[0], : shape[1], : shape[2]]
    return field * np.float32(sd / max(field.std(), 1e-6))


def apply_imaging(image: np.ndarray, cfg: PhantomConfig, rng, r_axis: np.ndarray, recon2d: np.ndarray) -> np.ndarray:
    """The imaging chain (float32 in, float32 out): tomographic rings, the physics mode, blur, correlated
    noise, intensity drift along z, and the constant outside the reconstruction circle."""
    Z = image.shape[0]
    if cfg.ring_artifacts > 0 and cfg.ring_strength > 0:
        radii = rng.uniform(0, min(image.shape[1:]) / 2.0, cfg.ring_artifacts)
        amps = rng.normal(0, cfg.ring_strength, cfg.ring_artifacts)
        image += _ring_profile(r_axis, radii, amps, 0.7)
    if cfg.physics:
        from .physics import forward_and_reconstruct

        image = forward_and_reconstruct(image, cfg, rng)
    if cfg.blur_sigma > 0:
        image = ndimage.gaussian_filter(image, cfg.blur_sigma, output=np.float32)
    if cfg.noise_sd > 0:
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        if cfg.noise_correlation > 0:
            noise = ndimage.gaussian_filter(noise, cfg.noise_correlation, output=np.float32)
            noise *= np.float32(1.0 / max(noise.std(), 1e-6))
        image += noise * np.float32(cfg.noise_sd)
        del noise
    if cfg.z_drift:
        drift = 1 + cfg.z_drift * (np.linspace(-0.5, 0.5, Z) + 0.3 * np.sin(np.linspace(0, 3 * np.pi, Z)))
        image *= drift.astype(np.float32)[:, None, None]
    image[:, ~recon2d] = cfg.outside_gray
    return image


def objects_table(centres, semi_axes, label_voxels, occupancy_volume, gray) -> dict:
    """The objects table of a phantom, one row per object (label = instance id = row + 1): the true centre
    (voxels, z y x), the semi-axes (in the ellipsoid's own frame; its rotation is not in the table), the
    analytic volume and equivalent radius, the labelled voxel count, the occupancy volume, and ``gray_value``:
    the gray value the object is drawn with, before blur, noise, drift and 8-bit rounding (not a measured
    mean of the image)."""
    centres = np.asarray(centres, float).reshape(-1, 3)
    axes = np.asarray(semi_axes, float).reshape(-1, 3)
    n = len(centres)
    return {
        "label": np.arange(1, n + 1, dtype=np.int64),
        "centroid_z": centres[:, 0], "centroid_y": centres[:, 1], "centroid_x": centres[:, 2],
        "semi_axis_a_vox": axes[:, 0], "semi_axis_b_vox": axes[:, 1], "semi_axis_c_vox": axes[:, 2],
        "volume_vox": 4 / 3 * np.pi * axes.prod(axis=1) if n else np.zeros(0),
        "equivalent_radius_vox": np.cbrt(axes.prod(axis=1)) if n else np.zeros(0),
        "label_voxels": np.asarray(label_voxels),
        "occupancy_volume_vox": np.asarray(occupancy_volume, float),
        "gray_value": np.asarray(gray, float),
    }


def _config(config, preset_name: str, overrides: dict) -> PhantomConfig:
    """The configuration of a phantom: ``config`` (a PhantomConfig) or the preset, with ``overrides``; both given
    is refused (the preset was silently ignored; review PH11)."""
    from ..errors import checked_options

    if config is None:
        return preset(preset_name, **overrides)
    if preset_name != "default":
        raise TomosegError(f"give a preset_name ({preset_name!r}) or a config, not both: the config holds every "
                           "parameter (tomoseg.synthetic.preset(name, **changes) makes one from a preset)")
    config = checked_options(config, PhantomConfig, "config")
    return PhantomConfig.from_dict({**config.to_dict(), **overrides})  # an unknown name: one clear error


SHORT_OF_FRACTION = 0.9  # placed objects below this share of the asked object volume: said in a warning


def _warn_if_short(semi_axes, cfg: PhantomConfig, shape, pillar_r: float) -> None:
    """Say where the placed objects fall well short of ``object_fraction`` (review PH5): they find no room (a
    large fraction: objects lie inside the pillar and 2.5 voxels apart), or no size drawn fits the volume's
    object budget (radius_min or a fixed radius too large for a small volume). The presets never do."""
    volume = float(np.prod(shape))
    asked = cfg.object_fraction * volume
    placed = float((4 / 3 * np.pi * np.prod(semi_axes, axis=1)).sum()) if len(semi_axes) else 0.0
    if asked <= 0 or placed >= SHORT_OF_FRACTION * asked:
        return
    pillar_share = min(1.0, np.pi * pillar_r**2 / (shape[1] * shape[2]))
    from ..errors import warn

    warn(f"phantom {tuple(shape)}: its objects fill {placed / volume:.2%} of the volume, not the object_fraction "
         f"{cfg.object_fraction:.2%} asked: {len(semi_axes)} object(s) fit (objects lie wholly inside the pillar, "
         f"{pillar_share:.0%} of the volume, at least 2.5 voxels apart, and none after the first above a quarter of "
         "the asked object volume); lower object_fraction or the radii, or make the volume larger")


def make_phantom(shape, *, rng=None, preset_name: str = "default", config: PhantomConfig | None = None,
                 **overrides) -> Phantom:
    """Generate a synthetic TXM micropillar volume with exact labels.

    Parameters
    ----------
    shape : (z, y, x)
        Volume size in voxels; the pillar's axis is along z.
    rng : numpy.random.Generator or int, optional
        All random choices come from it: the same seed gives the same volume.
    preset_name : str
        A name from :data:`tomoseg.synthetic.PRESETS`.
    config : PhantomConfig, optional
        Full parameters (instead of a preset).
    **overrides
        Parameters of :class:`PhantomConfig` to change.

    Returns
    -------
    Phantom
        ``image`` uint8, ``labels`` uint8 (0/1), ``instances`` uint32, ``pillar`` bool, ``objects`` table.

    Examples
    --------
    >>> import tomoseg
    >>> ph = tomoseg.make_phantom((32, 96, 96), rng=0)
    >>> ph.image.dtype, ph.labels.max()
    (dtype('uint8'), np.uint8(1))
    """
    shape = _check_shape(shape)
    cfg = _config(config, preset_name, overrides)
    rng = np.random.default_rng(rng)
    Z, Y, X = shape
    side = min(Y, X)
    centre_yx = np.array([(Y - 1) / 2, (X - 1) / 2]) + rng.uniform(-1, 1, 2) * cfg.pillar_offset * side
    pillar_r = cfg.pillar_radius * side
    recon_r = side / 2.0
    check_fits(shape, cfg)
    objects = _place_objects(cfg, shape, centre_yx, pillar_r, rng)
    _warn_if_short(objects["semi_axes"], cfg, shape, pillar_r)

    yy, xx = np.mgrid[0:Y, 0:X].astype(np.float32)
    r_pillar = np.hypot(yy - centre_yx[0], xx - centre_yx[1])
    r_axis = np.hypot(yy - (Y - 1) / 2, xx - (X - 1) / 2)  # rotation axis: centre of the field of view
    inside2d = r_pillar <= pillar_r
    recon2d = r_axis <= recon_r

    # matrix and surroundings with a soft (partial-volume) pillar edge
    edge = np.clip(pillar_r - r_pillar + 0.5, 0, 1).astype(np.float32)
    image = np.empty(shape, np.float32)
    base2d = cfg.environment_gray + edge * (cfg.matrix_gray - cfg.environment_gray)
    base2d += cfg.edge_ring_gray * np.exp(-0.5 * ((r_pillar - pillar_r + cfg.edge_ring_width) /
                                                  cfg.edge_ring_width) ** 2)
    image[:] = base2d
    if cfg.matrix_texture > 0:
        image += _smooth_noise(shape, cfg.matrix_texture, 6.0, rng) * edge

    # objects: exact occupancy, labels where at least half covered
    labels = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.uint32)
    n = len(objects["radius"])
    label_voxels = np.zeros(n, np.int64)
    occ_volume = np.zeros(n)
    for i in range(n):
        sl, occ = _occupancy(objects["centres"][i], objects["semi_axes"][i], objects["rotations"][i], shape)
        region = image[sl]
        region += occ * (objects["gray"][i] - region)
        mask = occ >= 0.5
        labels[sl][mask] = 1
        instances[sl][mask] = i + 1
        label_voxels[i] = mask.sum()
        occ_volume[i] = occ.sum()

    image = apply_imaging(image, cfg, rng, r_axis, recon2d)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    table = objects_table(objects["centres"], objects["semi_axes"], label_voxels, occ_volume, objects["gray"])
    pillar = np.broadcast_to(inside2d & recon2d, shape)  # the pillar as the image shows it
    return Phantom(image=image, labels=labels, instances=instances, pillar=pillar, objects=table, config=cfg)
