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
