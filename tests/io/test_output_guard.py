"""A user's existing data survive every output path: folders, other HDF5 datasets, raw scans, changed inputs."""

import json

import h5py
import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.io import write_volume



@pytest.fixture
def scan(tmp_path, rng):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, rng.integers(0, 255, (10, 20, 20), dtype=np.uint8))  # not written by tomoseg
    return path


def _cli(argv, capsys):
    code = main(argv + ["-q"])
    return code, capsys.readouterr().err


def _seg(tiny_model):
    return ["--model", tiny_model, "--backend", "torch", "--device", "cpu"]


def test_existing_folder_survives_overwrite(tmp_path, scan, tiny_model, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("three weeks of work")
    (results / "slice_0000.tif").write_bytes(b"not mine")
    code, err = _cli(["segment", str(scan), str(results), "--overwrite"] + _seg(tiny_model), capsys)
    assert code == 1 and "folder that tomoseg did not write" in err and "Traceback" not in err
    assert (results / "notes.txt").read_text(encoding="utf-8") == "three weeks of work"
    assert sorted(p.name for p in results.iterdir()) == ["notes.txt", "slice_0000.tif"]


def test_own_slice_folder_is_replaced_with_overwrite(tmp_path, scan, tiny_model, capsys):
    out = tmp_path / "seg"
    assert _cli(["segment", str(scan), str(out)] + _seg(tiny_model), capsys)[0] == 0
    assert _cli(["segment", str(scan), str(out)] + _seg(tiny_model), capsys)[1].count("already exists") == 1
    assert _cli(["segment", str(scan), str(out), "--overwrite"] + _seg(tiny_model), capsys)[0] == 0
    (out / "mine.txt").write_text("added by the user")
    code, err = _cli(["segment", str(scan), str(out), "--overwrite"] + _seg(tiny_model), capsys)
    assert code == 1 and (out / "mine.txt").exists()


def test_hdf5_other_datasets_survive(tmp_path, scan, tiny_model, capsys):
    """A file tomoseg created takes more datasets (each replaced only with --overwrite); its others stay."""
    h5 = tmp_path / "exp.h5"
    write_volume(f"{h5}:/entry/raw", np.arange(1000, dtype=np.uint16).reshape(10, 10, 10))
    write_volume(f"{h5}:/entry/other", np.zeros((10, 20, 20), np.uint8))
    out = f"{h5}:/entry/seg"
    assert _cli(["segment", str(scan), out] + _seg(tiny_model), capsys)[0] == 0
    code, err = _cli(["segment", str(scan), out] + _seg(tiny_model), capsys)
    assert code == 1 and "pass --overwrite" in err
    assert _cli(["segment", str(scan), out, "--overwrite"] + _seg(tiny_model), capsys)[0] == 0
    with h5py.File(h5, "r") as f:
        assert np.array_equal(f["/entry/raw"][...], np.arange(1000, dtype=np.uint16).reshape(10, 10, 10))
        assert f["/entry/seg"].shape == (10, 20, 20) and "tomoseg" in f["/entry/seg"].attrs
        assert not f["/entry/other"][...].any()
        assert sorted(f["/entry"]) == ["other", "raw", "seg"]


def _users_h5(path, libver):
    """A user's file as a beamline writer leaves it (libver "latest": superblock 3, SWMR-capable) or as
    h5py writes by default."""
    with h5py.File(path, "w", libver=libver) as f:
        f["/exchange/data"] = np.arange(10 * 20 * 20, dtype=np.uint16).reshape(10, 20, 20)
    return path.read_bytes()


@pytest.mark.parametrize("libver", ["latest", "earliest"])
def test_no_dataset_is_added_to_an_hdf5_file_tomoseg_did_not_create(tmp_path, scan, tiny_model, capsys, libver):
    """D1: a dataset added to an existing file is copied into it, which a kill or a full disk can interrupt:
    the file then had dead space, or (libver latest) stayed flagged open and unreadable. tomoseg adds datasets
    only to files it created: every output into a user's file is refused before any work, naming a new file."""
    h5 = tmp_path / "raw.h5"
    before = _users_h5(h5, libver)
    mask = tmp_path / "mask.tif"
    write_volume(mask, (np.arange(10 * 20 * 20).reshape(10, 20, 20) % 7 == 0).astype(np.uint8))
    runs = [["segment", str(scan), f"{h5}:/prob"] + _seg(tiny_model),
            ["segment", str(scan), "p.zarr", "--mask", f"{h5}:/mask"] + _seg(tiny_model),
            ["analyze", str(mask), "--labels", f"{h5}:/labels"],
            ["phantom", f"{h5}:/phantom", "--labels", str(tmp_path / "lab.tif"), "--shape", "8", "16", "16"]]
    for argv in runs:
        for extra in ([], ["--overwrite"]):
            code, err = _cli(argv + extra, capsys)
            leaf = argv[argv.index(next(a for a in argv if a.startswith(str(h5))))].split("/")[-1]
            assert code == 1 and "Traceback" not in err, err
            assert f"{h5}: an HDF5 file that tomoseg did not create (it holds /exchange/data" in err
            assert f"e.g. {tmp_path / f'raw_{leaf}.h5'}:/{leaf}" in err and "h5copy" in err
    assert h5.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "raw.h5", "scan.tif"]


