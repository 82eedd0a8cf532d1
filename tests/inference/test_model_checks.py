"""What predict and segment accept as a model, and the OpenVINO cache of converted models (review B2-B6)."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.inference import BackendConfig, SegmentOptions, predict, segment
from tomoseg.io import write_volume

TORCH = BackendConfig(backend="torch")
IMAGE = np.random.default_rng(5).normal(100, 20, (16, 32, 32)).astype(np.float32)


def _rewritten(src, dst, meta_change=None, tensor_change=None):
    """A copy of the model file ``src`` with its metadata and tensors changed."""
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["tomoseg"])
    tensors = load_file(str(src))
    if meta_change:
        meta_change(meta)
    if tensor_change:
        tensors = tensor_change(tensors)
    save_file(tensors, str(dst), metadata={"tomoseg": json.dumps(meta)})
    return dst


# ------------------------------------------------------------------ B2: channels
@pytest.mark.parametrize("channels", [(1, 2), (2, 1)])
@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_models_of_other_channel_counts_are_refused(tmp_path, channels, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    path = tomoseg.save_model(tomoseg.UNet3D(2, 2, *channels), tmp_path / "ch.safetensors")
    assert tomoseg.load_model(path).config.out_channels == channels[1]  # loading is fine (training may)
    message = rf"ch\.safetensors: the model has {channels[0]} input and {channels[1]} output channels"
    with pytest.raises(TomosegError, match=message):
        predict(IMAGE, path, backend=BackendConfig(backend=backend))
    with pytest.raises(TomosegError, match="the model given: the model has"):
        predict(IMAGE, tomoseg.UNet3D(2, 2, *channels), backend=TORCH)


def test_segment_refuses_a_two_output_model(tmp_path):
    path = tomoseg.save_model(tomoseg.UNet3D(2, 2, 1, 2), tmp_path / "ch.safetensors")
    src = tmp_path / "in.zarr"
    write_volume(str(src), IMAGE)
    with pytest.raises(TomosegError, match="1 input and 2 output channels"):
        segment(src, tmp_path / "p.zarr", model=path, progress=False)
    assert not (tmp_path / "p.zarr").exists()


# ------------------------------------------------------------------ B3: the caller's model
@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_predict_leaves_the_callers_model_as_it_was(tmp_path, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = tomoseg.UNet3D(2, 2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predict(IMAGE, model, backend=BackendConfig(backend=backend))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    predict(IMAGE, model, backend=BackendConfig(backend=backend))
    assert not model.training


def test_segment_and_export_leave_the_callers_model_in_training_mode(tmp_path):
    from tomoseg.inference.export import export_onnx

    pytest.importorskip("onnx")
    model = tomoseg.UNet3D(2, 2).train()
    src = tmp_path / "in.zarr"
    write_volume(str(src), IMAGE)
    segment(src, tmp_path / "p.zarr", model=model, options=SegmentOptions(backend=TORCH), progress=False)
    assert model.training
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training


# ------------------------------------------------------------------ B4: the OpenVINO cache
def _damage(kind, xml):
    weights = xml.with_suffix(".bin")
    if kind == "truncate_bin":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind == "empty_xml":
        xml.write_bytes(b"")
    elif kind == "same_size_bin":
        data = bytearray(weights.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 4096):
            data[i] ^= 0x5A
        weights.write_bytes(bytes(data))
    elif kind == "no_record":
        xml.with_suffix(".sha256").unlink()


@pytest.mark.parametrize("kind", ["truncate_bin", "empty_xml", "same_size_bin", "no_record"])
@pytest.mark.parametrize("source", ["file", "memory"])
def test_a_damaged_openvino_cache_entry_is_rebuilt(tmp_path, monkeypatch, random_model_path, kind, source):
    pytest.importorskip("openvino")
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    model = random_model_path if source == "file" else tomoseg.load_model(random_model_path)
    if source == "memory":
        with torch.no_grad():
            model.head.bias += 1
    ov = BackendConfig(backend="openvino")
    reference = predict(IMAGE, model, backend=TORCH)
    first = predict(IMAGE, model, backend=ov)
    assert np.abs(first - reference).max() < 1e-5
    xmls = sorted((tmp_path / "cache" / "openvino").glob("unet-*.xml"))
    assert len(xmls) == 1 and xmls[0].with_suffix(".sha256").exists()
    _damage(kind, xmls[0])
    with pytest.warns(tomoseg.errors.TomosegWarning, match="cached OpenVINO copy of the model .*removed"):
        again = predict(IMAGE, model, backend=ov)
    assert np.abs(again - reference).max() < 1e-5
    record = json.loads(xmls[0].with_suffix(".sha256").read_text(encoding="utf-8"))  # rebuilt, with its record
    assert set(record) == {"xml", "bin"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(predict(IMAGE, model, backend=ov), again)  # and used quietly after


# ------------------------------------------------------------------ B5, B6: model metadata
@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_unknown_architecture_key_is_a_clear_error_on_every_path(tmp_path, monkeypatch, random_model_path, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    bad = _rewritten(random_model_path, tmp_path / "bad.safetensors",
                     lambda m: m["architecture"].update(foo=1))
    with pytest.raises(TomosegError, match=r"bad\.safetensors: unknown architecture key\(s\) \['foo'\]"):
        predict(IMAGE, bad, backend=BackendConfig(backend=backend))
    with pytest.raises(TomosegError, match="unknown architecture key"):
        tomoseg.load_model(bad)


def test_models_of_a_newer_format_are_refused(tmp_path, monkeypatch, random_model_path):
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    bad = _rewritten(random_model_path, tmp_path / "new.safetensors", lambda m: m.update(format_version=99))
    with pytest.raises(TomosegError, match=r"new\.safetensors: format_version 99 was written by a newer tomoseg.*"
                                           "upgrade"):
        tomoseg.load_model(bad)
    with pytest.raises(TomosegError, match="written by a newer tomoseg"):
        predict(IMAGE, bad)


def test_models_asking_for_another_normalization_are_refused_by_predict_and_segment(tmp_path, random_model_path):
    bad = _rewritten(random_model_path, tmp_path / "minmax.safetensors",
                     lambda m: m.update(normalization={"method": "minmax", "scope": "whole-volume"}))
    assert tomoseg.load_model(bad).metadata["normalization"]["method"] == "minmax"  # loads: a file may be studied
    with pytest.raises(TomosegError, match=r"minmax\.safetensors: the model expects its input normalized by "
                                           "'minmax'"):
        predict(IMAGE, bad, backend=TORCH)
    src = tmp_path / "in.zarr"
    write_volume(str(src), IMAGE)
    with pytest.raises(TomosegError, match="'minmax'"):
        segment(src, tmp_path / "p.zarr", model=bad, progress=False)


def test_integer_weights_are_refused(tmp_path, random_model_path):
    bad = _rewritten(random_model_path, tmp_path / "int.safetensors",
                     tensor_change=lambda t: {k: v.to(torch.int32) for k, v in t.items()})
    with pytest.raises(TomosegError, match=r"int\.safetensors: weight .* is I32, not floating point"):
        tomoseg.load_model(bad)


def test_half_precision_weights_still_load(tmp_path, random_model_path):
    half = _rewritten(random_model_path, tmp_path / "half.safetensors",
                      tensor_change=lambda t: {k: v.half() if v.is_floating_point() else v for k, v in t.items()})
    tomoseg.load_model(half)


@pytest.mark.parametrize("name", ["default", "v2", "v1"])
def test_shipped_models_pass_every_check(name):
    from tomoseg.inference.model_file import check_runnable

    check_runnable(tomoseg.load_model(name))


# ------------------------------------------------------------------ B8: ONNX export
def test_export_onnx_names_the_architectures_divisor_and_records_how_to_use_it(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    from tomoseg.cli import main
    from tomoseg.io.onnx_marker import read_marker

    monkeypatch.chdir(tmp_path)
    tomoseg.save_model(tomoseg.UNet3D(3, 2), tmp_path / "m3.safetensors", {"threshold": 100})
    assert main(["export-onnx", "m3.safetensors", "m3.onnx"]) == 0
    out = capsys.readouterr().out
    assert "multiples of 4" in out and "multiples of 8" not in out
    marker = read_marker(tmp_path / "m3.onnx")
    assert marker["divisor"] == 4 and marker["threshold"] == 100
    assert marker["normalization"]["method"] == "zscore" and marker["normalization"]["scope"] == "whole-volume"
    assert marker["model_sha256"] == tomoseg.load_model(tmp_path / "m3.safetensors").sha256
