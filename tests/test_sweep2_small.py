"""Small fixes of the second sweep (2026-11-26): a FIFO is refused without blocking, --device values are
checked and named, TOMOSEG_NO_PROGRESS takes the usual spellings."""

import os
import sys

import numpy as np
import pytest

from tomoseg.cli import main


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_a_volume_is_refused_without_blocking(tmp_path, capsys):
    """`info` on a FIFO named .tif blocked for ever (S12)."""
    os.mkfifo(tmp_path / "pipe.tif")
    assert main(["info", str(tmp_path / "pipe.tif")]) == 1
    assert "is not a regular file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-1", "cuda:"])
def test_a_malformed_device_is_refused_by_name(tmp_path, capsys, device):
    """segment took any cuda:* (S31); a malformed one is refused naming the value given."""
    np.save(tmp_path / "in.npy", np.zeros((8, 16, 16), np.uint8))
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), "--device", device]) == 1
    err = capsys.readouterr().err
    assert f"device {device!r} must be auto, cpu, cuda or cuda:N" in err and "Traceback" not in err


def test_a_missing_gpu_is_named_as_given(tmp_path, capsys):
    from tomoseg.inference.backends import cuda_available

    if cuda_available():
        pytest.skip("a GPU is here")
    np.save(tmp_path / "in.npy", np.zeros((8, 16, 16), np.uint8))
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), "--device", "cuda:3"]) == 1
    assert "--device cuda:3: no CUDA GPU is visible" in capsys.readouterr().err


@pytest.mark.parametrize("value,shown", [("1", False), ("true", False), ("YES", False), ("0", True),
                                         ("false", True), ("", True)])
def test_tomoseg_no_progress_takes_the_usual_spellings(monkeypatch, value, shown):
    """Only "1" turned the bars off (S36)."""
    from argparse import Namespace

    from tomoseg.cli import progress_enabled

    monkeypatch.setenv("TOMOSEG_NO_PROGRESS", value)
    assert progress_enabled(Namespace(quiet=False)) is shown


def test_raw_nxtomo_projections_are_refused_and_a_reconstruction_read(tmp_path):
    """An NXtomo file (projections with darks and flats, image_key) was segmented as a volume, its darks and flats
    as z slices (S7); a reconstruction in a NeXus file (NXtomoproc) is read."""
    import h5py

    from tomoseg.errors import TomosegError
    from tomoseg.io import open_volume

    v = np.random.default_rng(0).integers(0, 255, (8, 16, 16)).astype(np.uint16)
    with h5py.File(tmp_path / "raw.nxs", "w") as f:
        entry = f.create_group("entry")
        entry["definition"] = "NXtomo"
        detector = entry.create_group("instrument/detector")
        detector["data"] = np.concatenate([np.zeros((2, 16, 16), np.uint16), v])
        detector["image_key"] = np.array([2] * 2 + [0] * 8)
        entry.create_group("data")["data"] = h5py.SoftLink("/entry/instrument/detector/data")
    with h5py.File(tmp_path / "recon.h5", "w") as f:
        entry = f.create_group("entry")
        entry["definition"] = "NXtomoproc"
        entry.create_group("data")["data"] = v
    for path in (tmp_path / "raw.nxs", f"{tmp_path / 'raw.nxs'}:/entry/data/data"):
        with pytest.raises(TomosegError, match="holds raw projections"):
            open_volume(str(path))
    assert open_volume(str(tmp_path / "recon.h5")).shape == (8, 16, 16)


def test_reading_an_unfinished_work_store_warns(tmp_path):
    """analyze took a work store of an interrupted segment run (X.tomoseg-run/prob.zarr) for a result: its tiles
    not yet computed read as 0 (S10). Reading one now warns and says how to finish."""
    from tomoseg.errors import TomosegWarning
    from tomoseg.io import open_volume, write_volume

    store = tmp_path / "out.zarr.tomoseg-run" / "prob.zarr"
    store.parent.mkdir()
    write_volume(str(store), np.zeros((4, 8, 8), np.uint8))
    with pytest.warns(TomosegWarning, match="inside the work folder of a segment run that has not finished"):
        open_volume(str(store))
