"""Parameters of a synthetic TXM micropillar phantom, and named presets.

Gray values are on the paper's 8-bit scale (Section 3.2, Fig. 3): the steel
matrix about 125–225, the surroundings 0–75, the region outside the
reconstruction circle at a constant 34, dark objects whose values overlap the
matrix's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import TomosegError


@dataclass(frozen=True)
class PhantomConfig:
    # geometry
    pillar_radius: float = 0.42          # pillar radius as a fraction of min(y, x)
    pillar_offset: float = 0.02          # random offset of the pillar axis, fraction of min(y, x)
    # objects
    object_fraction: float = 0.002       # objects' share of all voxels
    radius_mean: float = 3.3             # equivalent radius (voxels), paper's Table 1: 3.34 ± 1.06
    radius_sd: float = 1.1
    radius_min: float = 1.0
    radius_max: float = 8.0
    large_fraction: float = 0.01         # share of rare larger objects, radius up to large_radius_max
    large_radius_max: float = 11.0
    ellipsoid_fraction: float = 0.5      # share of ellipsoids (the rest are spheres)
    # per-axis stretch limit, NOT the axis ratio: axes r*s1, r*s2, r/(s1*s2) with s1, s2 ~ U(1, max_aspect), so
    # longest/shortest = s1**2*s2 reaches max_aspect**3 (2.46 at 1.35; measured median 1.70). Kept as it is:
    # the default model v3 was trained on it (docs/phantoms.md, Known limitations, P2)
    max_aspect: float = 1.35
    cluster_fraction: float = 0.25       # share of objects placed next to another
    # gray values (8-bit scale)
    matrix_gray: float = 172.0
    matrix_texture: float = 7.0          # s.d. of the slow grain-like variation of the matrix
    object_gray: float = 112.0
    object_gray_sd: float = 14.0
    environment_gray: float = 42.0
    outside_gray: float = 34.0           # constant outside the reconstruction circle
    edge_ring_gray: float = 60.0         # bright ring artifact at the pillar edge (amplitude)
    edge_ring_width: float = 2.5
    # imaging
    blur_sigma: float = 0.9              # point-spread function (voxels)
    noise_sd: float = 20.0               # noise on the 8-bit scale
    noise_correlation: float = 0.6       # 3D blur of the noise (voxels), so also correlated along z, unlike
    #                                      slice-by-slice FBP noise (docs/phantoms.md, Known limitations, P13)
    ring_artifacts: int = 12             # number of tomographic ring artifacts
    ring_strength: float = 5.0           # their s.d. of amplitude
    z_drift: float = 0.05                # relative intensity drift from first to last slice
    # physics mode: forward projection, Poisson noise, detector gains, filtered back-projection
    physics: bool = False
    photons: float = 3000.0              # incident photons per detector pixel and angle
    gain_error: float = 0.004            # s.d. of detector gain errors (make ring artifacts)
    angles: int = 0                      # projection angles (0: as many as the slice width)

    def __post_init__(self):
        checks = [
            ("pillar_radius", 0.05 <= self.pillar_radius <= 0.5, "between 0.05 and 0.5"),
            ("pillar_offset", 0 <= self.pillar_offset <= 0.25, "between 0 and 0.25 (of the width)"),
            ("object_fraction", 0.0 <= self.object_fraction <= 0.5, "between 0 and 0.5 (50 %)"),
            ("radius_mean", self.radius_mean > 0, "positive"),
            ("radius_sd", self.radius_sd >= 0, "zero or positive"),
            ("radius_min", 0 < self.radius_min <= self.radius_max, "positive and at most radius_max"),
            # a fixed radius (radius_sd 0) is radius_mean itself, and a mean outside the clip range piles every
            # object at one bound (review PH3)
            ("radius_mean", self.radius_min <= self.radius_mean <= self.radius_max,
             f"between radius_min ({self.radius_min:g}) and radius_max ({self.radius_max:g})"),
            ("large_radius_max", self.large_radius_max >= self.radius_max, "at least radius_max"),
            ("max_aspect", self.max_aspect >= 1, "at least 1"),
            ("blur_sigma", self.blur_sigma >= 0, "zero or positive"),
            ("noise_sd", self.noise_sd >= 0, "zero or positive"),
            ("photons", 0 < self.photons < math.inf, "positive"),
            ("angles", self.angles >= 0, "zero or positive"),
            # review PH7: a width of 0 divided by zero, negative sizes and counts were taken as given
            ("edge_ring_width", 0 < self.edge_ring_width < math.inf, "positive (voxels)"),
            ("edge_ring_gray", -255 <= self.edge_ring_gray <= 255, "between -255 and 255"),
            ("z_drift", -1 < self.z_drift < 1, "between -1 and 1 (a share of the gray value)"),
        ]
        for name in ("matrix_gray", "object_gray", "environment_gray", "outside_gray"):
            checks.append((name, 0 <= getattr(self, name) <= 255, "between 0 and 255 (8-bit gray values)"))
        for name in ("matrix_texture", "object_gray_sd", "noise_correlation", "ring_artifacts", "ring_strength",
                     "gain_error"):
            checks.append((name, 0 <= getattr(self, name) < math.inf, "zero or positive"))
        for frac in ("large_fraction", "ellipsoid_fraction", "cluster_fraction"):
            checks.append((frac, 0 <= getattr(self, frac) <= 1, "between 0 and 1"))
        for name, ok, what in checks:
            if not ok:
                raise TomosegError(f"phantom {name} = {getattr(self, name)!r} must be {what}")

    @classmethod
    def from_dict(cls, values: dict) -> "PhantomConfig":
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise TomosegError(f"unknown phantom parameter(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "PhantomConfig":
        return replace(self, **changes)


PRESETS: dict[str, dict] = {
    "default": {},
    "clean": {"noise_sd": 9.0, "ring_strength": 2.0, "blur_sigma": 0.7},
    "noisy": {"noise_sd": 30.0, "noise_correlation": 0.8},
    # lower contrast AND lower noise: CNR 2.62 against the default's 3.0, above "noisy" (docs/phantoms.md, P10)
    "low-contrast": {"object_gray": 130.0, "object_gray_sd": 12.0, "noise_sd": 16.0},
    "strong-rings": {"ring_artifacts": 30, "ring_strength": 12.0, "edge_ring_gray": 70.0},
    "large-objects": {"radius_mean": 4.5, "radius_sd": 1.6, "large_fraction": 0.05, "object_fraction": 0.004},
    "small-objects": {"radius_mean": 2.2, "radius_sd": 0.7, "object_fraction": 0.001},
    "small-pillar": {"pillar_radius": 0.3, "edge_ring_gray": 30.0},
    "bright": {"matrix_gray": 195.0, "object_gray": 130.0, "environment_gray": 55.0},
    "physics": {"physics": True, "photons": 800.0, "noise_sd": 0.0, "ring_artifacts": 0, "noise_correlation": 0.0},
}


def preset(name: str, **overrides) -> PhantomConfig:
    """A named preset, optionally with some parameters changed."""
    if name not in PRESETS:
        raise TomosegError(f"unknown phantom preset {name!r}; choose one of {sorted(PRESETS)}")
    return PhantomConfig.from_dict({**PRESETS[name], **overrides})
