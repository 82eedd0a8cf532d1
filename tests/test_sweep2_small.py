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


def test_info_names_the_hdf5_dataset_it_picked(tmp_path, capsys):
    """info on an HDF5 file without a dataset path showed the file only, not the dataset read (S38)."""
    import h5py

    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f["entry/data/data"] = np.zeros((4, 8, 8), np.uint8)
    assert main(["info", str(tmp_path / "scan.h5")]) == 0
    assert f"{tmp_path / 'scan.h5'}:/entry/data/data" in capsys.readouterr().out


def test_results_are_written_and_read_as_utf8_whatever_the_locale(tmp_path):
    """The text tomoseg writes (JSON, HTML, CSV) holds µ, × and dashes. Written in the locale's encoding, a run
    under an ASCII locale (LANG=C on a cluster node, a library that resets the locale) failed with a
    UnicodeEncodeError at the end of a track, and Windows' cp1252 would too; messages with µ or ± on such a
    terminal ended analyze the same way (they are escaped now). Runs here in a child process whose preferred
    encoding is ASCII (PYTHONUTF8=0, LC_ALL=C, no coercion)."""
    import subprocess

    script = (
        "import locale, sys; assert locale.getpreferredencoding(False).lower() in ('ascii', 'ansi_x3.4-1968'), "
        "locale.getpreferredencoding(False)\n"
        "import numpy as np\n"
        "from tomoseg.cli import main\n"
        f"d = {str(tmp_path)!r}\n"
        "assert main(['phantom', d + '/b.tif', '--labels', d + '/bl.tif', '--instances', d + '/bi.npy', '--pair', "
        "d + '/a.tif', '--pair-labels', d + '/al.tif', '--pair-instances', d + '/ai.npy', '--pair-truth', "
        "d + '/t.json', '--shape', '48', '128', '128', '-q']) == 0\n"
        "assert main(['track', d + '/b.tif', d + '/a.tif', '--before-labels', d + '/bi.npy', '--after-labels', "
        "d + '/ai.npy', '--truth', d + '/t.json', '--out', d + '/run', '-q']) == 0\n"
        "assert main(['analyze', d + '/bl.tif', '--out', d + '/res', '--report', '-q']) == 0\n")
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, encoding="utf-8")
    assert result.returncode == 0, result.stderr[-2000:]
    for page in (tmp_path / "run" / "track.html", tmp_path / "res" / "report.html"):
        assert page.read_text(encoding="utf-8").startswith("<")


def test_a_volume_of_a_few_slices_warns(tmp_path, capsys):
    """A one-slice volume was segmented by the 3D model without a word, although a 2D image is refused (S9)."""
    np.save(tmp_path / "one.npy", np.random.default_rng(0).integers(0, 255, (1, 32, 32), dtype=np.uint8))
    assert main(["segment", str(tmp_path / "one.npy"), str(tmp_path / "o.zarr"), "--backend", "torch",
                 "--device", "cpu", "-q"]) == 0
    assert "1 slice: the 3D network sees little context along z" in capsys.readouterr().err
