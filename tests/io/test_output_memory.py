"""Memory-mapped outputs (.tif, .nrrd, .npy, .vol) do not keep what they wrote resident (review S5: writing a
2 GiB .tif raised the RSS to 2.2 GB, which RSS-enforcing job schedulers count)."""

import sys

import numpy as np
import pytest

from tomoseg.io import create_volume, read_volume

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def _rss_file() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile")


@pytest.mark.parametrize("name", ["out.tif", "out.nrrd", "out.npy", "out.vol"])
def test_written_pages_leave_the_resident_set_and_the_data_stay(tmp_path, monkeypatch, name):
    import tomoseg.io.volume

    monkeypatch.setattr(tomoseg.io.volume, "RELEASE_BYTES", 8 << 20, raising=False)
    dtype = np.float32 if name.endswith(".vol") else np.uint8
    shape = (96, 1024, 1024 // np.dtype(dtype).itemsize)  # 96 MiB
    slab = np.random.default_rng(0).integers(0, 200, (8,) + shape[1:]).astype(dtype)
    before = _rss_file()
    grew = 0
    with create_volume(str(tmp_path / name), shape, dtype) as w:
        for z in range(0, shape[0], 8):
            w[z:z + 8] = slab
            w[z:z + 8, :3, :5] = 7  # a small write behind the release point: mapped again, right
            grew = max(grew, _rss_file() - before)
    assert grew < 40 << 20, f"{grew / 2**20:.0f} MiB resident for 96 MiB written"  # was all 96 MiB
    data = read_volume(str(tmp_path / name))
    expected = slab.copy()
    expected[:, :3, :5] = 7
    for z in (0, 40, 88):
        np.testing.assert_array_equal(data[z:z + 8], expected)
