"""--resume compares what a run uses, not how it was typed (review C4, C5): the input's resolved path, the ROI's
box, the sample-mask file's resolved path, the statistics method ``auto`` resolves to. Real differences are
still refused, and a state written with values as typed (by an earlier tomoseg) still resumes."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.inference import SegmentOptions, TilingConfig, engine
from tomoseg.io import read_volume, write_volume

OPTS = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")


@pytest.fixture
def scan(tmp_path, monkeypatch):
    """A small volume in ``tmp_path/data`` (the current folder: ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return np.random.default_rng(5).normal(100, 20, (16, 40, 40)).astype(np.float32)


def _interrupted(monkeypatch, src, out, model, options) -> None:
    """``segment`` stopped by Ctrl-C once its work folder and state are written, before any tile."""
    def stop(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine, "run_tiles", stop)
        with pytest.raises(KeyboardInterrupt):
            engine.segment(src, out, model=model, options=options, progress=False)
    assert engine.work_dir_for(out).exists()


def _resumed(src, out, model, options) -> dict:
    record = engine.segment(src, out, model=model, options=replace(options, resume=True), progress=False)
    assert len(record["invocations"]) == 2  # continued, not started over
    return record


@pytest.mark.parametrize("first,again", [
    ("data/in.h5:/vol", "{tmp}/data/../data/in.h5:/vol"),    # a dataset in a file: was compared as typed
    ("data/in.h5:/vol", "./data/in.h5:vol"),                  # h5py's dataset "vol" is "/vol"
    ("data/in.h5", "{tmp}/data/in.h5:/vol"),                  # the file's one dataset, named or not
    ("data/a:b/in.npy", "./data/a:b/../a:b/in.npy"),          # a ':' in a folder's name: was compared as typed
    ("data/in.npy", "{tmp}/data/in.npy"),
], ids=["h5-relative-absolute", "h5-dataset-slash", "h5-dataset-named", "colon-in-folder", "plain"])
def test_resume_takes_the_input_by_its_resolved_path(tmp_path, scan, monkeypatch, random_model_path, first, again):
    file = tmp_path / first.split(".h5")[0].split(".npy")[0]
    if ".h5" in first:
        write_volume(f"{file}.h5:/vol", scan)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_volume(f"{file}.npy", scan)
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, first, out, random_model_path, OPTS)
    _resumed(again.format(tmp=tmp_path), out, random_model_path, OPTS)
    ref = engine.segment(first, tmp_path / "ref.zarr", model=random_model_path, options=OPTS, progress=False)
    assert ref["input_shape"] == list(scan.shape)
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / "ref.zarr"))


