import pytest
import torch

from tomoseg.memory_order import channels_last_pays


@pytest.mark.parametrize("device,precision,cudnn,expected", [
    ("cpu", "f32", None, True),
    ("cpu", "bf16", None, True),
    (torch.device("cpu"), "f32", None, True),
    ("cuda", "f32", 91300, False),           # f32 on CUDA: contiguous until measured
    ("cuda:1", "bf16", 91300, True),         # cuDNN 9.13: PyTorch bypasses cuDNN for contiguous half 3D convs
    (torch.device("cuda", 0), "fp16", 90800, True),
    ("cuda", "bf16", 90700, False),          # before the cuDNN bug: contiguous is fine
    ("cuda", "bf16", None, False),           # no cuDNN at all
])
def test_channels_last_where_it_pays(monkeypatch, device, precision, cudnn, expected):
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: cudnn is not None)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: cudnn)
    assert channels_last_pays(device, precision) is expected


def test_no_channels_last_on_a_cpu_without_onednn(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not channels_last_pays("cpu", "f32")


def test_the_backends_and_the_training_step_follow_the_rule(monkeypatch):
    from tomoseg.inference.backends import TorchBackend
    from tomoseg.model import UNet3D
    from tomoseg.training import config_from_dict
    from tomoseg.training.step import resolve_channels_last

    model = UNet3D(levels=3, base_features=4)
    order = torch.channels_last_3d
    assert TorchBackend(model, "cpu").model.down[1][3].weight.is_contiguous(memory_format=order)
    assert not TorchBackend(model, "cpu", channels_last=False).model.down[1][3].weight.is_contiguous(memory_format=order)
    cfg = config_from_dict({"data": {"phantoms": {"count": 1}}})
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    assert resolve_channels_last(cfg.performance.channels_last, torch.device("cuda"), "bf16")
    assert not resolve_channels_last(cfg.performance.channels_last, torch.device("cuda"), "f32")
    assert not resolve_channels_last(False, torch.device("cuda"), "bf16")  # what the config says wins
