"""A compressed NRRD is read whole into memory: one that would not fit is refused before the read."""

import nrrd
import numpy as np
import psutil
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume


def test_a_compressed_nrrd_too_large_for_memory_is_refused_with_advice(tmp_path, rng, monkeypatch):
    data = rng.integers(0, 255, (8, 16, 16), dtype=np.uint8)
    nrrd.write(str(tmp_path / "v.nrrd"), data, {"encoding": "gzip"}, index_order="C")
    with open_volume(str(tmp_path / "v.nrrd")) as vol:  # fits: read as before
        np.testing.assert_array_equal(vol[:, :, :], data)

    class Little:
        available = 2 * data.nbytes - 2  # half of it is just under the data's size

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    with pytest.raises(TomosegError, match=r"gzip-compressed NRRD .* raw encoding"):
        open_volume(str(tmp_path / "v.nrrd"))
