"""Issue 13, the cases that must work (not fail): reads that were refused wrongly, warnings, exact fractions."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
import torch

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.io import open_volume, read_volume, write_volume


def _cli(argv, capsys):
    code = main(argv + ["-q"])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ item 5: a model is a pickle by structure only
def _model_with_header_low_bits(tmp_path, modulus, residue):
    """A tomoseg model file whose safetensors header length N has N % modulus == residue."""
    model = tomoseg.UNet3D(levels=2, base_features=2).eval()
    path = tmp_path / "m.safetensors"
    pad = 0
    for _ in range(50):
        if path.exists():
            path.unlink()
        tomoseg.save_model(model, path, {"training": {"pad": "x" * pad}})
        n = int.from_bytes(path.read_bytes()[:8], "little")
        if n % modulus == residue:
            return path
        pad += (residue - n) % modulus or modulus
        pad = max(pad, 0)
    pytest.skip("could not reach the header length")  # pragma: no cover


@pytest.mark.parametrize("modulus, residue, head", [(256, 0x80, b"\x80"), (65536, 0x4B50, b"PK")])
def test_model_whose_header_length_looks_like_a_pickle_loads(tmp_path, modulus, residue, head):
    path = _model_with_header_low_bits(tmp_path, modulus, residue)
    assert path.read_bytes().startswith(head)
    assert tomoseg.load_model(path).config.levels == 2


# ------------------------------------------------------------------ item 12-13: fractions, JSON
def test_fractions_from_kept_objects_inside_the_sample_mask(tmp_path, capsys):
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[8:11, 8:11, 8:11] = 1          # kept: 27 voxels, centroid (9, 9, 9)
    mask[2:4, 2:4, 2:4] = 1             # kept, outside the sample: 8 voxels
    mask[0:20, 18:20, 18:20] = 1        # touches the border: excluded (80 voxels)
    sample = np.zeros_like(mask)
    sample[5:15, 5:15, 5:15] = 1        # 1000 voxels
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "s.npy", sample)
    code, out, _ = _cli(["analyze", str(tmp_path / "m.npy"), "--json", "--voxel-size", "10", "10", "10"], capsys)
    s = json.loads(out)
    assert code == 0 and s["objects"] == 2
    assert s["volume_fraction"] == pytest.approx(35 / 8000)
    assert s["volume_fraction_all_objects"] == pytest.approx(115 / 8000)
    assert "whole volume" in s["fraction_basis"]
    code, out, _ = _cli(["analyze", str(tmp_path / "m.npy"), "--json", "--voxel-size", "10", "10", "10",
                         "--sample-mask", str(tmp_path / "s.npy")], capsys)
    s = json.loads(out)
    assert s["volume_fraction"] == pytest.approx(27 / 1000)
    assert s["number_density_per_um3"] == pytest.approx(1 / (1000 * 1e-6))
    assert "inside the sample mask" in s["fraction_basis"]


def test_summary_json_has_null_not_nan_and_no_nm_radius_without_voxel_size(tmp_path, capsys):
    np.save(tmp_path / "m.npy", np.zeros((6, 6, 6), np.uint8))
    code, out, _ = _cli(["analyze", str(tmp_path / "m.npy"), "--json", "--out", str(tmp_path / "o")], capsys)
    assert code == 0 and "NaN" not in out
    s = json.loads(out)
    assert s["mean_radius_nm"] is None and s["number_density_per_um3"] is None
    assert "NaN" not in (tmp_path / "o" / "summary.json").read_text(encoding="utf-8")
    m = np.zeros((12, 12, 12), np.uint8)
    m[4:8, 4:8, 4:8] = 1
    np.save(tmp_path / "k.npy", m)
    s = json.loads(_cli(["analyze", str(tmp_path / "k.npy"), "--json"], capsys)[1])
    assert s["objects"] == 1 and s["mean_radius_vox"] > 0 and s["mean_radius_nm"] is None


# ------------------------------------------------------------------ item 14: voxel sizes with units, plausibility
def test_voxel_size_with_unit_and_implausible_warning(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((3, 4, 5), np.uint8))
    code, out, err = _cli(["info", str(tmp_path / "v.npy"), "--json", "--voxel-size", "0.65um", "650nm", "650"],
                          capsys)
    assert code == 0 and json.loads(out)["voxel_size_nm"] == pytest.approx([650, 650, 650]) and not err
    code, out, err = _cli(["info", str(tmp_path / "v.npy"), "--json", "--voxel-size", "0.65", "0.65", "0.65"], capsys)
    assert code == 0 and "tomoseg: warning:" in err and "0.65um 0.65um 0.65um" in err and "650 650 650" in err
    # past any tomogram's (a picometre to a metre): refused, not measured in nm³ that overflow (1e308 gave inf)
    for values in (["1e308", "1e308", "1e308"], ["30", "30", "1e-5"]):
        code, out, err = _cli(["info", str(tmp_path / "v.npy"), "--voxel-size", *values], capsys)
        assert code == 1 and "cannot be a tomogram's" in err
    with pytest.raises(SystemExit) as exc:
        main(["info", str(tmp_path / "v.npy"), "--voxel-size", "3parsecs", "1", "1"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ item 16: invalid voxel sizes in files
def test_tiff_resolution_zero_reads_with_unknown_voxel_size(tmp_path):
    path = tmp_path / "r0.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint8), imagej=True, resolution=(0, 0),
                     metadata={"unit": "um", "axes": "ZYX"})
    with open_volume(path) as vol:
        assert vol.voxel_size is None


@pytest.mark.parametrize("kind", ["imagej spacing 0", "hdf5 element_size_um 0"])
def test_zero_voxel_size_in_file_warns_and_override_wins(tmp_path, kind, capsys):
    if kind.startswith("imagej"):
        path = str(tmp_path / "s0.tif")
        tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint8), imagej=True, resolution=(1.0, 1.0),
                         metadata={"spacing": 0.0, "unit": "nm", "axes": "ZYX"})
    else:
        path = f"{tmp_path / 'e0.h5'}:/data"
        with h5py.File(tmp_path / "e0.h5", "w") as f:
            f["data"] = np.zeros((3, 8, 8), np.uint8)
            f["data"].attrs["element_size_um"] = [0.0, 0.0, 0.0]
    with pytest.warns(TomosegWarning, match="not valid"):
        vol = open_volume(path)
    assert vol.voxel_size is None
    vol.close()
    with open_volume(path, voxel_size=(5, 5, 5)) as vol:
        assert vol.voxel_size == (5.0, 5.0, 5.0)
    code, out, err = _cli(["info", path, "--json"], capsys)
    assert code == 0 and "tomoseg: warning:" in err and str(tmp_path) in err


# ------------------------------------------------------------------ item 18: numbers written as text
def test_config_accepts_numbers_written_as_text():
    from tomoseg.training.config import config_from_dict

    cfg = config_from_dict({"optim": {"learning_rate": "1e-3"}, "sampling": {"patch_size": "32"}, "epochs": 2.0,
                            "data": {"phantoms": {}}})
    assert cfg.optim.learning_rate == 0.001 and cfg.sampling.patch_size == 32 and cfg.epochs == 2


# ------------------------------------------------------------------ item 22: page-by-page TIFF
def test_tiff_written_page_by_page_reads_as_a_volume(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as w:
        for z in range(5):
            w.write(np.full((6, 7), z, np.uint16))
    vol = read_volume(path)
    assert vol.shape == (5, 6, 7) and [int(p[0, 0]) for p in vol] == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ BigTIFF past 4 GiB
def test_large_tiff_output_is_bigtiff_not_truncated(tmp_path, monkeypatch):
    from tomoseg.io import tiff

    monkeypatch.setattr(tiff, "BIGTIFF_BYTES", 100)
    data = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    write_volume(tmp_path / "b.tif", data, voxel_size=(30, 20, 10))
    with tifffile.TiffFile(tmp_path / "b.tif") as t:
        assert t.is_bigtiff
    with open_volume(tmp_path / "b.tif") as vol:
        assert np.array_equal(vol.read(), data) and vol.voxel_size == pytest.approx((30, 20, 10))


# ------------------------------------------------------------------ item 15: domain shift
def test_segment_warns_about_voxel_size_and_flooding(tmp_path, capsys):
    torch.manual_seed(0)
    model = tomoseg.UNet3D(levels=2, base_features=2).eval()
    with torch.no_grad():
        model.head.bias.fill_(10.0)  # everything is an object: a flooded map
    path = tmp_path / "m.safetensors"
    tomoseg.save_model(model, path, {"voxel_size_nm": [29.33] * 3})
    np.save(tmp_path / "v.npy", np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8))
    argv = ["segment", str(tmp_path / "v.npy"), str(tmp_path / "o.zarr"), "--model", str(path), "--backend",
            "torch"]
    code, _, err = _cli(argv + ["--voxel-size", "6.5um", "6.5um", "6.5um"], capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("tomoseg: warning:")]
    # G6: the network works in voxels: the model's range stated in voxels and in the data's units
    assert any("is 222x larger than the model's training scans' (29.33 × 29.33 × 29.33 nm)" in w
               and "The network sees voxels, not nanometres" in w and "resample" in w for w in warnings), err
    assert any("segmented as objects" in w for w in warnings), err
    code, _, err = _cli(argv[:2] + [str(tmp_path / "o2.zarr")] + argv[3:], capsys)
    assert code == 0 and "tomoseg: note: " in err and "voxel size unknown: sizes come out in voxels" in err


def test_no_domain_warning_when_data_match(tmp_path):
    from tomoseg.inference.domain import voxel_size_warning

    assert voxel_size_warning((30.0, 30.0, 30.0), [29.33] * 3, "x") is None
    from tomoseg.inference.domain import learned_radius
    from tomoseg.checkpoint import load_model

    radius = learned_radius(load_model().metadata)  # the shipped model learned the phantoms' range
    assert radius == (1.0, 8.0)
    assert "objects of about 1-8 voxels in radius (here 6.5-52 µm)" in voxel_size_warning((6500.0,) * 3,
                                                                                          [29.33] * 3, "x", radius)
    assert "222x larger" in voxel_size_warning((6500.0,) * 3, [29.33] * 3, "x")
    assert "3x smaller" in voxel_size_warning((10.0,) * 3, [30.0] * 3, "x")  # no range: a model trained on scans
    assert "objects of the sizes in voxels of its training data" in voxel_size_warning((10.0,) * 3, [30.0] * 3, "x")


# ------------------------------------------------------------------ item 24: interruptions
def test_ctrl_c_says_resume_continues(tmp_path, capsys, monkeypatch):
    from tomoseg.inference import engine

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_tiles", stop)
    tomoseg.save_model(tomoseg.UNet3D(levels=2, base_features=2).eval(), tmp_path / "m.safetensors")
    np.save(tmp_path / "v.npy", np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8))
    code, _, err = _cli(["segment", str(tmp_path / "v.npy"), str(tmp_path / "o.zarr"), "--model",
                         str(tmp_path / "m.safetensors")], capsys)
    assert code == 130 and "--resume" in err


def test_stale_label_store_of_a_killed_run_is_cleaned(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from tomoseg.objects.analysis import analyze, clean_stale_label_stores

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          encoding="utf-8")
    stale = tmp_path / "tomoseg-labels-old"
    stale.mkdir()
    (stale / "owner.txt").write_text(f"{socket.gethostname()} {int(dead.stdout)}\n")
    live = tmp_path / "tomoseg-labels-live"
    live.mkdir()
    (live / "owner.txt").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    assert clean_stale_label_stores(tmp_path) == [stale]
    assert live.exists() and not stale.exists()
    stale.mkdir()
    (stale / "owner.txt").write_text(f"{socket.gethostname()} {int(dead.stdout)}\n")
    from tomoseg.objects.analysis import AnalysisOptions

    mask = np.zeros((8, 8, 8), np.uint8)
    analyze(mask, options=AnalysisOptions(in_memory_voxels=10, chunks=(4, 4, 4)), workdir=tmp_path)
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tomoseg-labels-live"]


def test_write_errors_become_one_message(tmp_path, monkeypatch):
    from tomoseg.io import create_volume

    class Full:
        def __setitem__(self, key, value):
            raise OSError(28, "No space left on device")

    with pytest.raises(TomosegError, match="writing failed .*run again$") as info:
        with create_volume(tmp_path / "o.npy", (2, 4, 4), np.uint8) as w:
            w._sink.array = Full()
            w[0:1] = 1
    assert "--resume" not in str(info.value)  # any command's writer: only segment can resume (below)
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "o.npy.partial").exists()


def test_a_failed_write_of_segments_output_says_resume_writes_it(tmp_path, monkeypatch, tiny_model):
    """The writer's message said "segment continues with --resume" for every command (phantom, analyze
    --labels ...); only segment keeps its computed tiles: its finish step says so, and the work folder stays."""
    from tomoseg.inference import SegmentOptions, TilingConfig, engine, segment
    from tomoseg.io import write_volume

    write_volume(tmp_path / "in.npy", np.random.default_rng(0).normal(100, 10, (16, 32, 32)).astype(np.float32))

    def full(*args, **kwargs):
        raise TomosegError("out.tif: writing failed (the disk is full); nothing was put in place. Free space "
                           "(or fix the folder) and run again")

    monkeypatch.setattr(engine, "finish_output", full)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8))
    with pytest.raises(TomosegError, match="run again; the same command with --resume writes it from the "
                                           "computed tiles"):
        segment(tmp_path / "in.npy", tmp_path / "out.tif", model=tiny_model, options=opts)
    assert engine.work_dir_for(tmp_path / "out.tif").is_dir()


def test_short_disk_warns_for_compressed_work_stores(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    tomoseg.save_model(tomoseg.UNet3D(levels=2, base_features=2).eval(), tmp_path / "m.safetensors")
    np.save(tmp_path / "v.npy", np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 1500, 1500))
    code, _, err = _cli(["segment", str(tmp_path / "v.npy"), str(tmp_path / "o.zarr"), "--model",
                         str(tmp_path / "m.safetensors"), "--backend", "torch"], capsys)
    assert code == 0 and "work stores take up to" in err and "--resume" in err


def test_analyze_warns_when_most_voxels_are_objects(tmp_path, capsys):
    """A gray-value image given as the mask: refused where its values go beyond 255 (no mask, 0-255 map or label
    image); read as a mask all the same, every nonzero voxel is an object, and analyze says so."""
    np.save(tmp_path / "gray.npy", np.random.default_rng(0).integers(1, 4000, (8, 16, 16), dtype=np.uint16))
    code, out, err = _cli(["analyze", str(tmp_path / "gray.npy"), "--json"], capsys)
    assert code == 1 and "gray.npy: holds values up to" in err and "--read-as mask" in err
    code, out, err = _cli(["analyze", str(tmp_path / "gray.npy"), "--json", "--read-as", "mask"], capsys)
    assert code == 0 and "is this a mask?" in err


def test_histogram_unlike_the_models_training_data_warns(tmp_path, capsys):
    from tomoseg.inference.domain import intensity_histogram

    rng = np.random.default_rng(0)
    train = rng.normal(100, 10, 20000)
    hist = intensity_histogram(train, train.mean(), train.std())
    tomoseg.save_model(tomoseg.UNet3D(levels=2, base_features=2).eval(), tmp_path / "m.safetensors",
                       {"input_histogram": hist})
    common = ["--model", str(tmp_path / "m.safetensors"), "--backend", "torch"]
    np.save(tmp_path / "same.npy", rng.normal(100, 10, (8, 32, 32)).astype(np.float32))
    bimodal = np.where(rng.random((8, 32, 32)) < 0.5, 0.0, 200.0) + rng.normal(0, 1, (8, 32, 32))
    np.save(tmp_path / "other.npy", bimodal.astype(np.float32))
    code, _, err = _cli(["segment", str(tmp_path / "same.npy"), str(tmp_path / "a.zarr")] + common, capsys)
    assert code == 0 and "histogram differs" not in err  # (the note of an empty map names the tmp path's test)
    code, _, err = _cli(["segment", str(tmp_path / "other.npy"), str(tmp_path / "b.zarr")] + common, capsys)
    assert code == 0 and "gray-value histogram differs" in err


# ------------------------------------------------------------------ result folders and tables: only tomoseg's own
def _mask(tmp_path):
    m = np.zeros((16, 32, 32), np.uint8)
    m[4:9, 10:15, 10:15] = 1
    np.save(tmp_path / "m.npy", m)
    return str(tmp_path / "m.npy")


def test_analyze_never_writes_into_a_folder_of_other_files(tmp_path, capsys):
    mask = _mask(tmp_path)
    theirs = tmp_path / "paper"
    theirs.mkdir()
    (theirs / "summary.json").write_text('{"my": "own numbers"}')
    (theirs / "objects.csv").write_text("id,size\n1,2\n")
    for extra in ([], ["--overwrite"]):
        code, _, err = _cli(["analyze", mask, "--out", str(theirs)] + extra, capsys)
        assert code == 1 and str(theirs) in err
    assert "even with --overwrite" in err
    assert (theirs / "summary.json").read_text(encoding="utf-8") == '{"my": "own numbers"}'
    assert (theirs / "objects.csv").read_text(encoding="utf-8") == "id,size\n1,2\n"
    # tomoseg's own result folder is replaced with --overwrite (and only then)
    assert _cli(["analyze", mask, "--out", str(tmp_path / "r")], capsys)[0] == 0
    assert (tmp_path / "r" / ".tomoseg").is_file()
    assert json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))["tool"] == "tomoseg analyze"
    assert _cli(["analyze", mask, "--out", str(tmp_path / "r")], capsys)[0] == 1
    assert _cli(["analyze", mask, "--out", str(tmp_path / "r"), "--overwrite"], capsys)[0] == 0


def test_analyze_table_never_replaces_a_volume(tmp_path, capsys):
    mask = _mask(tmp_path)
    scan = tmp_path / "scan.tif"
    tifffile.imwrite(scan, (np.arange(8192) % 251).astype(np.uint8).reshape(8, 32, 32))
    before = scan.read_bytes()
    code, _, err = _cli(["analyze", mask, "--csv", str(scan), "--overwrite"], capsys)
    assert code == 1 and "ending in .csv" in err and scan.read_bytes() == before
    disguised = tmp_path / "scan.csv"
    disguised.write_bytes(before)
    code, _, err = _cli(["analyze", mask, "--csv", str(disguised), "--overwrite"], capsys)
    assert code == 1 and "not a text table" in err and disguised.read_bytes() == before
    table = tmp_path / "objects.csv"
    assert _cli(["analyze", mask, "--csv", str(table)], capsys)[0] == 0
    assert _cli(["analyze", mask, "--csv", str(table)], capsys)[0] == 1
    assert _cli(["analyze", mask, "--csv", str(table), "--overwrite"], capsys)[0] == 0
    assert table.read_text(encoding="utf-8").startswith("label,")
