"""Bad input through the CLI: one clear message, exit code 1, no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.io import write_volume


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "tomoseg" in capsys.readouterr().out


def test_info_json(tmp_path, capsys):
    write_volume(str(tmp_path / "v.tif"), np.arange(60, dtype=np.uint8).reshape(3, 4, 5), voxel_size=(30, 20, 10))
    code, out, err = run(["info", str(tmp_path / "v.tif"), "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["shape"] == [3, 4, 5]
    assert info["dtype"] == "uint8"
    assert info["voxel_size_nm"] == pytest.approx([30, 20, 10])
    assert info["sample"]["min"] == 0 and info["sample"]["max"] == 59


def test_info_unknown_voxel_size_says_so(tmp_path, capsys):
    write_volume(str(tmp_path / "v.npy"), np.zeros((3, 4, 5), np.uint8))
    code, out, _ = run(["info", str(tmp_path / "v.npy")], capsys)
    assert code == 0 and "unknown" in out
    code, out, _ = run(["info", str(tmp_path / "v.npy"), "--json"], capsys)
    assert json.loads(out)["voxel_size_nm"] is None


def _bad_inputs(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nope.tif", "no such file")
    (tmp_path / "v.xyz").write_bytes(b"abc")
    cases["unknown extension"] = (tmp_path / "v.xyz", "unknown volume format")
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((8, 9), np.uint8))
    cases["2D image"] = (tmp_path / "flat.tif", "2D image")
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 5), np.uint8))
    cases["4D array"] = (tmp_path / "four.npy", "4 dimensions")
    folder = tmp_path / "slices"
    folder.mkdir()
    tifffile.imwrite(folder / "s_000.tif", np.zeros((8, 9), np.uint8))
    tifffile.imwrite(folder / "s_001.tif", np.zeros((8, 10), np.uint8))
    cases["mismatched slices"] = (folder, "differ in size")
    tifffile.imwrite(tmp_path / "whole.tif", np.ones((20, 64, 64), np.uint16))
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    cases["truncated TIFF"] = (tmp_path / "cut.tif", "truncated|damaged|readable")
    tifffile.imwrite(tmp_path / "whole_z.tif", np.ones((20, 64, 64), np.uint16), compression="zlib")
    data = (tmp_path / "whole_z.tif").read_bytes()
    (tmp_path / "cut_z.tif").write_bytes(data[: len(data) // 3])
    cases["truncated compressed TIFF"] = (tmp_path / "cut_z.tif", "truncated|damaged|readable")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    cases["not a TIFF"] = (tmp_path / "junk.tif", "not a readable TIFF")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    cases["not HDF5"] = (tmp_path / "junk.h5", "not a readable HDF5")
    return cases


@pytest.mark.parametrize("case", ["missing", "unknown extension", "2D image", "4D array", "mismatched slices",
                                  "truncated TIFF", "truncated compressed TIFF", "not a TIFF", "not HDF5"])
def test_bad_input_gives_one_clear_message(tmp_path, capsys, case):
    path, pattern = _bad_inputs(tmp_path)[case]
    code, out, err = run(["info", str(path)], capsys)
    assert code == 1, err
    assert "Traceback" not in err
    assert err.startswith("tomoseg: error: ")
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(pattern, err), err


def test_debug_shows_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tomoseg", "--debug", "info", str(tmp_path / "nope.tif")],
                            capture_output=True, encoding="utf-8")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info"])
    assert exc.value.code == 2


@pytest.mark.parametrize("modules", ["tomoseg.io", "tomoseg.synthetic.pool"])  # the phantom pool's worker function
def test_io_and_the_pool_worker_do_not_import_torch(modules):
    code = f"import sys, tomoseg, {modules}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True)
    assert result.stdout.strip() == "False"


def test_segment_labels_writes_the_label_image_of_the_objects_table(tmp_path, capsys):
    import tomoseg
    from tomoseg.table import read_csv

    ph = tomoseg.make_phantom((32, 96, 96), rng=3, preset_name="clean")
    write_volume(str(tmp_path / "scan.tif"), ph.image, voxel_size=(29.33,) * 3)
    code = main(["-q", "segment", str(tmp_path / "scan.tif"), str(tmp_path / "prob.zarr"),
                 "--labels", str(tmp_path / "labels.zarr")])
    assert code == 0
    assert main(["-q", "analyze", str(tmp_path / "prob.zarr"), "--csv", str(tmp_path / "objects.csv")]) == 0
    labels = tomoseg.read_volume(tmp_path / "labels.zarr")
    table = read_csv(tmp_path / "objects.csv")
    assert len(table["label"]) > 0
    assert sorted(np.unique(labels[labels > 0]).tolist()) == sorted(table["label"].tolist())
    counts = np.bincount(labels.ravel())
    assert [int(counts[i]) for i in table["label"]] == table["volume_vox"].astype(int).tolist()


def test_segment_labels_refuses_an_existing_path_before_the_work(tmp_path, capsys):
    write_volume(str(tmp_path / "scan.tif"), np.zeros((16, 48, 48), np.uint8) + 5, voxel_size=(29.33,) * 3)
    (tmp_path / "labels.tif").write_bytes(b"someone's file")
    assert main(["-q", "segment", str(tmp_path / "scan.tif"), str(tmp_path / "prob.zarr"),
                 "--labels", str(tmp_path / "labels.tif")]) == 1
    assert (tmp_path / "labels.tif").read_bytes() == b"someone's file"
    assert not (tmp_path / "prob.zarr").exists()


@pytest.mark.parametrize("how", ["env", "-q"])
def test_progress_bars_are_turned_off_by_quiet_or_the_environment(tmp_path, capsys, monkeypatch, how):
    """``TOMOSEG_NO_PROGRESS=1`` (for logs and CI) and ``-q`` leave stderr free of bars; without either, a bar."""
    mask = np.zeros((20, 30, 30), np.uint8)
    mask[5:9, 5:9, 5:9] = 1
    write_volume(tmp_path / "mask.tif", mask)
    assert main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "a.csv")]) == 0
    assert "analyze: 100%" in capsys.readouterr().err
    if how == "env":
        monkeypatch.setenv("TOMOSEG_NO_PROGRESS", "1")
    args = ["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "b.csv")] + (["-q"] if how == "-q" else [])
    assert main(args) == 0
    assert "analyze:" not in capsys.readouterr().err


@pytest.mark.parametrize("labels", [False, True], ids=["segmenting", "labels-given"])
def test_ctrl_c_in_track_says_how_to_resume_where_it_can(tmp_path, capsys, monkeypatch, labels):
    """Ctrl-C in `track` exits 130; where track segments the scans (no labels), the message names --resume,
    which keeps the finished probability maps; with labels given there is nothing to resume."""
    from tomoseg.cli import track as track_cli

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(track_cli, "check_result_folder", stop)
    argv = ["track", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--out", str(tmp_path / "run")]
    if labels:
        argv += ["--before-labels", str(tmp_path / "la.tif"), "--after-labels", str(tmp_path / "lb.tif")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith("tomoseg: interrupted")
    assert ("--resume keeps the finished probability maps" in err) is not labels


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    """`tomoseg info default | head -1`: head closes the pipe, and tomoseg printed "tomoseg: error: [Errno 32]
    Broken pipe" (and Python its own complaint at exit). It now stops quietly with SIGPIPE's status."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tomoseg", "info", "default"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == "", err


