"""The bad-input sweep (issue 13): each case through the CLI gives one line, exit code 1, no traceback.

Every case builds its own small files in ``tmp_path``; docs/bad-inputs.md lists them with their messages.
"""

from __future__ import annotations

import errno
import json
import os

import h5py
import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import load_file, save_file

from tomoseg.cli import main
from tomoseg.io import write_volume


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return tiny_model_factory(2)


def _meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["tomoseg"])


def _model_with(tmp, model, name, *, meta=None, raw_meta=None, tensors=None):
    t = load_file(model) if tensors is None else tensors
    m = _meta(model) if meta is None else meta
    out = tmp / name
    save_file(t, str(out), metadata={"tomoseg": raw_meta if raw_meta is not None else json.dumps(m)})
    return str(out)


def _vol(tmp, name="in.npy", shape=(8, 16, 16), dtype=np.uint8, seed=0):
    path = tmp / name
    np.save(path, np.random.default_rng(seed).integers(0, 200, shape).astype(dtype))
    return str(path)


def _seg(model):
    return ["--model", model, "--backend", "torch", "--device", "cpu"]


def _train_config(tmp, labels, **extra):
    image = tmp / "img.npy"
    np.save(image, np.random.default_rng(0).normal(100, 10, labels.shape).astype(np.float32))
    lab = tmp / "lab.npy"
    np.save(lab, labels)
    cfg = {"output": str(tmp / "run"), "epochs": 1,
           "data": {"volumes": [{"image": str(image), "labels": str(lab)}]},
           "sampling": {"patch_size": 8, "batch_size": 1, "steps_per_epoch": 1, "validation_patches": 1}}
    for key, value in extra.items():
        section, _, field = key.partition("__")
        if field:
            cfg.setdefault(section, {})[field] = value
        else:
            cfg[key] = value
    path = tmp / "cfg.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _raw_yaml(tmp, text):
    path = tmp / "cfg.yaml"
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------------------------- file builders
def b_swapped(tmp, model):
    write_volume(tmp / "prob.zarr", np.zeros((8, 16, 16), np.uint8))
    tifffile.imwrite(tmp / "scan.tif", np.ones((8, 16, 16), np.uint8))
    return ["segment", str(tmp / "prob.zarr"), str(tmp / "scan.tif"), "--overwrite"] + _seg(model)


def b_swapped_no_overwrite(tmp, model):
    return b_swapped(tmp, model)[:-len(_seg(model)) - 1] + _seg(model)


def b_folder_overwrite(tmp, model):
    (tmp / "results").mkdir()
    (tmp / "results" / "notes.txt").write_text("x")
    return ["segment", _vol(tmp), str(tmp / "results"), "--overwrite"] + _seg(model)


def b_foreign_h5_dataset(tmp, model):
    with h5py.File(tmp / "exp.h5", "w") as f:
        f["/entry/seg"] = np.zeros((8, 16, 16), np.uint8)
    return ["segment", _vol(tmp, shape=(8, 16, 17)), f"{tmp / 'exp.h5'}:/entry/seg", "--overwrite"] + _seg(model)


def b_foreign_file(tmp, model):
    (tmp / "out.tif").write_text("my notes, not a TIFF")
    return ["segment", _vol(tmp), str(tmp / "out.tif"), "--overwrite"] + _seg(model)


def b_pickle_model(tmp, model):
    torch.save({"w": torch.zeros(2)}, tmp / "m.pt")
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", str(tmp / "m.pt")]


def b_random_bytes_model(tmp, model):
    (tmp / "m.safetensors").write_bytes(b"\x00" * 3 + os.urandom(40))
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", str(tmp / "m.safetensors")]


def b_levels_100(tmp, model):
    m = _meta(model)
    m["architecture"]["levels"] = 100
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", _model_with(tmp, model, "l.safetensors", meta=m)]


def b_wrong_tensors(tmp, model):
    m = _meta(model)
    m["architecture"]["levels"] = 3
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", _model_with(tmp, model, "w.safetensors", meta=m)]


def b_nan_weights(tmp, model):
    t = load_file(model)
    t["head.weight"] = torch.full_like(t["head.weight"], float("nan"))
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", _model_with(tmp, model, "n.safetensors", tensors=t)]