def test_tomosegs_dataset_in_a_users_file_is_not_replaced(tmp_path, scan, tiny_model, capsys):
    """Earlier versions added datasets to any file: --overwrite of such a dataset would copy into the user's
    file again, and is refused the same way."""
    h5 = tmp_path / "exp.h5"
    _users_h5(h5, "earliest")
    with h5py.File(h5, "a") as f:  # as an earlier version left it
        f["/seg"] = np.zeros((10, 20, 20), np.uint8)
        f["/seg"].attrs["tomoseg"] = "written by tomoseg 0.9"
    before = h5.read_bytes()
    code, err = _cli(["segment", str(scan), f"{h5}:/seg", "--overwrite"] + _seg(tiny_model), capsys)
    assert code == 1 and "an HDF5 file that tomoseg did not create (it holds /exchange/data)" in err
    assert h5.read_bytes() == before


def test_a_dataset_that_would_grow_the_file_past_the_size_limit_is_refused_before_the_copy(tmp_path):
    """D1: adding a dataset past the limit on file size (ulimit -f, a batch job's) failed in the copy: HDF5 2.0
    then aborts the process ("double free or corruption"), the half-copied dataset left in the file. Now the
    limit is checked before the file is opened for writing: one message, the file as it was, no staging file."""
    import subprocess
    import sys

    h5 = tmp_path / "res.h5"
    rng = np.random.default_rng(1)
    first = rng.integers(0, 255, (16, 128, 128), dtype=np.uint8)  # 256 KiB, incompressible
    write_volume(f"{h5}:/first", first)
    before = h5.read_bytes()
    limit = len(before) + 100_000  # the staging file (256 KiB) fits; the file with the copy would not
    script = f"""
import resource, signal, numpy as np
from tomoseg.errors import TomosegError
from tomoseg.io import write_volume
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    write_volume({str(h5)!r} + ":/second", np.random.default_rng(2).integers(0, 255, (16, 128, 128), np.uint8))
except TomosegError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out
    assert out.stdout.startswith(f"{h5}: adding /second needs a file of ") and \
        "past the limit on file size set for this shell or job" in out.stdout and "ulimit -f" in out.stdout
    assert h5.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.h5"]


def test_raw_scan_named_as_output_survives(tmp_path, scan, tiny_model, capsys):
    prob = tmp_path / "prob.zarr"
    assert _cli(["segment", str(scan), str(prob)] + _seg(tiny_model), capsys)[0] == 0
    before = scan.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, err = _cli(["segment", str(prob), str(scan)] + extra + _seg(tiny_model), capsys)
        assert code == 1 and "swapped" in err and "Traceback" not in err
    assert scan.read_bytes() == before


def test_api_write_volume_never_replaces_foreign_files(tmp_path, rng):
    raw = tmp_path / "raw.npy"
    np.save(raw, np.ones((3, 4, 5), np.uint8))
    with pytest.raises(TomosegError, match="did not write"):
        write_volume(raw, np.zeros((3, 4, 5), np.uint8), overwrite=True)
    assert np.load(raw).all()
    own = tmp_path / "own.npy"
    write_volume(own, np.zeros((3, 4, 5), np.uint8))
    write_volume(own, np.ones((3, 4, 5), np.uint8), overwrite=True)
    assert np.load(own).all()


def test_resume_refused_when_input_replaced(tmp_path, rng, tiny_model, monkeypatch):
    from tomoseg.inference import engine

    inp = tmp_path / "in.npy"
    np.save(inp, rng.integers(0, 255, (20, 20, 20), dtype=np.uint8))
    out = tmp_path / "out.zarr"
    calls = []

    def interrupted(job, tiles, backend=None, progress=None, **kwargs):
        calls.append(len(tiles))
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_tiles", interrupted)
    opts = dict(tiling=TilingConfig(tile_size=8, halo=4))
    with pytest.raises(KeyboardInterrupt):
        segment(str(inp), str(out), model=tiny_model, options=SegmentOptions(**opts), progress=False)
    np.save(inp, rng.integers(0, 255, (20, 20, 20), dtype=np.uint8))  # another scan, same size
    with pytest.raises(TomosegError, match="changed since the interrupted run"):
        segment(str(inp), str(out), model=tiny_model, options=SegmentOptions(resume=True, **opts), progress=False)


def test_input_changed_during_run_is_not_written(tmp_path, rng, tiny_model, monkeypatch):
    from tomoseg.inference import engine

    inp = tmp_path / "in.npy"
    np.save(inp, rng.integers(0, 255, (20, 20, 20), dtype=np.uint8))
    real = engine.run_tiles

    def modify_then_run(job, tiles, backend=None, progress=None, **kwargs):
        n = real(job, tiles, backend=backend, progress=progress, **kwargs)
        mm = np.load(inp, mmap_mode="r+")
        mm[0, :8, :8] = 255 - mm[0, :8, :8]
        mm.flush()
        return n

    monkeypatch.setattr(engine, "run_tiles", modify_then_run)
    with pytest.raises(TomosegError, match="changed while it was segmented"):
        segment(str(inp), str(tmp_path / "o.zarr"), model=tiny_model, progress=False)
    assert not (tmp_path / "o.zarr").exists()


def test_work_store_chunks_equal_tile_cores(tmp_path, rng, tiny_model):
    inp = tmp_path / "in.npy"
    np.save(inp, rng.integers(0, 255, (14, 14, 14), dtype=np.uint8))
    out = tmp_path / "o.zarr"
    segment(str(inp), str(out), model=tiny_model, progress=False,
            options=SegmentOptions(tiling=TilingConfig(tile_size=10, halo=4)))  # divisor 4: cores of 12
    import zarr

    assert zarr.open_array(str(out), path="0", mode="r").chunks == (12, 12, 12)


def test_hdf5_file_untouched_while_its_new_dataset_is_computed(tmp_path):
    from tomoseg.io import create_volume

    h5 = tmp_path / "exp.h5"
    write_volume(f"{h5}:/entry/raw", np.arange(64, dtype=np.uint16).reshape(4, 4, 4))
    before = h5.read_bytes()
    with pytest.raises(RuntimeError):
        with create_volume(f"{h5}:/entry/seg", (4, 4, 4), np.uint8) as w:
            w[0:2] = 1
            assert h5.read_bytes() == before  # the data go to a staging file until complete
            raise RuntimeError("killed")
    assert h5.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.h5"]
    with create_volume(f"{h5}:/entry/seg", (4, 4, 4), np.uint8) as w:
        w[:] = 3
    with h5py.File(h5, "r") as f:
        assert sorted(f["/entry"]) == ["raw", "seg"] and int(f["/entry/seg"][...].sum()) == 3 * 64


def test_clear_result_folder_removes_only_tomosegs_results(tmp_path):
    from tomoseg.io.result_folders import clear_result_folder, make_result_folder

    out = make_result_folder(tmp_path / "r", "analyze")
    (out / "figures").mkdir()
    mine = {"objects_mine.csv": "id,size\n1,2\n", "summary.json": '{"sample": 3}', "report.html": "<html>mine",
            "figures/orthoslices_mine.png": "x", "figures/plot.svg": "x", "data.tif": "x"}
    ours = {"objects.csv": "label,equivalent_radius_vox\n1,2\n", "objects_truth.csv": "label,equivalent_radius_vox\n",
            "evaluation.json": "{}", "figures/hit_map_z12.png": "x", "figures/hit_map_z12.svg": "x",
            "figures/objects_3d.png": "x"}
    for name, text in {**mine, **ours}.items():
        (out / name).write_text(text)
    (out / "figures" / "captions.json").write_text('{"objects_3d": "c", "hit_map_z12": "c", "plot": "mine"}')
    gone = clear_result_folder(out)
    assert sorted(p.relative_to(out).as_posix() for p in gone) == sorted(ours)
    captions = json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert captions == {"plot": "mine"}  # removed figures' captions out
    assert all((out / name).read_text(encoding="utf-8") == text for name, text in mine.items())
    make_result_folder(out, "analyze", fresh=True)  # a folder of tomoseg's: nothing of the user's removed
    assert all((out / name).exists() for name in mine)


# ------------------------------------------------------------------ provenance records: one per output (C3)
def test_provenance_path_gives_each_hdf5_dataset_a_record_of_its_own(tmp_path):
    """A plain file keeps NAME.provenance.json; each dataset of an HDF5 file gets FILE#DATASET.provenance.json,
    the dataset's names escaped so that no two datasets (nested, dotted, with '#' or '%') share a record and no
    dataset's record is that of another output."""
    from tomoseg.io.output_guard import provenance_path

    def name(output):
        path = provenance_path(output)
        assert path.parent == tmp_path and path.name.endswith(".provenance.json")  # report's glob finds it
        return path.name

    for plain in ("prob.tif", "prob.zarr", "prob.npy", "seg", "s.ome.tif:1", "p.ome.zarr:0"):
        assert name(f"{tmp_path / plain}") == plain.split(":")[0] + ".provenance.json"
    assert name(f"{tmp_path / 'out.h5'}:/prob") == "out.h5#prob.provenance.json"
    assert name(f"{tmp_path / 'out.h5'}:prob/") == "out.h5#prob.provenance.json"  # one dataset, two spellings
    assert name(tmp_path / "out.h5") == name(f"{tmp_path / 'out.h5'}:/data") == "out.h5#data.provenance.json"
    assert name(f"{tmp_path / 'out.h5'}:/entry/prob") == "out.h5#entry#prob.provenance.json"
    datasets = ["/a/b", "/a.b", "/a#b", "/a%2Eb", "/a%23b", "/a b", "/a/b.tif", "/ä", "/a_b", "/a-b"]
    names = [name(f"{tmp_path / 'out.h5'}:{d}") for d in datasets]
    assert len(set(names)) == len(datasets)
    plain_outputs = {name(tmp_path / f"out.h5{suffix}") for suffix in ("", ".tif", ".b.tif", ".npy")}
    assert not plain_outputs & set(names)


