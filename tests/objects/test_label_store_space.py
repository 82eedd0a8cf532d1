"""The chunked labelling's label store: in the temporary folder TMPDIR names, and refused in one line where its
disk has too little room (review S10: /tmp with no option and no free-space check)."""

import errno
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.objects import analyze
from tomoseg.objects.analysis import AnalysisOptions

CHUNKED = AnalysisOptions(in_memory_voxels=0, chunks=(16, 16, 16))


def _mask(n=48):
    m = np.zeros((n, n, n), np.uint8)
    for c in range(6, n - 6, 10):
        m[c - 3:c + 3, c - 3:c + 3, 4:n - 4] = 1  # rods across chunks
    return m


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """TMPDIR pointed at a folder of the test's own (tempfile reads it once: its cached answer is replaced)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def test_the_label_store_goes_where_tmpdir_says(scratch, monkeypatch):
    import tomoseg.objects.analysis as analysis

    seen = []
    real = analysis.label_chunked

    def spy(volume, output_path, **kwargs):
        seen.append(Path(output_path))
        return real(volume, output_path, **kwargs)

    monkeypatch.setattr(analysis, "label_chunked", spy)
    result = analyze(_mask(), options=CHUNKED)
    assert len(result.objects["label"]) == 4
    assert seen and scratch in seen[0].parents and not list(scratch.iterdir())  # removed after


def test_too_little_room_for_the_label_store_is_refused_before_it_is_written(scratch, monkeypatch):
    import tomoseg.io.disk_space as guard
    import tomoseg.io.zarr_store as zarr_store

    monkeypatch.setattr(guard, "free_bytes", lambda folder: 1000)
    written = []
    monkeypatch.setattr(zarr_store, "write_chunk", lambda *a, **k: written.append(a))
    with pytest.raises(TomosegError) as info:
        analyze(_mask(), options=CHUNKED)
    message = str(info.value)
    assert "too little free space for the label store of the chunked labelling" in message
    assert f"the temporary folder {scratch}: point TMPDIR at a folder with more free space" in message
    assert not written and not list(scratch.iterdir())


def test_a_disk_that_fills_while_the_store_is_written_is_said_in_one_line(scratch, monkeypatch):
    import tomoseg.io.zarr_store as zarr_store

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr_store, "write_chunk", full)
    with pytest.raises(TomosegError, match=r"the disk filled while the chunked labelling wrote its label store "
                                           r"\(No space left on device\); use the temporary folder"):
        analyze(_mask(), options=CHUNKED)
    assert not list(scratch.iterdir())


def test_the_store_estimate_covers_the_measured_store(scratch):
    """A store's size against the estimate the check uses (measured: 0.44 byte an object voxel, 257 bytes an
    object, for balls; the estimate is about twice that)."""
    from tomoseg.objects.labelling import label_chunked, store_bytes

    m = _mask(96)
    n = label_chunked(m, scratch / "l.zarr", chunks=(32, 32, 32))
    size = sum(f.stat().st_size for f in (scratch / "l.zarr").rglob("*") if f.is_file())
    assert size <= store_bytes(int(m.sum()), n)


def test_the_ome_zarr_label_image_staged_in_tmpdir_is_checked_too(scratch, tmp_path, monkeypatch):
    import tomoseg.io.disk_space as guard
    from tomoseg.objects.label_image import write_objects_ome_zarr

    mask = _mask()
    result = analyze(mask)
    monkeypatch.setattr(guard, "free_bytes", lambda folder: 1000)
    with pytest.raises(TomosegError, match="too little free space for the objects' label image staged for the "
                                           "OME-Zarr .*point TMPDIR at a folder with more free space"):
        write_objects_ome_zarr(mask, tmp_path / "o.ome.zarr", result.selected)
    assert not list(scratch.iterdir()) and not (tmp_path / "o.ome.zarr").exists()
