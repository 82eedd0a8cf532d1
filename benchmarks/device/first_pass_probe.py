"""The first pass of segment (statistics and sample mask) on this host: auto mask against none, and a profile."""
import time, sys, cProfile, pstats, io, numpy as np
import torch  # noqa: F401 - loaded, as segment on a GPU has it: the statistics use its bincount
import tomoseg
from pathlib import Path
from tomoseg.inference.engine import _first_pass, SegmentOptions
from tomoseg.io import open_volume
from tomoseg.sample_mask import LowResolution, mask_factor, auto_sample_mask
out = Path(sys.argv[1]); src = out / "v.zarr"
if not src.exists():
    ph = tomoseg.make_phantom((128, 512, 512), rng=123)
    tomoseg.write_volume(str(src), np.tile(ph.image, (2, 2, 2)), voxel_size=(29.33,)*3)
for r in range(3):
    for m in ("auto", "off"):
        v = open_volume(str(src)); t = time.perf_counter()
        _first_pass(v, SegmentOptions(sample_mask=m), 16, None)
        print(m, round(time.perf_counter() - t, 3), flush=True)
v = open_volume(str(src)); low = LowResolution(v.shape, mask_factor(v.shape))
from tomoseg.inference.normalization import volume_stats
t = time.perf_counter(); volume_stats(v, visit=low, multiple=low.factor); print("stats+low", round(time.perf_counter() - t, 3))
t = time.perf_counter(); volume_stats(v); print("stats", round(time.perf_counter() - t, 3))
for i in range(2):
    t = time.perf_counter(); auto_sample_mask(v, margin=48, low=low); print("mask compute", round(time.perf_counter() - t, 3))
pr = cProfile.Profile(); pr.enable(); _first_pass(open_volume(str(src)), SegmentOptions(sample_mask="auto"), 16, None); pr.disable()
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(12); print(s.getvalue()[-3000:])
