"""A .vol.info with DATA_TYPE (pymicro's HST_write, ESRF materials science) is honoured (readers review IN12)."""

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume

Z, Y, X = 3, 4, 5


def _write(tmp_path, data, lines):
    p = tmp_path / "pym.vol"
    data.tofile(p)
    (tmp_path / "pym.vol.info").write_text("! PyHST_SLAVE VOLUME INFO FILE\n" + f"NUM_X = {X}\nNUM_Y = {Y}\n"
                                           f"NUM_Z = {Z}\n" + "".join(f"{x}\n" for x in lines))
    return p


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32"])
def test_in12_data_type_is_read(tmp_path, kind):
    data = np.arange(Z * Y * X).reshape(Z, Y, X).astype(kind)
    with open_volume(_write(tmp_path, data, [f"DATA_TYPE = {kind}"])) as v:
        assert v.dtype == np.dtype(kind)
        assert np.array_equal(v.read(), data)


def test_in12_data_type_with_big_endian_byte_order(tmp_path):
    data = np.arange(Z * Y * X, dtype=">u2").reshape(Z, Y, X)
    with open_volume(_write(tmp_path, data, ["DATA_TYPE = uint16", "BYTEORDER = HIGHBYTEFIRST"])) as v:
        assert np.array_equal(v.read(), data.astype(np.uint16))


def test_in12_packed_binary_is_refused_naming_it(tmp_path):
    p = _write(tmp_path, np.zeros(8, np.uint8), ["DATA_TYPE = PACKED_BINARY"])
    with pytest.raises(TomosegError, match=r"pym\.vol\.info: gives DATA_TYPE = PACKED_BINARY; tomoseg reads .vol "
                                           r"data of type uint8, .*PACKED_BINARY, one bit a voxel, is not read"):
        open_volume(p)


def test_in12_a_size_mismatch_names_the_type_assumed_and_the_one_that_fits(tmp_path):
    p = _write(tmp_path, np.zeros((Z, Y, X), np.uint16), [])
    with pytest.raises(TomosegError, match=r"describes 5×4×3 float32 \(no DATA_TYPE: PyHST2's float32\) = 240 "
                                           r"bytes; .*if the data are uint16 or int16, write DATA_TYPE = uint16 "
                                           r"in pym\.vol\.info"):
        open_volume(p)
