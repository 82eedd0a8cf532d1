"""Folders of TIFF slices: the slices' names decide z, so a gap, a repeat or a stray file is refused."""

import numpy as np
import pytest
import tifffile

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume


def _folder(path, numbers, v, name="slice_{:04d}.tif"):
    path.mkdir()
    for i in numbers:
        tifffile.imwrite(path / name.format(i), v[i % len(v)])
    return path


@pytest.mark.parametrize("case,message", [
    ("gap", "slice numbers 0-11 have gaps (missing 5)"),
    ("extra", "holds preview.tif, which does not follow the slices' names (slice_####.tif)"),
    ("duplicate", "slices slice_0010.tif and slice_0010.tiff carry the same number 10"),
])
def test_a_gap_a_repeat_or_a_stray_file_is_refused(tmp_path, case, message):
    """A missing slice moved every slice above it down one, a preview image every slice up one, silently
    (second sweep S5)."""
    v = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    folder = _folder(tmp_path / case, [i for i in range(12) if not (case == "gap" and i == 5)], v)
    if case == "extra":
        tifffile.imwrite(folder / "preview.tif", v[0])
    if case == "duplicate":
        tifffile.imwrite(folder / "slice_0010.tiff", v[3])
    with pytest.raises(TomosegError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_volume(str(folder))


def test_numbered_slices_with_a_constant_step_or_unnumbered_names_are_read(tmp_path):
    v = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    every_other = _folder(tmp_path / "step", range(0, 12, 2), v)
    assert np.array_equal(open_volume(str(every_other))[:, :, :], v[::2])
    names = tmp_path / "names"
    names.mkdir()
    for i, n in enumerate(("a", "b", "c")):
        tifffile.imwrite(names / f"{n}.tif", v[i])
    assert open_volume(str(names)).shape == (3, 8, 8)