def b_negative_variance(tmp, model):
    t = load_file(model)
    t["down.0.1.running_var"] = -torch.ones_like(t["down.0.1.running_var"])
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", _model_with(tmp, model, "v.safetensors", tensors=t)]


def b_meta_not_json(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model",
            _model_with(tmp, model, "j.safetensors", raw_meta="{not json")]


def b_meta_list(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model",
            _model_with(tmp, model, "l.safetensors", raw_meta="[1, 2]")]


def b_meta_no_arch(tmp, model):
    m = _meta(model)
    del m["architecture"]
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", _model_with(tmp, model, "a.safetensors", meta=m)]


def b_model_missing(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--model", str(tmp / "nope.safetensors")]


def b_mixed_dtype_folder(tmp, model):
    (tmp / "slices").mkdir()
    tifffile.imwrite(tmp / "slices" / "s0.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp / "slices" / "s1.tif", np.zeros((8, 8), np.uint16))
    return ["info", str(tmp / "slices")]


def b_vds_missing_source(tmp, model):
    with h5py.File(tmp / "src.h5", "w") as f:
        f["data"] = np.ones((4, 8, 8), np.uint8)
    layout = h5py.VirtualLayout(shape=(4, 8, 8), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(tmp / "src.h5"), "data", shape=(4, 8, 8))
    with h5py.File(tmp / "vds.h5", "w") as f:
        f.create_virtual_dataset("vol", layout, fillvalue=0)
    (tmp / "src.h5").unlink()
    return ["info", f"{tmp / 'vds.h5'}:/vol"]


def _nrrd(tmp, header_sizes, data: bytes, dtype="uint8", extra=""):
    text = f"NRRD0004\ntype: {dtype}\ndimension: 3\nsizes: {header_sizes}\n{extra}encoding: raw\nendian: little\n\n"
    (tmp / "v.nrrd").write_bytes(text.encode() + data)
    return str(tmp / "v.nrrd")


def b_nrrd_extra_data(tmp, model):
    return ["info", _nrrd(tmp, "4 4 2", bytes(64))]


def b_nrrd_truncated(tmp, model):
    return ["info", _nrrd(tmp, "4 4 8", bytes(64))]


def b_nrrd_overflow(tmp, model):
    return ["info", _nrrd(tmp, "99999999999 99999999999 99999999999", bytes(64))]


def b_nrrd_type(tmp, model):
    return ["info", _nrrd(tmp, "4 4 4", bytes(64), dtype="block")]


def b_complex(tmp, model):
    np.save(tmp / "c.npy", np.zeros((4, 8, 8), np.complex64))
    return ["info", str(tmp / "c.npy")]


def b_h5_strings(tmp, model):
    with h5py.File(tmp / "s.h5", "w") as f:
        f.create_dataset("text", data=np.array([[["a", "b"]] * 2] * 2, dtype=h5py.string_dtype()))
    return ["info", f"{tmp / 's.h5'}:/text"]


def b_compound(tmp, model):
    np.save(tmp / "rec.npy", np.zeros((4, 8, 8), dtype=[("a", "u1"), ("b", "f4")]))
    return ["info", str(tmp / "rec.npy")]


def b_dangling_link(tmp, model):
    with h5py.File(tmp / "l.h5", "w") as f:
        f["vol"] = h5py.ExternalLink("gone.h5", "/data")
    return ["info", f"{tmp / 'l.h5'}:/vol"]


def _zarr(tmp):
    write_volume(tmp / "z.zarr", np.zeros((4, 8, 8), np.uint8))
    return tmp / "z.zarr"


def b_zarr_truncated_meta(tmp, model):
    z = _zarr(tmp)
    meta = z / "0" / "zarr.json"
    meta.write_text(meta.read_text(encoding="utf-8")[:40])
    return ["info", str(z)]


def b_zarr_absurd_meta(tmp, model):
    z = _zarr(tmp)
    meta = z / "0" / "zarr.json"
    m = json.loads(meta.read_text(encoding="utf-8"))
    m["shape"] = [-4, 8, 8]
    meta.write_text(json.dumps(m))
    return ["info", str(z)]


def b_ome_dotdot(tmp, model):
    z = _zarr(tmp)
    meta = z / "zarr.json"
    m = json.loads(meta.read_text(encoding="utf-8"))
    m["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "../../etc"
    meta.write_text(json.dumps(m))
    return ["info", str(z)]


def b_zarr_no_array(tmp, model):
    return ["info", f"{_zarr(tmp)}:nothing"]


def _vol_file(tmp, nx, ny, nz, nbytes=64):
    (tmp / "v.vol").write_bytes(bytes(nbytes))
    (tmp / "v.vol.info").write_text(f"NUM_X = {nx}\nNUM_Y = {ny}\nNUM_Z = {nz}\n")
    return str(tmp / "v.vol")


def b_vol_negative(tmp, model):
    return ["info", _vol_file(tmp, -4, 4, 1)]


def b_vol_zero(tmp, model):
    return ["info", _vol_file(tmp, 0, 4, 4)]


def b_vol_size_mismatch(tmp, model):
    return ["info", _vol_file(tmp, 4, 4, 4)]


def b_vol_no_info(tmp, model):
    (tmp / "v.vol").write_bytes(bytes(64))
    return ["info", str(tmp / "v.vol")]


def b_huge_floats(tmp, model):
    np.save(tmp / "big.npy", np.random.default_rng(0).uniform(0.5, 1, (8, 16, 16)) * 1e302)
    return ["segment", str(tmp / "big.npy"), str(tmp / "o.zarr")] + _seg(model)


def b_empty_npy(tmp, model):
    (tmp / "e.npy").write_bytes(b"")
    return ["info", str(tmp / "e.npy")]


def b_truncated_npy(tmp, model):
    np.save(tmp / "t.npy", np.zeros((8, 16, 16), np.uint8))
    data = (tmp / "t.npy").read_bytes()
    (tmp / "t.npy").write_bytes(data[:-100])
    return ["info", str(tmp / "t.npy")]


def b_truncated_tiff(tmp, model):
    tifffile.imwrite(tmp / "t.tif", np.zeros((8, 64, 64), np.uint8), imagej=True)
    data = (tmp / "t.tif").read_bytes()
    (tmp / "t.tif").write_bytes(data[: len(data) // 2])
    return ["info", str(tmp / "t.tif")]


def b_missing(tmp, model):
    return ["info", str(tmp / "nope.tif")]


def b_unknown_ext(tmp, model):
    (tmp / "v.xyz").write_text("x")
    return ["info", str(tmp / "v.xyz")]


def b_2d(tmp, model):
    tifffile.imwrite(tmp / "flat.tif", np.zeros((8, 9), np.uint8))
    return ["info", str(tmp / "flat.tif")]


def b_4d(tmp, model):
    np.save(tmp / "four.npy", np.zeros((2, 3, 4, 5), np.uint8))
    return ["info", str(tmp / "four.npy")]


def b_h5_group(tmp, model):
    with h5py.File(tmp / "g.h5", "w") as f:
        f.create_group("entry")
    return ["info", f"{tmp / 'g.h5'}:/entry"]


def b_h5_missing_dataset(tmp, model):
    with h5py.File(tmp / "g.h5", "w") as f:
        f["a"] = np.zeros((2, 2, 2))
    return ["info", f"{tmp / 'g.h5'}:/b"]


# ------------------------------------------------------------------------------------------- options and settings
def b_analyze_threshold_300(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--threshold", "300"]


def b_analyze_threshold_neg(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--threshold", "-1"]


def b_evaluate_threshold(tmp, model):
    return ["evaluate", _vol(tmp), _vol(tmp, "l.npy"), "--json", "--threshold", "300"]


def b_evaluate_voxel_negative(tmp, model):
    return ["evaluate", _vol(tmp), _vol(tmp, "l.npy"), "--json", "--voxel-size", "-1", "0", "0"]


def b_analyze_voxel_zero(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--voxel-size", "0", "1", "1"]


def b_segment_threshold(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--threshold", "300"] + _seg(model)


def b_tile_size(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--tile-size", "4"] + _seg(model)


def b_halo(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--halo", "-1"] + _seg(model)


def b_workers(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--workers", "0"] + _seg(model)


def b_dask_scheduler(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--dask-scheduler", "notaurl"] + _seg(model)


def b_threads_env(tmp, model, monkeypatch):
    monkeypatch.setenv("TOMOSEG_THREADS", "abc")
    return ["info", _vol(tmp)]


def b_fp16_cpu(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--precision", "fp16", "--model", model, "--device", "cpu"]


def b_analyze_no_output(tmp, model):
    return ["analyze", _vol(tmp)]


def b_report_without_out(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--report"]


def b_evaluate_shapes(tmp, model):
    return ["evaluate", _vol(tmp), _vol(tmp, "l.npy", shape=(8, 16, 17)), "--json"]


def b_min_voxels(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--min-voxels", "0"]


def b_sample_mask_shape(tmp, model):
    return ["analyze", _vol(tmp), "--json", "--sample-mask", _vol(tmp, "m.npy", shape=(8, 16, 17))]


def b_sample_mask_empty(tmp, model):
    np.save(tmp / "m.npy", np.zeros((8, 16, 16), np.uint8))
    return ["analyze", _vol(tmp), "--json", "--sample-mask", str(tmp / "m.npy")]


def b_float_beyond_1(tmp, model):
    np.save(tmp / "p.npy", np.random.default_rng(0).uniform(0, 3, (8, 16, 16)).astype(np.float32))
    return ["analyze", str(tmp / "p.npy"), "--json"]


def b_gray_uint16(tmp, model):
    np.save(tmp / "g.npy", np.random.default_rng(0).integers(1, 4000, (8, 16, 16)).astype(np.uint16))
    return ["analyze", str(tmp / "g.npy"), "--json"]


def b_negative_values(tmp, model):
    np.save(tmp / "g.npy", np.random.default_rng(0).integers(-500, 500, (8, 16, 16)).astype(np.int16))
    np.save(tmp / "l.npy", np.zeros((8, 16, 16), np.uint8))
    return ["evaluate", str(tmp / "g.npy"), str(tmp / "l.npy"), "--json"]


def b_probability_beyond_255(tmp, model):
    np.save(tmp / "p16.npy", (np.random.default_rng(0).integers(0, 256, (8, 16, 16)) * 257).astype(np.uint16))
    return ["analyze", str(tmp / "p16.npy"), "--json", "--read-as", "probability"]


def b_csv_exists(tmp, model):
    (tmp / "o.csv").write_text("x")
    return ["analyze", _vol(tmp), "--csv", str(tmp / "o.csv")]


def b_csv_not_csv(tmp, model):
    return ["analyze", _vol(tmp), "--csv", str(tmp / "objects.tif")]


def b_out_foreign_folder(tmp, model):
    (tmp / "paper").mkdir()
    (tmp / "paper" / "summary.json").write_text("{}")
    return ["analyze", _vol(tmp), "--out", str(tmp / "paper"), "--overwrite"]


def b_out_is_a_file(tmp, model):
    (tmp / "notes.txt").write_text("x")
    return ["analyze", _vol(tmp), "--out", str(tmp / "notes.txt")]


def b_gpus_zero(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--gpus", "0"] + _seg(model)


def b_gpus_with_workers(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--gpus", "1", "--workers", "2"] + _seg(model)


# ------------------------------------------------------------------------------------------------ training configs
def b_labels_0_255(tmp, model):
    labels = np.zeros((16, 16, 16), np.uint8)
    labels[4:8, 4:8, 4:8] = 255
    return ["train", _train_config(tmp, labels), "-q"]


def b_labels_all_255(tmp, model):
    return ["train", _train_config(tmp, np.full((16, 16, 16), 255, np.uint8)), "-q"]


def b_labels_all_0(tmp, model):
    return ["train", _train_config(tmp, np.zeros((16, 16, 16), np.uint8)), "-q"]


def b_labels_values(tmp, model):
    return ["train", _train_config(tmp, np.full((16, 16, 16), 7, np.uint8)), "-q"]


def b_epochs_text(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), epochs="ten")]


def b_epochs_fraction(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), epochs=2.5)]


def b_learning_rate_text(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), optim__learning_rate="fast")]


def b_train_device(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8)), "--device", "tpu"]


def b_config_unknown_key(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), optimiser={"lr": 1})]


def b_config_levels(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), model__levels=100)]


def b_config_voxel(tmp, model):
    return ["train", _train_config(tmp, np.ones((16, 16, 16), np.uint8), voxel_size_nm=[0, 1])]


def b_config_not_mapping(tmp, model):
    return ["train", _raw_yaml(tmp, "- 1\n- 2\n")]


def b_config_bad_yaml(tmp, model):
    return ["train", _raw_yaml(tmp, "epochs: [1\n")]


def b_config_missing(tmp, model):
    return ["train", str(tmp / "nope.yaml")]


# ------------------------------------------------------------------------------------------ work folders, reports
def _interrupted(tmp, model, monkeypatch):
    from tomoseg.inference import engine

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_tiles", stop)
    argv = ["segment", _vol(tmp, shape=(8, 16, 16)), str(tmp / "o.zarr"), "--tile-size", "8"] + _seg(model)
    assert main(argv + ["-q"]) == 130
    monkeypatch.undo()
    return argv, tmp / "o.zarr.tomoseg-run"


def b_state_truncated(tmp, model, monkeypatch):
    argv, work = _interrupted(tmp, model, monkeypatch)
    state = work / "state.json"
    state.write_text(state.read_text(encoding="utf-8")[:30])
    return argv + ["--resume"]


def b_stray_done(tmp, model, monkeypatch):
    argv, work = _interrupted(tmp, model, monkeypatch)
    (work / "done" / ".DS_Store").write_text("")
    return argv + ["--resume"]


def b_resume_changed_input(tmp, model, monkeypatch):
    argv, work = _interrupted(tmp, model, monkeypatch)
    _vol(tmp, seed=99)
    return argv + ["--resume"]


def b_work_left(tmp, model, monkeypatch):
    argv, work = _interrupted(tmp, model, monkeypatch)
    return argv


def b_report_broken_json(tmp, model):
    (tmp / "res").mkdir()
    (tmp / "res" / "summary.json").write_text('{"objects": 3,')
    return ["report", str(tmp / "res")]


def b_report_missing_fields(tmp, model):
    (tmp / "res").mkdir()
    (tmp / "res" / "evaluation.json").write_text('{"threshold": 127}')
    return ["report", str(tmp / "res")]


def b_report_not_folder(tmp, model):
    return ["report", str(tmp / "nothing")]


def b_no_space(tmp, model, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    return ["segment", _vol(tmp), str(tmp / "o.tif")] + _seg(model)


def b_write_enospc(tmp, model, monkeypatch):
    from tomoseg.inference import engine

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "o.zarr.tomoseg-run"))

    monkeypatch.setattr(engine, "run_tiles", full)
    return ["segment", _vol(tmp), str(tmp / "o.zarr")] + _seg(model)


# ---------------------------------------------------------------------------------------- found before the work
def b_uint8_to_vol(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.vol")] + _seg(model)


def b_readonly_mask_folder(tmp, model):
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    target = folder if os.geteuid() != 0 else None
    mask = str((target or "/proc") / "mask.tif") if target else "/proc/tomoseg-mask.tif"
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--mask", mask] + _seg(model)


def b_output_in_slice_folder(tmp, model):
    (tmp / "slices").mkdir()
    for z in range(4):
        tifffile.imwrite(tmp / "slices" / f"s{z}.tif", np.full((16, 16), z, np.uint8))
    return ["segment", str(tmp / "slices"), str(tmp / "slices" / "seg.tif")] + _seg(model)


def b_output_equals_input(tmp, model):
    v = _vol(tmp)
    return ["segment", v, v] + _seg(model)


def b_same_outputs(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "o.zarr"), "--mask", str(tmp / "o.zarr")] + _seg(model)


def b_output_folder_missing(tmp, model):
    return ["segment", _vol(tmp), str(tmp / "no" / "o.zarr")] + _seg(model)


def b_phantom_huge(tmp, model):
    return ["phantom", str(tmp / "i.zarr"), "--labels", str(tmp / "l.zarr"), "--shape", "20000", "20000", "20000"]


def b_phantom_zero(tmp, model):
    return ["phantom", str(tmp / "i.zarr"), "--labels", str(tmp / "l.zarr"), "--shape", "0", "8", "8"]


def b_phantom_instances_tif(tmp, model):
    return ["phantom", str(tmp / "i.zarr"), "--labels", str(tmp / "l.zarr"), "--instances", str(tmp / "n.tif"),
            "--shape", "8", "8", "8"]


def b_export_exists(tmp, model):
    (tmp / "m.onnx").write_text("x")
    return ["export-onnx", model, str(tmp / "m.onnx")]


CASES = {
    # data loss (items 1-2)
    "swapped arguments, --overwrite": (b_swapped, "swapped"),
    "swapped arguments": (b_swapped_no_overwrite, "swapped"),
    "folder output, --overwrite": (b_folder_overwrite, "folder that tomoseg did not write"),
    "foreign HDF5 dataset, --overwrite": (b_foreign_h5_dataset, "dataset that tomoseg did not write"),
    "foreign file, --overwrite": (b_foreign_file, "file that tomoseg did not write"),
    # models (items 5-7, 17)
    "pickled checkpoint": (b_pickle_model, "pickled PyTorch file"),
    "model of random bytes": (b_random_bytes_model, "not a safetensors model file"),
    "model levels 100": (b_levels_100, "levels = 100 is outside 2..8"),
    "model tensors of another architecture": (b_wrong_tensors, "do not fit the architecture"),
    "model NaN weights": (b_nan_weights, "NaN or infinite"),
    "model negative BatchNorm variance": (b_negative_variance, "variance"),
    "model metadata not JSON": (b_meta_not_json, "not valid JSON"),
    "model metadata a list": (b_meta_list, "not a JSON object"),
    "model metadata without architecture": (b_meta_no_arch, "lack the model 'architecture'"),
    "model file missing": (b_model_missing, "model file not found"),
    # inputs (items 8, 9, 16)
    "slices of mixed dtypes": (b_mixed_dtype_folder, "differ in data type"),
    "HDF5 virtual dataset, source missing": (b_vds_missing_source, "virtual dataset"),
    "NRRD with more data than its header": (b_nrrd_extra_data, "more data than its header"),
    "NRRD truncated": (b_nrrd_truncated, "truncated"),
    "NRRD sizes overflow": (b_nrrd_overflow, "cannot describe"),
    "NRRD unknown type": (b_nrrd_type, "not supported"),
    "complex input": (b_complex, "complex numbers"),
    "HDF5 strings": (b_h5_strings, "not gray values"),
    "compound dtype": (b_compound, "not gray values"),
    "HDF5 dangling external link": (b_dangling_link, "external link"),
    "Zarr metadata truncated": (b_zarr_truncated_meta, "z.zarr"),
    "Zarr metadata absurd": (b_zarr_absurd_meta, "z.zarr"),
    "OME-Zarr path with ..": (b_ome_dotdot, "'..'"),
    "Zarr array missing": (b_zarr_no_array, "has no array"),
    ".vol negative size": (b_vol_negative, "must be positive"),
    ".vol zero size": (b_vol_zero, "must be positive"),
    ".vol size mismatch": (b_vol_size_mismatch, "bytes"),
    ".vol without .info": (b_vol_no_info, "sidecar"),
    "float64 near 1e302": (b_huge_floats, "too large"),
    "0-byte .npy": (b_empty_npy, "empty file"),
    "truncated .npy": (b_truncated_npy, "not a readable .npy"),
    "truncated TIFF": (b_truncated_tiff, "truncated"),
    "missing input": (b_missing, "no such file"),
    "unknown extension": (b_unknown_ext, "unknown volume format"),
    "2D image": (b_2d, "2D image"),
    "4D array": (b_4d, "4 dimensions"),
    "HDF5 group named": (b_h5_group, "is a group"),
    "HDF5 dataset missing": (b_h5_missing_dataset, "has no dataset"),
    # options (item 14, 19)
    "analyze --threshold 300": (b_analyze_threshold_300, "--threshold 300"),
    "analyze --threshold -1": (b_analyze_threshold_neg, "--threshold -1"),
    "evaluate --threshold 300": (b_evaluate_threshold, "--threshold 300"),
    "evaluate --voxel-size -1 0 0": (b_evaluate_voxel_negative, "positive"),
    "analyze --voxel-size 0 1 1": (b_analyze_voxel_zero, "positive"),
    "segment --threshold 300": (b_segment_threshold, "threshold"),
    "segment --tile-size 4": (b_tile_size, "tile size"),
    "segment --halo -1": (b_halo, "halo"),
    "segment --workers 0": (b_workers, "--workers"),
    "segment --dask-scheduler notaurl": (b_dask_scheduler, "not a scheduler address"),
    "TOMOSEG_THREADS=abc": (b_threads_env, "TOMOSEG_THREADS"),
    "fp16 on the CPU": (b_fp16_cpu, "fp16"),
    "analyze without an output": (b_analyze_no_output, "say where the results go"),
    "--report without --out": (b_report_without_out, "--report needs --out"),
    "evaluate shapes differ": (b_evaluate_shapes, "differ in shape"),
    "analyze --min-voxels 0": (b_min_voxels, "--min-voxels"),
    "--sample-mask of another shape": (b_sample_mask_shape, "must match"),
    "--sample-mask empty": (b_sample_mask_empty, "sample mask is empty"),
    "analyze --csv exists": (b_csv_exists, "already exists"),
    "analyze --csv objects.tif": (b_csv_not_csv, "ending in .csv"),
    "analyze --out a folder of other files, --overwrite": (b_out_foreign_folder, "not an earlier tomoseg result"),
    "analyze --out a file": (b_out_is_a_file, "is a file, not a folder"),
    "segment --gpus 0": (b_gpus_zero, "at least 1"),
    "segment --gpus with --workers": (b_gpus_with_workers, "without --workers"),
    "analyze fractional values up to 3": (b_float_beyond_1, "fractional values from"),
    "analyze a 16-bit gray-value image": (b_gray_uint16, "does not look like object IDs"),
    "evaluate a prediction with negative values": (b_negative_values, "holds negative values"),
    "analyze --read-as probability of a 0-65535 map": (b_probability_beyond_255, "holds 0-255"),
    # training (items 10, 18)
    "labels 0/255": (b_labels_0_255, "only 0 and 255"),
    "labels all 255": (b_labels_all_255, "no voxel is annotated"),
    "labels all 0": (b_labels_all_0, "no object voxel"),
    "labels with other values": (b_labels_values, "labels hold values"),
    "epochs: ten": (b_epochs_text, "epochs"),
    "epochs: 2.5": (b_epochs_fraction, "whole number"),
    "learning_rate: fast": (b_learning_rate_text, "optim.learning_rate"),
    "train --device tpu": (b_train_device, "device 'tpu'"),
    "config unknown section": (b_config_unknown_key, "unknown config key"),
    "config model.levels 100": (b_config_levels, "model.levels"),
    "config voxel_size_nm [0, 1]": (b_config_voxel, "voxel_size_nm"),
    "config not a mapping": (b_config_not_mapping, "must be a mapping"),
    "config not YAML": (b_config_bad_yaml, "not valid YAML"),
    "config missing": (b_config_missing, "config file not found"),
    # work folders, reports, faults (items 3, 19, 20)
    "state.json truncated": (b_state_truncated, "state is damaged"),
    "stray file in done/": (b_stray_done, "not a finished-tile marker"),
    "resume after the input changed": (b_resume_changed_input, "changed since the interrupted run"),
    "work folder left, no --resume": (b_work_left, "pass --resume"),
    "report on broken JSON": (b_report_broken_json, "is not valid JSON"),
    "report on JSON missing fields": (b_report_missing_fields, "lacks what the report needs"),
    "report of a missing folder": (b_report_not_folder, "not a folder of results"),
    "disk too small for the output": (b_no_space, "are free on this disk"),
    "disk fills while writing": (b_write_enospc, "disk is full"),
    # found before the work (items 21, 23)
    "uint8 result to .vol": (b_uint8_to_vol, "float32"),
    "--mask in a read-only folder": (b_readonly_mask_folder, "cannot write here"),
    "output inside the input's slice folder": (b_output_in_slice_folder, "inside the input folder"),
    "output equals input": (b_output_equals_input, "equals the input"),
    "probability map and mask on one path": (b_same_outputs, "different paths"),
    "output folder missing": (b_output_folder_missing, "does not exist"),
    "phantom 20000^3": (b_phantom_huge, "of memory"),
    "phantom --shape 0": (b_phantom_zero, "positive"),
    "phantom uint32 instances to TIFF": (b_phantom_instances_tif, "TIFF output supports"),
    "export-onnx to an existing file": (b_export_exists, "already exists"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_1(case, tmp_path, model, monkeypatch, capsys):
    build, pattern = CASES[case]
    monkeypatch.chdir(tmp_path)
    import inspect

    args = (tmp_path, model, monkeypatch) if "monkeypatch" in inspect.signature(build).parameters else (tmp_path, model)
    argv = build(*args)
    capsys.readouterr()
    code = main(argv + ["-q"])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("tomoseg: error:")]
    assert code == 1, (case, err)
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert pattern in errors[0], (pattern, err)
    assert "Traceback" not in err


def test_the_sweep_is_large_enough():
    assert len(CASES) >= 60
