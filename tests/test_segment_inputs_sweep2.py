"""segment's bad inputs from the second sweep (2026-11-26, /tmp/sweep2/findings.md): each case refused before
the work with one line, the user's files byte-identical, or the result correct."""

import hashlib
import socket
import threading

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import read_volume, write_volume
from tomoseg.synthetic import make_phantom

S = ["--backend", "torch", "--device", "cpu", "--tile-size", "32", "--halo", "16"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    image = make_phantom((32, 64, 64), rng=2).image
    write_volume(str(folder / "P.tif"), image)
    return folder / "P.tif", image


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _refused(capsys, argv, *words):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    lines = [line for line in err.splitlines()
             if line.strip() and not line.startswith(("tomoseg: warning", "tomoseg: note"))]
    assert len(lines) == 1 and lines[0].startswith("tomoseg: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _segment(argv, capsys):
    rc = main(["-q", "segment", *argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out


# ----------------------------------------------------------------- S1: the sample mask is an input
@pytest.mark.parametrize("how", ["output", "mask"])
def test_an_output_onto_the_sample_mask_is_refused_and_the_mask_kept(tmp_path, scan, capsys, monkeypatch, how):
    src, image = scan
    monkeypatch.chdir(tmp_path)
    write_volume("mk.tif", (image > 0).astype(np.uint8))
    before = _md5(tmp_path / "mk.tif")
    if how == "output":
        argv = ["segment", str(src), "mk.tif", *S, "--sample-mask", "mk.tif", "--overwrite"]
        words = ["mk.tif: output path equals the input --sample-mask mk.tif"]
    else:
        argv = ["segment", str(src), "b.zarr", *S, "--sample-mask", "mk.tif", "--mask", "./mk.tif", "--overwrite"]
        words = ["--mask ./mk.tif: output path equals the input --sample-mask mk.tif"]
    _refused(capsys, argv, *words)
    assert _md5(tmp_path / "mk.tif") == before
    assert not (tmp_path / "b.zarr").exists()


def test_segment_api_keeps_the_sample_mask_apart(tmp_path, scan):
    from tomoseg.errors import TomosegError
    from tomoseg.inference import SegmentOptions, segment

    src, image = scan
    write_volume(str(tmp_path / "mk.tif"), (image > 0).astype(np.uint8))
    before = _md5(tmp_path / "mk.tif")
    with pytest.raises(TomosegError, match="--sample-mask"):
        segment(src, tmp_path / "o.zarr", mask_output=tmp_path / "mk.tif",
                options=SegmentOptions(sample_mask=str(tmp_path / "mk.tif"), overwrite=True), progress=False)
    assert _md5(tmp_path / "mk.tif") == before


# ----------------------------------------------------------------- S6: an empty sample mask
def test_an_all_zero_sample_mask_is_refused(tmp_path, scan, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("m_zero.npy", np.zeros(scan[1].shape, np.uint8))
    _refused(capsys, ["-q", "segment", str(scan[0]), "z.zarr", *S, "--sample-mask", "m_zero.npy"],
             "--sample-mask m_zero.npy: the sample mask is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_zero.npy"]


def test_a_sample_mask_with_nan_is_refused(tmp_path, scan, capsys, monkeypatch):
    """NaN outside the sample (as some tools write it) counted as sample (NaN != 0): refused in segment and in
    analyze, which read a user's sample mask through the same helper."""
    monkeypatch.chdir(tmp_path)
    m = np.ones(scan[1].shape, np.float32)
    m[:, :4] = np.nan
    np.save("m_nan.npy", m)
    _refused(capsys, ["-q", "segment", str(scan[0]), "z.zarr", *S, "--sample-mask", "m_nan.npy"],
             "--sample-mask m_nan.npy: the sample mask holds NaN", "nan_to_num")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_nan.npy"]
    np.save("objs.npy", (scan[1] < 40).astype(np.uint8))
    _refused(capsys, ["-q", "analyze", "objs.npy", "--sample-mask", "m_nan.npy", "--out", "r", "--voxel-size", "30", "30", "30"],
             "the sample mask holds NaN")


# ----------------------------------------------------------------- S14, S8: output dataset names
@pytest.mark.parametrize("out,words", [
    ("y.h5:/", ["y.h5:/: give a dataset name after the colon"]),
    ("y.h5:", ["y.h5:: give a dataset name after the colon"]),
    ("o.zarr:arr", ["o.zarr:arr: segment writes a whole Zarr store", "o.zarr"]),
])
def test_output_names_that_cannot_be_written_are_refused_first(tmp_path, scan, capsys, monkeypatch, out, words):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, ["segment", str(scan[0]), out, *S], *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no work folder, nothing written


def test_labels_at_the_root_of_an_hdf5_file_is_refused_first(tmp_path, scan, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, ["segment", str(scan[0]), "p.zarr", *S, "--labels", "l.h5:/"], "--labels l.h5:/")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- S20, S21, S34: --labels
def test_labels_in_a_format_without_uint32_is_refused_before_the_work(tmp_path, scan, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, ["segment", str(scan[0]), "y.zarr", *S, "--labels", "l.vol"], "l.vol", "uint32")
    assert list(tmp_path.iterdir()) == []  # the probability map was written before


def test_labels_in_the_same_hdf5_file_as_the_map(tmp_path, scan, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _segment([str(scan[0]), "x.h5:/prob", *S, "--mask", "x.h5:/mask", "--labels", "x.h5:/labels"], capsys)
    _segment([str(scan[0]), "y.zarr", *S, "--labels", "yl.zarr"], capsys)
    np.testing.assert_array_equal(read_volume("x.h5:/labels"), read_volume("yl.zarr"))
    np.testing.assert_array_equal(read_volume("x.h5:/prob"), read_volume("y.zarr"))


def test_labels_onto_a_foreign_file_says_so_at_once(tmp_path, scan, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("mine.npy", np.arange(8, dtype=np.uint32).reshape(2, 2, 2))
    before = _md5(tmp_path / "mine.npy")
    for extra in ([], ["--overwrite"]):
        _refused(capsys, ["segment", str(scan[0]), "y.zarr", *S, "--labels", "mine.npy", *extra],
                 "mine.npy", "tomoseg did not write")
    assert _md5(tmp_path / "mine.npy") == before


# ----------------------------------------------------------------- S11, S22, S23: the Dask scheduler
def _server(answer: bytes | None):
    """A TCP service on a free port that is not Dask: silent (``answer`` None) or sending ``answer``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    conns = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            if answer:
                c.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return srv, f"tcp://127.0.0.1:{srv.getsockname()[1]}"


@pytest.mark.parametrize("answer,words", [
    (None, ["no Dask answer within 2 s"]),
    (b"SSH-2.0-OpenSSH_9.6\r\n" * 10, ["not a Dask scheduler"]),
])
def test_a_scheduler_that_is_not_dask_is_named_and_leaves_no_work_folder(tmp_path, scan, capsys, monkeypatch,
                                                                         answer, words):
    from tomoseg.inference import distributed

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(distributed.connect_scheduler, "__defaults__", (2,))
    monkeypatch.chdir(tmp_path)
    srv, address = _server(answer)
    try:
        line = _refused(capsys, ["segment", str(scan[0]), "t.zarr", *S, "--dask-scheduler", address],
                        f"cannot reach the Dask scheduler at {address}", *words)
    finally:
        srv.close()
    assert "memory" not in line
    assert list(tmp_path.iterdir()) == []  # no t.zarr.tomoseg-run: the next plain run needs no --resume
    _segment([str(scan[0]), "t.zarr", *S], capsys)


# ----------------------------------------------------------------- S3, S16: workers in another folder
@pytest.mark.slow
def test_scheduler_whose_workers_run_elsewhere_gets_absolute_paths(tmp_path, scan, capsys, monkeypatch):
    from dask.distributed import LocalCluster

    src, image = scan
    here, other = tmp_path / "here", tmp_path / "other"
    here.mkdir()
    other.mkdir()
    write_volume(str(here / "P.tif"), image)
    write_volume(str(other / "P.tif"), image[:, ::-1].copy())  # another scan of the same shape
    monkeypatch.chdir(other)  # the workers' folder
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"}) as cluster:
        monkeypatch.chdir(here)
        _segment(["P.tif", "ref.zarr", *S], capsys)
        _segment(["P.tif", "dk.zarr", *S, "--dask-scheduler", cluster.scheduler_address], capsys)
    np.testing.assert_array_equal(read_volume(here / "dk.zarr"), read_volume(here / "ref.zarr"))
    assert not (other / "dk.zarr").exists() and not (other / "dk.zarr.tomoseg-run").exists()


def test_roi_labels_leave_out_objects_cut_by_the_roi(tmp_path, capsys, monkeypatch):
    """segment --roi --labels labelled objects cut by the ROI's inner faces as whole objects of truncated size
    (682 of 912 voxels in the review); they are left out now, as objects at the volume's border are."""
    from tomoseg.io import read_volume

    monkeypatch.chdir(tmp_path)
    write_volume("P.tif", make_phantom((48, 128, 128), rng=4).image)
    box = (slice(10, 38), slice(30, 90), slice(0, 128))
    assert main(["-q", "segment", "P.tif", "full.zarr", *S, "--sample-mask", "off", "--labels", "full.tif"]) == 0
    assert main(["-q", "segment", "P.tif", "roi.zarr", *S, "--roi", "10:38,30:90,:", "--labels", "roi.tif"]) == 0
    full, roi = read_volume("full.tif"), read_volume("roi.tif")
    assert roi.max() > 0 and not roi[:10].any() and not roi[38:].any()
    assert not roi[:, :30].any() and not roi[:, 90:].any()
    # every object kept is the same object, voxel for voxel, as in the whole volume's label image, and lies
    # inside the box away from its inner faces; objects of the whole volume that cross a face are left out
    for label in np.unique(roi)[1:]:
        where = roi == label
        other = np.unique(full[where])
        assert len(other) == 1 and other[0] > 0 and np.array_equal(full == other[0], where)
    inner = np.zeros(full.shape, bool)
    inner[box] = True
    crossing = [lab for lab in np.unique(full[box])[1:] if not inner[full == lab].all()]
    assert crossing and not (roi[np.isin(full, crossing)] > 0).any()


def test_ctrl_c_in_the_label_step_says_how_to_finish(tmp_path, scan, capsys, monkeypatch):
    """Ctrl-C while segment --labels wrote the label image said "--resume continues where it stopped", but the
    map was finished and its work folder gone, so --resume was refused. The hint now says what to run."""
    from tomoseg.cli import segment as cli_segment

    monkeypatch.chdir(tmp_path)
    _write_labels = cli_segment._write_labels

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_segment, "_write_labels", stop)
    assert main(["-q", "segment", str(scan[0]), "p.zarr", *S, "--labels", "l.tif", "--threshold", "100"]) == 130
    err = capsys.readouterr().err
    assert "the probability map p.zarr is complete; write its label image with: tomoseg analyze p.zarr " \
           "--threshold 100 --labels l.tif" in err and "--resume" not in err
    monkeypatch.setattr(cli_segment, "_write_labels", _write_labels)
    assert main(["-q", "analyze", "p.zarr", "--threshold", "100", "--labels", "l.tif"]) == 0  # as the hint says
    assert (tmp_path / "l.tif").exists()
