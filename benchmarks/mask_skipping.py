"""How much network work the automatic sample mask saves, by pillar size and tile size.

``segment`` skips the tiles whose core lies wholly outside the sample mask and lays its tiles over the
sample's bounding box only. How much that saves depends on the geometry alone: the pillar's radius in the
field of view, the mask's margin (the halo, 48 voxels) and the tile size of the backend. This runs the real
``auto_sample_mask`` on a centred cylinder (a clean two-level image, so Otsu finds it exactly) and the real
tile grid, and counts the voxels of the windows the network would run on, with the mask and without.
No network runs, so it takes seconds and needs no GPU.

    python benchmarks/mask_skipping.py

Writes benchmarks/results/mask_skipping.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

# (volume, tile sizes, what runs at that tile): the CPU defaults and the CUDA choices on a large card
CASES = [((128, 512, 512), [224], "CPU: OpenVINO 224"),
         ((320, 512, 512), [160, 224], "CPU: PyTorch 160, OpenVINO 224"),
         ((256, 1024, 1024), [256, 384], "GPU: 256 and 384 (H100/H200 choices)")]
RADII = [0.2, 0.3, 0.35, 0.42, 0.45]  # pillar radius / field width; 0.42 is the phantom's default (the paper's
#                                       25 um pillar in a 30 um field)


def pillar_volume(shape, radius_fraction: float):
    """A centred cylinder along z, 160 inside and 60 outside, as a read-only view (no memory per slice)."""
    _, Y, X = shape
    yy, xx = np.mgrid[:Y, :X]
    r = radius_fraction * min(Y, X)
    disk = np.where((yy - (Y - 1) / 2) ** 2 + (xx - (X - 1) / 2) ** 2 <= r * r, 160, 60).astype(np.uint8)
    return np.broadcast_to(disk, shape)


def window_voxels(tiles) -> int:
    return sum(int(np.prod([r.stop - r.start for r in t.read])) for t in tiles)


def row(shape, tile: int, radius: float) -> dict:
    from tomoseg.inference.tiling import TilingConfig, round_up, tile_grid
    from tomoseg.sample_mask import auto_sample_mask

    config = TilingConfig(tile_size=tile)
    volume = pillar_volume(shape, radius)
    mask = auto_sample_mask(volume, margin=round_up(config.halo, 8))
    plain = tile_grid(shape, config, 8)
    boxed = tile_grid(shape, config, 8, region=mask.box) if mask.box else []
    computed = [t for t in boxed if mask.touches(t.core)]
    return {"shape": shape, "tile": tile, "radius": radius, "pillar_area": math.pi * radius ** 2,
            "mask_area": mask.fraction(), "fallback": mask.record.get("fallback"),
            "tiles": len(plain), "computed": len(computed),
            "work": window_voxels(computed) / window_voxels(plain)}


def main(argv=None) -> int:
    from _report import emit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mask_skipping.md"))
    args = ap.parse_args(argv)
    lines = [f"# Network work the sample mask saves ({time.strftime('%Y-%m-%d')})", "",
             "Written by benchmarks/mask_skipping.py: the real automatic mask (margin 48, the halo) on a centred\n"
             "cylinder, the real tile grid; `work` is the voxels of the windows the network runs on with the mask,\n"
             "over those without it (1.00: nothing saved). Geometry only: the same on any machine.", ""]
    for shape, tiles, what in CASES:
        lines += [f"## {' x '.join(map(str, shape))} ({what})", "",
                  "| tile | pillar radius / field | pillar area | mask area | tiles without mask | computed with "
                  "mask | work with / without |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for tile in tiles:
            for radius in RADII:
                r = row(shape, tile, radius)
                area = f"{r['mask_area']:.2f}" + (" (all: fills the field)" if r["fallback"] else "")
                lines.append(f"| {tile} | {radius:.2f} | {r['pillar_area']:.2f} | {area} | {r['tiles']} | "
                             f"{r['computed']} | {r['work']:.2f} |")
        lines.append("")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