def test_info_shows_where_the_volume_lies(tmp_path, capsys):
    """info said nothing of a volume's origin (an OME-Zarr translation, an NRRD space origin), though analyze's nm
    centroids and every label image start there; a rotated NRRD's axes are said to be turned (review LO2)."""
    import nrrd
    import zarr

    data = np.zeros((4, 6, 8), np.uint8)
    g = zarr.open_group(str(tmp_path / "cut.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("0", data=data)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [0.06, 0.03, 0.03]}, {"type": "translation", "translation": [1.5, -2, 12.25]}]}]}]}
    assert main(["info", str(tmp_path / "cut.ome.zarr")]) == 0
    assert "origin        1500 × -2000 × 12250 nm (z, y, x" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "cut.ome.zarr"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["origin_nm"] == [1500.0, -2000.0, 12250.0]
    turned = np.array([[0.0, 0.03, 0.0], [-0.03, 0.0, 0.0], [0.0, 0.0, 0.06]])
    nrrd.write(str(tmp_path / "r.nrrd"), data.transpose(2, 1, 0).copy(), {
        "space dimension": 3, "space units": ["um"] * 3, "space directions": turned,
        "space origin": np.array([1.0, 2.0, 3.0]), "kinds": ["domain"] * 3, "encoding": "raw"}, index_order="F")
    assert main(["info", str(tmp_path / "r.nrrd")]) == 0
    assert "origin        not along the array's axes" in capsys.readouterr().out
    write_volume(tmp_path / "plain.tif", data, voxel_size=(30.0, 30.0, 30.0))
    assert main(["info", str(tmp_path / "plain.tif")]) == 0
    assert "origin" not in capsys.readouterr().out


def test_info_says_an_nrrd_in_metres_rotated_a_few_degrees_is_not_along_the_axes(tmp_path, capsys):
    """In metres the direction vectors are about 3e-8 long: an absolute np.allclose (1e-8) took a rotation of 5
    degrees for none, and info showed neither an origin nor that the axes are turned (brief H5, item 1)."""
    import nrrd

    a = np.radians(5.0)
    step = 3e-8  # 30 nm in metres
    turned = step * np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 2.0]])
    nrrd.write(str(tmp_path / "m.nrrd"), np.zeros((8, 6, 4), np.uint8), {
        "space dimension": 3, "space units": ["m"] * 3, "space directions": turned,
        "space origin": np.array([1e-6, 2e-6, 3e-6]), "kinds": ["domain"] * 3, "encoding": "raw"}, index_order="F")
    assert main(["info", str(tmp_path / "m.nrrd")]) == 0
    out = capsys.readouterr().out
    assert "origin        not along the array's axes" in out
    assert main(["info", str(tmp_path / "m.nrrd"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["axes_rotated"] is True and info["origin_nm"] is None
