"""Files that are not tomoseg models: PyTorch pickles, zip archives, ONNX exports (review MF4, MF6). Each gets one
line saying what to do; nothing is ever unpickled."""

import os
import re
import zipfile

import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.checkpoint import load_model
from tomoseg.cli import main
from tomoseg.errors import TomosegError

MARKER = []  # where the hostile pickle would write


class Hostile:
    def __reduce__(self):
        return (open, (MARKER[0], "w"))


def _recipe(message: str) -> str:
    """The Python code of the conversion the pickle message gives."""
    code = re.search(r'python -c "(.*?)"', message).group(1)
    return code.replace("[Z, Y, X]", "[30, 30, 30]")


def test_the_pickle_message_gives_a_conversion_that_works_and_runs_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = tomoseg.UNet3D(levels=4, base_features=8)
    torch.save(net.state_dict(), "net.pt")
    with pytest.raises(TomosegError, match=r"net\.pt: is a pickled PyTorch file; tomoseg never unpickles") as err:
        load_model("net.pt")
    exec(_recipe(str(err.value)), {})
    converted = load_model("net.safetensors")
    assert converted.metadata["voxel_size_nm"] == [30, 30, 30]
    for key, value in net.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value)

    MARKER.append(str(tmp_path / "ran"))
    torch.save({"x": Hostile()}, "hostile.pt")
    with pytest.raises(TomosegError) as err:
        load_model("hostile.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        exec(_recipe(str(err.value)), {})
    assert not (tmp_path / "ran").exists()


def test_a_zip_that_is_no_pytorch_checkpoint_is_called_a_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.pt", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(TomosegError, match=r"m\.pt: is a zip archive, not a model file \(nor a PyTorch checkpoint\)"):
        load_model(tmp_path / "m.pt")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_info_of_a_pickle_says_it_is_one(tmp_path, capsys, suffix):
    torch.save(tomoseg.UNet3D(2, 2).state_dict(), tmp_path / f"m{suffix}")
    assert main(["info", str(tmp_path / f"m{suffix}")]) == 1
    err = capsys.readouterr().err
    assert "is a pickled PyTorch file" in err and "unknown volume format" not in err


def test_info_describes_an_onnx_export_and_segment_names_its_model(tmp_path, capsys):
    pytest.importorskip("onnx")
    import json

    assert main(["export-onnx", "v2", str(tmp_path / "v2.onnx")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "v2.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["exported_from"] == {"sha256": tomoseg.load_model("v2").sha256, "shipped": "v2"}
    assert info["divisor"] == 8 and info["voxel_size_nm"] == [29.33] * 3 and info["threshold"] == 127
    assert main(["info", str(tmp_path / "v2.onnx")]) == 0
    out = capsys.readouterr().out
    assert "(shipped: v2)" in out and "clip((x - mean) / sd, -10, 10)" in out and "29.33 × 29.33 × 29.33 nm" in out
    with pytest.raises(TomosegError, match=r"v2\.onnx: is an ONNX file, for other runtimes; tomoseg runs "
                                           r"\.safetensors models: give --model v2, the shipped model"):
        load_model(tmp_path / "v2.onnx")


def test_info_of_an_onnx_file_tomoseg_did_not_export(tmp_path, capsys):
    (tmp_path / "other.onnx").write_bytes(b"\x08\x07\x12\x04test")
    assert main(["info", str(tmp_path / "other.onnx")]) == 1
    assert "is not an ONNX file exported by tomoseg" in capsys.readouterr().err
    with pytest.raises(TomosegError, match=r"other\.onnx: is an ONNX file, for other runtimes; tomoseg runs "
                                           r"\.safetensors models \(tomoseg train"):
        load_model(tmp_path / "other.onnx")


@pytest.mark.parametrize("levels, base", [(4, 8), (3, 4)])
def test_bare_weights_of_a_unet_are_recognised_and_the_given_conversion_works(tmp_path, monkeypatch, levels, base):
    """Review MF9: ``save_file(model.state_dict(), ...)`` of tomoseg's network was told only "save models with
    tomoseg.save_model"."""
    from safetensors.torch import save_file

    monkeypatch.chdir(tmp_path)
    net = tomoseg.UNet3D(levels=levels, base_features=base)
    save_file(net.state_dict(), "bare.safetensors")
    with pytest.raises(TomosegError, match=rf"bare\.safetensors: holds the weights of a tomoseg UNet3D \(levels="
                                           rf"{levels}, base_features={base}\) without the metadata") as err:
        load_model("bare.safetensors")
    exec(_recipe(str(err.value)), {})
    converted = load_model("bare-tomoseg.safetensors")
    assert converted.config == net.config and converted.metadata["voxel_size_nm"] == [30, 30, 30]
    for key, value in net.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value)


def test_bare_weights_of_another_network_are_not_taken_for_a_unet(tmp_path):
    from safetensors.torch import save_file

    net = tomoseg.UNet3D(levels=3, base_features=4).state_dict()
    del net["up.0.0.bias"]
    save_file(net, str(tmp_path / "almost.safetensors"))
    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    for name in ("almost", "other"):
        with pytest.raises(TomosegError, match=rf"{name}\.safetensors: is a safetensors file without tomoseg "
                                               "metadata, and its tensors are not those of a tomoseg UNet3D"):
            load_model(tmp_path / f"{name}.safetensors")


def _overflowing(tmp_path):
    """A model of finite weights that overflow float32: each convolution's weights x 1e6."""
    net = tomoseg.UNet3D(levels=2, base_features=2).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 5:
                p.mul_(1e6)
    return tomoseg.save_model(net, tmp_path / "overflow.safetensors")


def test_a_model_whose_output_overflows_is_refused_before_any_work(tmp_path, monkeypatch):
    """Review MF13: finite but huge weights gave NaN logits, cast to 0: an empty map without a word."""
    import numpy as np

    from tomoseg.inference import segment
    from tomoseg.io import write_volume

    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    path = _overflowing(tmp_path)
    with pytest.raises(TomosegError, match=r"overflow\.safetensors: the network's output on z-scored noise is not "
                                           "finite"):
        load_model(path)
    write_volume(str(tmp_path / "in.tif"), np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32))
    for backend in ("torch", "openvino"):
        from tomoseg.inference import BackendConfig, SegmentOptions

        with pytest.raises(TomosegError, match="is not finite"):
            segment(tmp_path / "in.tif", tmp_path / f"{backend}.tif", model=path, progress=False,
                    options=SegmentOptions(backend=BackendConfig(backend=backend)))
        assert not list(tmp_path.glob(f"{backend}.tif*"))


def test_nan_probabilities_are_never_quantized_to_zero():
    import numpy as np

    from tomoseg.inference.backends import sigmoid_uint8, to_uint8

    logits = np.zeros((6, 4, 4), np.float32)
    assert sigmoid_uint8(logits).max() == 128 and to_uint8(np.full(3, 0.5)).tolist() == [128] * 3
    logits[5, 1, 2] = np.nan
    for quantize in (sigmoid_uint8, lambda x: to_uint8(1 / (1 + np.exp(-x)))):
        with pytest.raises(TomosegError, match="the model's output holds NaN"):
            quantize(logits)
    logits[5, 1, 2] = np.inf  # an infinite logit is a probability of 1
    assert sigmoid_uint8(logits)[5, 1, 2] == 255


def test_a_training_runs_folder_given_as_the_model_names_its_best_model(tmp_path):
    """Review MF14: ``--model runs/finetune`` said only "is a folder, not a model file"."""
    run = tmp_path / "runs" / "finetune"
    run.mkdir(parents=True)
    tomoseg.save_model(tomoseg.UNet3D(2, 2), run / "best.safetensors")
    with pytest.raises(TomosegError, match=r"finetune: is a folder, not a model file \(\.safetensors\); it holds the "
                                           r"models of a training run: give .*finetune/best\.safetensors$"):
        load_model(run)
    with pytest.raises(TomosegError, match=r"is a folder, not a model file \(\.safetensors\)$"):
        load_model(tmp_path / "runs")


def test_load_model_names_a_device_this_machine_lacks_in_one_line():
    """Review MF16: load_model(device='cuda') without CUDA raised PyTorch's AssertionError; 'gpu' a RuntimeError."""
    with pytest.raises(TomosegError, match=r"device 'gpu': not a PyTorch device; give 'cpu', 'cuda' or 'cuda:N'"):
        load_model(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(TomosegError, match=r"device 'cuda': no CUDA GPU is visible to PyTorch here"):
            load_model(device="cuda")
    else:
        with pytest.raises(TomosegError, match=r"device 'cuda:99': this machine has \d+ CUDA GPU"):
            load_model(device="cuda:99")
    assert next(load_model(device=torch.device("cpu")).parameters()).device.type == "cpu"


def test_an_export_names_the_file_it_came_from(tmp_path, capsys):
    """Review MF17: an ONNX export named its model by SHA-256 only; --model X.onnx could not say which file."""
    pytest.importorskip("onnx")
    from tomoseg.io.onnx_marker import read_marker

    path = tomoseg.save_model(tomoseg.UNet3D(2, 2), tmp_path / "best.safetensors")
    assert main(["export-onnx", str(path), str(tmp_path / "m.onnx")]) == 0
    assert read_marker(tmp_path / "m.onnx")["model_file"] == "best.safetensors"
    assert main(["info", str(tmp_path / "m.onnx")]) == 0
    sha = load_model(path).sha256
    assert f"exported from best.safetensors (sha256 {sha})" in capsys.readouterr().out
    with pytest.raises(TomosegError, match=rf"give the model it was exported from \(best\.safetensors, sha256 {sha}"):
        load_model(tmp_path / "m.onnx")
    from tomoseg.inference.export import export_onnx

    changed = load_model(path)
    with torch.no_grad():
        changed.head.bias += 1  # weights in memory: no longer the file's
    export_onnx(changed, tmp_path / "c.onnx")
    assert read_marker(tmp_path / "c.onnx")["model_file"] is None


def test_the_export_of_a_per_patch_model_says_segment_normalizes_otherwise(tmp_path):
    pytest.importorskip("onnx")
    from tomoseg.inference.export import onnx_usage

    patch = tomoseg.UNet3D(2, 2)
    patch.metadata = {"normalization": {"method": "zscore", "scope": "patch"}}
    statistics = onnx_usage(patch)["normalization"]["statistics"]
    assert statistics.startswith("as tomoseg segment does, although this model was trained on each patch's own")
    assert onnx_usage(tomoseg.UNet3D(2, 2))["normalization"]["statistics"].startswith("mean and sd of the whole")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
@pytest.mark.parametrize("command", ["segment", "info", "export-onnx"])
def test_a_pipe_given_as_the_model_is_refused_not_waited_on(tmp_path, command, capsys):
    """A named pipe as --model blocked the run for ever on its first read (review MF, seen and left)."""
    from tomoseg.cli import main

    pipe = tmp_path / "model.safetensors"
    os.mkfifo(pipe)
    scan = tmp_path / "scan.npy"
    np.save(scan, np.zeros((8, 16, 16), np.uint8))
    argv = {"segment": ["segment", str(scan), str(tmp_path / "p.zarr"), "--model", str(pipe)],
            "info": ["info", str(pipe)], "export-onnx": ["export-onnx", str(pipe), str(tmp_path / "m.onnx")]}[command]
    assert main(argv + ["-q"]) == 1
    assert f"{pipe}: is not a regular file (a pipe or a device?)" in capsys.readouterr().err