def test_two_segment_runs_into_one_hdf5_file_keep_a_record_each(tmp_path, rng, tiny_model, capsys):
    """C3: two runs into two datasets of one HDF5 file wrote one shared out.h5.provenance.json, the second
    replacing the first: the first dataset was then described by the second run (its input, threshold, voxel
    size), and analyze took that sparse probability map for a mask of its 1s. Each dataset has its own record."""
    from tomoseg.io import open_volume
    from tomoseg.io.output_guard import provenance_path, tomoseg_provenance
    from tomoseg.objects.reading import written_as_probability

    scans = [tmp_path / "one.tif", tmp_path / "two.tif"]
    for scan in scans:
        tifffile.imwrite(scan, rng.integers(0, 255, (10, 20, 20), dtype=np.uint8))
    h5 = tmp_path / "out.h5"
    runs = [(scans[0], "/prob", "100", "30"), (scans[1], "/entry/prob2", "150", "60")]
    for scan, dataset, threshold, vs in runs:
        assert _cli(["segment", str(scan), f"{h5}:{dataset}", "--threshold", threshold, "--voxel-size", vs, vs, vs]
                    + _seg(tiny_model), capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.glob("*.provenance.json")) == [
        "out.h5#entry#prob2.provenance.json", "out.h5#prob.provenance.json"]
    for scan, dataset, threshold, vs in runs:
        record = tomoseg_provenance(f"{h5}:{dataset}")
        assert record == json.loads(provenance_path(f"{h5}:{dataset}").read_text(encoding="utf-8"))
        assert record["input"] == str(scan) and record["outputs"]["probability"] == f"{h5}:{dataset}"
        assert record["threshold"] == int(threshold) and record["voxel_size_nm"] == [float(vs)] * 3
        with open_volume(f"{h5}:{dataset}") as vol:
            assert written_as_probability(vol)
    # the first map made sparse (0 and 1 only, as far from any object): still read as a probability map
    with h5py.File(h5, "a") as f:
        sparse = np.zeros((10, 20, 20), np.uint8)
        sparse[2:8:2, 3:17:3, 3:17:3] = 1
        f["/prob"][...] = sparse
    capsys.readouterr()
    assert main(["analyze", f"{h5}:/prob", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["objects_all"] == 0  # not 21 objects of one voxel each


def test_hdf5_ownership_is_the_dataset_attribute_whatever_the_records(tmp_path, scan, tiny_model, capsys):
    """--overwrite replaces a dataset by tomoseg's attribute on it, never by a provenance record: a user's
    dataset is refused even beside a record of tomoseg's, new or old-style (out.h5.provenance.json, which
    earlier versions wrote for every dataset of the file), naming it."""
    h5 = tmp_path / "user.h5"
    with h5py.File(h5, "w") as f:
        f["/prob"] = np.full((10, 20, 20), 7, np.uint8)
        f["/data"] = np.full((10, 20, 20), 9, np.uint8)
    record = {"tool": "tomoseg segment", "input": str(scan), "outputs": {"probability": f"{h5}:/prob", "mask": None}}
    (tmp_path / "user.h5.provenance.json").write_text(json.dumps(record))
    (tmp_path / "user.h5#prob.provenance.json").write_text(json.dumps(record))
    (tmp_path / "user.h5#data.provenance.json").write_text(json.dumps({**record, "outputs": {"probability": str(h5)}}))
    before = h5.read_bytes()
    for out in (f"{h5}:/prob", str(h5)):
        code, err = _cli(["segment", str(scan), out, "--overwrite"] + _seg(tiny_model), capsys)
        assert code == 1 and "did not write" in err and "Traceback" not in err
    assert h5.read_bytes() == before


def test_a_dataset_of_an_earlier_version_keeps_its_record_and_is_replaced(tmp_path, scan, tiny_model, capsys):
    """An HDF5 output of an earlier version: the dataset carries tomoseg's attribute, its record is the file's
    out.h5.provenance.json. The record is read for the dataset it names (segment's outputs.probability) and for
    no other; --overwrite replaces the dataset (by its attribute), and the new record is the dataset's own."""
    from tomoseg.io import open_volume
    from tomoseg.io.output_guard import tomoseg_provenance
    from tomoseg.objects.reading import written_as_probability

    h5 = tmp_path / "old.h5"
    assert _cli(["segment", str(scan), f"{h5}:/prob", "--threshold", "90"] + _seg(tiny_model), capsys)[0] == 0
    assert _cli(["segment", str(scan), f"{h5}:/other"] + _seg(tiny_model), capsys)[0] == 0
    (tmp_path / "old.h5#other.provenance.json").unlink()
    (tmp_path / "old.h5#prob.provenance.json").rename(tmp_path / "old.h5.provenance.json")  # as written before
    assert tomoseg_provenance(f"{h5}:/prob")["threshold"] == 90
    assert tomoseg_provenance(f"{h5}:/other") is None and tomoseg_provenance(h5) is None
    with open_volume(f"{h5}:/prob") as p, open_volume(f"{h5}:/other") as o:
        assert written_as_probability(p) and not written_as_probability(o)
    code, err = _cli(["segment", str(scan), f"{h5}:/prob", "--threshold", "110", "--overwrite"] + _seg(tiny_model),
                     capsys)
    assert code == 0, err
    assert tomoseg_provenance(f"{h5}:/prob")["threshold"] == 110  # the dataset's own record, before the file's
    assert (tmp_path / "old.h5#prob.provenance.json").is_file()


@pytest.mark.parametrize("how", ["another size", "the same size, saved later"])
def test_a_users_file_saved_over_tomosegs_is_not_taken_for_tomosegs_by_the_record_left_beside_it(tmp_path, how):
    """A .npy output is recognised by its provenance record alone; the record holds the file's size and
    modification time as written, so a user's own array saved over it later (the record left beside it) is
    refused by --overwrite, as any file tomoseg did not write."""
    import os

    own = tmp_path / "own.npy"
    write_volume(own, np.zeros((3, 4, 5), np.uint8))
    write_volume(own, np.ones((3, 4, 5), np.uint8), overwrite=True)  # tomoseg's own: replaced
    users = np.full((3, 4, 5), 5, np.uint16 if how == "another size" else np.uint8)
    np.save(own, users)
    st = own.stat()
    os.utime(own, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(TomosegError, match="own.npy: changed since tomoseg wrote it .*move it away"):
        write_volume(own, np.zeros((3, 4, 5), np.uint8), overwrite=True)
    assert np.array_equal(np.load(own), users)


def test_tracks_summary_is_filed_as_tracks_result(tmp_path):
    """track's summary.json (its provenance's tool "tomoseg-track") is track's result, not analyze's: a folder of
    track's results holds track's alone, and clearing it for track (keeping track's results) keeps its summary,
    while clearing it for another tool removes it; edited, it is still refused."""
    from tomoseg.io.result_folders import clear_result_folder, make_result_folder, results_in, write_result_json
    out = make_result_folder(tmp_path / "t", "track")
    write_result_json(out / "summary.json", {"objects_by_status": {}, "provenance": {"tool": "tomoseg-track"}})
    write_result_json(out / "transform.json", {"matrix": np.eye(4).tolist()})
    assert results_in(out) == {"track"}
    assert clear_result_folder(out, keep=("track",)) == []
    assert (out / "summary.json").is_file()
    (out / "summary.json").write_text('{"provenance": {"tool": "tomoseg-track"}, "note": "mine"}')
    with pytest.raises(TomosegError, match="summary.json"):
        clear_result_folder(out)
    assert (out / "summary.json").is_file()
    write_result_json(out / "summary.json", {"objects_by_status": {}, "provenance": {"tool": "tomoseg-track"}})
    assert sorted(p.name for p in clear_result_folder(out)) == ["summary.json", "transform.json"]
    analyze = make_result_folder(tmp_path / "a", "analyze")
    write_result_json(analyze / "summary.json", {"tool": "tomoseg analyze"})
    assert results_in(analyze) == {"analyze"}


def test_captions_are_read_and_written_by_one_reader_and_writer(tmp_path):
    """write_captions merges, removes and stamps; read_captions reads them (empty for none or a broken file); a
    stamped captions.json edited since, or a file that holds no captions, is refused, unchanged."""
    from tomoseg.io.result_folders import read_captions, write_captions
    from tomoseg.io.result_stamps import LEDGER

    assert read_captions(tmp_path) == {} and write_captions(tmp_path, remove={"a"}) is None
    store = write_captions(tmp_path, {"a": "first", "b": "second"})
    assert read_captions(tmp_path) == {"a": "first", "b": "second"}
    assert "captions.json" in json.loads((tmp_path / LEDGER).read_text(encoding="utf-8"))
    write_captions(tmp_path, {"c": "third"}, remove={"a"})
    assert read_captions(tmp_path) == {"b": "second", "c": "third"}
    assert write_captions(tmp_path, remove={"b", "c"}) is None and not store.exists()
    assert not (tmp_path / LEDGER).exists()
    write_captions(tmp_path, {"a": "first"})
    store.write_text('{"a": "my caption, longer"}', encoding="utf-8")
    with pytest.raises(TomosegError, match="captions.json: changed since tomoseg wrote it"):
        write_captions(tmp_path, {"b": "second"})
    assert read_captions(tmp_path) == {"a": "my caption, longer"}
    other = tmp_path / "other"
    other.mkdir()
    (other / "captions.json").write_text("[1, 2]", encoding="utf-8")
    assert read_captions(other) == {}
    with pytest.raises(TomosegError, match="holds no figure captions"):
        write_captions(other, {"a": "x"})
    assert (other / "captions.json").read_text(encoding="utf-8") == "[1, 2]"
