"""Inputs tomoseg does not read: the message says what to do (readers review IN11)."""

import re
import subprocess

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io import format_of, open_volume


def _error(path) -> str:
    with pytest.raises(TomosegError) as err:
        open_volume(path)
    return str(err.value)


def test_in11_raw_gets_a_detached_nrrd_header_that_reads_it(tmp_path):
    vol = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    raw = tmp_path / "scan.raw"
    vol.tofile(raw)
    message = _error(raw)
    assert "describe it with a detached NRRD header beside it, which tomoseg reads" in message
    command = re.search(r"(printf '.*' > scan\.nhdr)", message).group(1)
    command = command.replace("sizes: X Y Z", "sizes: 5 4 3")  # the user fills in the sizes
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
    with open_volume(tmp_path / "scan.nhdr") as v:
        assert np.array_equal(v.read(), vol)
        assert v.voxel_size == pytest.approx((650.0, 650.0, 650.0))


def test_in11_npz_names_its_arrays_and_how_to_save_one(tmp_path):
    p = tmp_path / "one.npz"
    np.savez(p, vol=np.zeros((2, 3, 4), np.uint8))
    assert _error(p) == (f"{p}: is a NumPy .npz archive, which holds the arrays vol; tomoseg reads one volume per "
                         ".npy: save the one to read, e.g. python -c \"import numpy; numpy.save('one.npy', "
                         "numpy.load('one.npz')['vol'])\"")


@pytest.mark.parametrize("name, shown, hint", [
    ("scan.nii.gz", ".nii.gz", "SimpleITK as s; s.WriteImage(s.ReadImage('scan.nii.gz'), 'scan.nrrd')"),
    ("scan.tif.gz", ".tif.gz", "gunzip -k scan.tif.gz) and give scan.tif"),
    ("scan.mrc", ".mrc", "mrcfile.mmap('scan.mrc', mode='r').data"),
    ("scan.edf", ".edf", "silx convert"),
])
def test_in11_other_formats_name_a_conversion(tmp_path, name, shown, hint):
    p = tmp_path / name
    p.write_bytes(b"\0" * 64)
    message = _error(p)
    assert f"unknown volume format '{shown}':" in message and hint in message


def test_in11_an_unknown_output_format_is_refused_as_before(tmp_path):
    with pytest.raises(TomosegError, match=r"unknown volume format '\.raw'; supported: TIFF"):
        format_of(tmp_path / "o.raw", for_writing=True)


def test_in11_a_folder_of_png_slices_names_them_and_the_conversion(tmp_path):
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((4, 5), np.uint8)).save(folder / f"slice_{i}.png")
    assert _error(folder) == (f"{folder}: holds no .tif/.tiff slices but 3 .png files; tomoseg reads folders of TIFF "
                              "slices: save them as one TIFF stack (Fiji: File > Import > Image Sequence, then File > "
                              "Save As > Tiff)")


def test_in11_a_glob_is_not_expanded_and_says_so(tmp_path):
    message = _error(tmp_path / "rec_*.tiff")
    assert "tomoseg does not expand wildcards" in message and f"give the folder that holds the slices ({tmp_path})" \
        in message


def test_in11_a_zip_file_named_zarr_is_read_as_a_zipped_store(tmp_path):
    """Changed by review readers2 RD4: zipped Zarr stores are read (tests/io/test_zarr_zip.py); this zip's store
    holds no array, and the message says so (it was "is a zipped Zarr store ...; unzip it")."""
    import zipfile

    p = tmp_path / "scan.zarr"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("zarr.json", '{"zarr_format": 3, "node_type": "group"}')
    assert "is a Zarr group without OME-NGFF metadata; it holds no array" in _error(p)


def test_rd4_a_file_named_zarr_zip_that_is_no_zip_is_said_so(tmp_path):
    p = tmp_path / "scan.zarr.zip"
    p.write_bytes(b"\0" * 64)
    assert _error(p) == f"{p}: is a file but not a zip file; a Zarr store is a folder (or a zipped one, .zarr.zip)"