def test_resume_refuses_another_input_file_of_the_same_content(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/a.npy", scan)
    shutil.copy2("data/a.npy", "data/b.npy")  # its modification time too: only the path differs
    _interrupted(monkeypatch, "data/a.npy", tmp_path / "p.zarr", random_model_path, OPTS)
    with pytest.raises(TomosegError, match=r"other settings \(input\)"):
        engine.segment("data/b.npy", tmp_path / "p.zarr", model=random_model_path,
                       options=replace(OPTS, resume=True), progress=False)


def test_resume_takes_the_roi_as_the_box_it_names(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/in.npy", scan)
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, replace(OPTS, sample_mask="auto", roi="0:8,:,:"))
    for other in ("0:16,:,:", "0:8,:,:20"):  # another box: refused, the work left for the right one
        with pytest.raises(TomosegError, match="another sample mask or ROI"):
            engine.segment("data/in.npy", out, model=random_model_path, progress=False,
                           options=replace(OPTS, sample_mask="auto", roi=other, resume=True))
    record = _resumed("data/in.npy", out, random_model_path, replace(OPTS, sample_mask="auto", roi=":8,0:,0:40"))
    assert record["sample_mask"]["roi"] == [[0, 8], [0, 40], [0, 40]]


def test_resume_takes_the_sample_mask_file_by_its_resolved_path(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/in.npy", scan)
    mask = np.zeros(scan.shape, np.uint8)
    mask[:, 8:30, 8:30] = 1
    write_volume("data/mask.npy", mask)
    shutil.copy("data/mask.npy", "data/other.npy")
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, replace(OPTS, sample_mask="data/mask.npy"))
    with pytest.raises(TomosegError, match="another sample mask or ROI"):  # another file, even of the same mask
        engine.segment("data/in.npy", out, model=random_model_path, progress=False,
                       options=replace(OPTS, sample_mask="data/other.npy", resume=True))
    _resumed("data/in.npy", out, random_model_path, replace(OPTS, sample_mask=str(tmp_path / "data/./mask.npy")))


def test_resume_refuses_a_sample_mask_file_changed_since(tmp_path, monkeypatch, random_model_path):
    """Review SM3: a mask file edited between the interruption and --resume was ignored without a word (the saved
    mask used, the provenance naming a file that no longer held it). Refused; the same mask written again (its
    blocks unchanged) resumes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_volume("data/in.npy", np.random.default_rng(6).normal(100, 20, (16, 96, 96)).astype(np.float32))
    mask = np.zeros((16, 96, 96), np.uint8)
    mask[:, :20, :20] = 1
    write_volume("data/mask.npy", mask)
    out = tmp_path / "p.zarr"
    options = replace(OPTS, sample_mask="data/mask.npy")
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, options)
    edited = np.zeros_like(mask)
    edited[:, 70:, 70:] = 1
    write_volume("data/mask.npy", edited, overwrite=True)
    with pytest.raises(TomosegError, match="data/mask.npy: changed since the interrupted run"):
        engine.segment("data/in.npy", out, model=random_model_path, progress=False,
                       options=replace(options, resume=True))
    write_volume("data/mask.npy", mask * 255, overwrite=True)  # the same sample, written as 0/255
    record = _resumed("data/in.npy", out, random_model_path, options)
    assert record["sample_mask"]["method"] == "file"


def test_resume_takes_the_statistics_method_auto_resolves_to(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/in.npy", scan)
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, OPTS)  # auto: full, for 25600 voxels
    with pytest.raises(TomosegError, match=r"other settings \(stats_method\)"):
        engine.segment("data/in.npy", out, model=random_model_path, progress=False,
                       options=replace(OPTS, stats="sample", resume=True))
    _resumed("data/in.npy", out, random_model_path, replace(OPTS, stats="full"))


def test_a_state_written_with_values_as_typed_still_resumes(tmp_path, scan, monkeypatch, random_model_path):
    """A run interrupted under the tomoseg before this change recorded the input (a dataset path), the ROI,
    the mask file and the statistics method as typed: its resume, typed as then or otherwise, goes on."""
    write_volume("data/in.h5:/vol", scan)
    out = tmp_path / "p.zarr"
    options = replace(OPTS, sample_mask="auto", roi="0:8,:,:", stats="auto")
    _interrupted(monkeypatch, "data/in.h5:/vol", out, random_model_path, options)
    state_file = engine.work_dir_for(out) / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state["fingerprint"].update(input="data/in.h5:/vol", stats_method="auto")  # as the earlier tomoseg wrote
    state["sample"]["settings"] = {"sample_mask": "auto", "roi": "0:8,:,:"}
    state_file.write_text(json.dumps(state), encoding="utf-8")
    _resumed(f"{tmp_path}/data/in.h5:/vol", out, random_model_path, replace(options, roi=":8,:,:", stats="full"))


def test_a_resume_reads_the_state_once(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/in.npy", scan)
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, OPTS)
    plain, reads = Path.read_text, []

    def counted(self, *args, **kwargs):
        if self.name == "state.json":
            reads.append(self)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    _resumed("data/in.npy", out, random_model_path, OPTS)
    assert len(reads) == 1


def test_a_disk_that_fills_while_the_work_folder_is_made_is_one_line_and_leaves_nothing(
        tmp_path, scan, monkeypatch, cli_error, tiny_model_factory):
    """Review C3: the disk full as the work folder's model copy was written ended in safetensors' traceback
    (its error is not an OSError) and left a work folder without state.json, which the next run took for an
    interrupted one ("pass --resume"). Now: the one "disk is full" line, no work folder, and a rerun just runs."""
    import safetensors.torch
    from safetensors import SafetensorError

    from tomoseg.cli import main

    write_volume(tmp_path / "data" / "in.npy", scan)
    model = tiny_model_factory(2)
    args = ["-q", "segment", "data/in.npy", "p.zarr", "--model", model, "--tile-size", "16", "--halo", "8",
            "--backend", "torch", "--no-sample-mask"]

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 64)  # a part of the file, then no room for the rest
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with monkeypatch.context() as patch:
        patch.setattr(safetensors.torch, "save_file", full)
        line = cli_error(main(args))
    assert line.startswith("tomoseg: error: the disk is full writing ") and "model.safetensors" in line, line
    assert "nothing was kept to resume from: the same command (without --resume) starts again" in line, line
    assert not engine.work_dir_for(tmp_path / "p.zarr").exists()
    assert main(args) == 0  # run again as it was, no --resume needed
    assert read_volume(tmp_path / "p.zarr").shape == scan.shape


def test_a_work_folder_whose_making_stopped_is_made_again(tmp_path, scan, tiny_model_factory):
    """A work folder left without state.json (a run killed while making it, or a version before the fix of C3)
    holds no finished tile: a run without --resume makes it again rather than refusing. One with a tile marker
    is still refused (its state was lost, not its work)."""
    write_volume(tmp_path / "data" / "in.npy", scan)
    out = tmp_path / "p.zarr"
    work = engine.work_dir_for(out)
    (work / "done").mkdir(parents=True)
    (work / "prob.zarr").mkdir()
    (work / "model.safetensors.partial").write_bytes(b"\0" * 64)
    engine.segment("data/in.npy", out, model=tiny_model_factory(2), options=OPTS, progress=False)
    assert read_volume(out).shape == scan.shape and not work.exists()

    work = engine.work_dir_for(tmp_path / "q.zarr")
    (work / "done").mkdir(parents=True)
    (work / "done" / "3").touch()
    with pytest.raises(TomosegError, match="an interrupted run left its work here"):
        engine.segment("data/in.npy", tmp_path / "q.zarr", model=tiny_model_factory(2), options=OPTS,
                       progress=False)


def test_a_disk_full_while_the_model_is_copied_names_the_work_folder_not_the_model(tmp_path, monkeypatch):
    """Review C3, on a real 512 KiB tmpfs: shutil names the source of a failed copy, so the line read "the disk is
    full writing .../tomoseg/weights/default.safetensors" (the package's disk). It names the copy now."""
    import errno

    source, target = tmp_path / "model.safetensors", tmp_path / "work" / "model.safetensors"
    source.write_bytes(b"\0" * 64)

    def copyfile(src, dst):  # as shutil raises it (_fastcopy_sendfile: filename the source, filename2 the target)
        err = OSError(errno.ENOSPC, "No space left on device")
        err.filename, err.filename2 = str(src), str(dst)
        raise err

    monkeypatch.setattr(engine.shutil, "copyfile", copyfile)
    with pytest.raises(OSError) as caught:
        engine._copy_model(source, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
