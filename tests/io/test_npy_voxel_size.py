"""tomoseg's own .npy outputs read back their voxel size from their provenance record (readers review IN9);
another program's record, or a file changed since, give none."""

import json
import os

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import open_volume, write_volume

VS = (30.0, 20.0, 10.0)


@pytest.fixture
def npy(tmp_path):
    p = tmp_path / "prob.npy"
    write_volume(p, np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6), voxel_size=VS)
    return p


def test_in9_a_npy_written_by_tomoseg_keeps_its_voxel_size(npy, capsys):
    with open_volume(npy) as v:
        assert v.voxel_size == VS
        assert any("voxel size from prob.npy.provenance.json, tomoseg's record" in n for n in v.notes)
    assert main(["info", str(npy)]) == 0
    assert "30 × 20 × 10 nm" in capsys.readouterr().out


def test_in9_a_segment_record_gives_the_map_its_voxel_size(tmp_path):
    p = tmp_path / "seg.npy"
    np.save(p, np.zeros((4, 5, 6), np.uint8))
    from tomoseg.io.output_guard import write_provenance

    write_provenance(p, {"tool": "tomoseg segment", "input": "in.tif", "input_shape": [4, 5, 6],
                         "voxel_size_nm": list(VS)})
    with open_volume(p) as v:
        assert v.voxel_size == VS


def test_in9_a_file_changed_since_is_not_given_the_record_voxel_size(npy):
    st = npy.stat()
    os.utime(npy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # edited (or copied) since tomoseg wrote it
    with open_volume(npy) as v:
        assert v.voxel_size is None
        assert any("no longer matches it" in n for n in v.notes)


def test_in9_another_programs_record_is_not_trusted(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((4, 5, 6), np.uint8))
    st = p.stat()
    (tmp_path / "x.npy.provenance.json").write_text(json.dumps(
        {"tool": "mytool", "voxel_size_nm": list(VS), "output_file": {"bytes": st.st_size,
                                                                     "mtime_ns": st.st_mtime_ns}}))
    with open_volume(p) as v:
        assert v.voxel_size is None and not v.notes


def test_in9_a_record_of_another_shape_is_not_used(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((4, 5, 6), np.uint8))
    from tomoseg.io.output_guard import write_provenance

    write_provenance(p, {"tool": "tomoseg write_volume", "shape": [4, 5, 7], "voxel_size_nm": list(VS)})
    with open_volume(p) as v:
        assert v.voxel_size is None
