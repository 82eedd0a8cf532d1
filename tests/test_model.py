import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.errors import TomosegError
from tomoseg.model import UNet3D, build_model, count_parameters

PAPER_COUNTS = {  # Gaudez et al. 2022, Section 3.1 and Table 2 (Keras totals)
    (4, 8): 366_593, (3, 8): 89_153, (4, 6): 206_581, (3, 6): 50_341, (4, 4): 92_145, (3, 4): 22_545,
}


@pytest.mark.parametrize("levels,base", sorted(PAPER_COUNTS))
def test_parameter_counts_equal_the_papers(levels, base):
    total, trainable = count_parameters(UNet3D(levels=levels, base_features=base))
    assert total == PAPER_COUNTS[(levels, base)]
    # Keras's non-trainable weights: the BatchNorm mean and variance, 2 per channel of each BN layer
    bn_channels = 2 * sum(base * 2**i for i in range(levels)) + 2 * sum(base * 2**i for i in range(levels - 1))
    assert total - trainable == 2 * bn_channels


def test_paper_model_trainable_count():
    assert count_parameters(UNet3D()) == (366_593, 365_889)


@pytest.mark.parametrize("levels,base", sorted(PAPER_COUNTS))
def test_output_shape_equals_input_shape(levels, base):
    model = UNet3D(levels, base).eval()
    d = 2 ** (levels - 1)
    x = torch.zeros(2, 1, 2 * d, 3 * d, d)
    with torch.no_grad():
        assert model(x).shape == x.shape


def test_size_not_a_multiple_gives_clear_error():
    with pytest.raises(TomosegError, match="multiples of 8"):
        UNet3D()(torch.zeros(1, 1, 16, 16, 12))


def _seeded_tiny_model() -> UNet3D:
    """Weights from NumPy's seeded generator, so the golden values do not depend on torch's init."""
    rng = np.random.default_rng(0)
    model = UNet3D(levels=2, base_features=2)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        values = rng.standard_normal(tuple(tensor.shape)) * 0.3
        if name.endswith("running_var"):
            values = np.abs(values) + 0.5
        state[name] = torch.from_numpy(values.astype(np.float32))
    model.load_state_dict(state)
    return model.eval()


GOLDEN = [0.14537525, 0.15082344, 0.14276183, 0.15446112]


def test_seeded_tiny_model_gives_golden_values():
    model = _seeded_tiny_model()
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 1, 4, 4, 4)).astype(np.float32))
    with torch.no_grad():
        out = model(x)[0, 0].numpy()
    got = [out[0, 0, 0], out[1, 2, 3], out[3, 3, 3], out[2, 1, 0]]
    np.testing.assert_allclose(got, GOLDEN, rtol=1e-5, atol=1e-6)


def test_save_load_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = UNet3D(levels=3, base_features=4)
    # make the BatchNorm statistics non-trivial
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8, 8))
    model.eval()
    meta = {"voxel_size_nm": [29.33, 29.33, 29.33], "threshold": 127, "training": {"steps": 3}}
    path = tomoseg.save_model(model, tmp_path / "m.safetensors", meta)
    loaded = tomoseg.load_model(path)
    assert not loaded.training
    x = torch.randn(1, 1, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.metadata["architecture"] == {"levels": 3, "base_features": 4, "in_channels": 1, "out_channels": 1}
    assert loaded.metadata["voxel_size_nm"] == [29.33, 29.33, 29.33]
    assert loaded.metadata["normalization"]["method"] == "zscore"
    assert loaded.metadata["tomoseg_version"] == tomoseg.__version__
    assert len(loaded.sha256) == 64


def test_save_refuses_to_overwrite(tmp_path):
    path = tomoseg.save_model(UNet3D(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(TomosegError, match="already exists"):
        tomoseg.save_model(UNet3D(2, 2), path)


def test_pickle_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(UNet3D(2, 2).state_dict(), path)
    with pytest.raises(TomosegError, match="never unpickles"):
        tomoseg.load_model(path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tomoseg.save_model(UNet3D(3, 4), tmp_path / "m.safetensors")
    # rewrite the metadata to claim another architecture
    from safetensors.torch import load_file, save_file
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["tomoseg"])
    meta["architecture"]["base_features"] = 8
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={"tomoseg": json.dumps(meta)})
    with pytest.raises(TomosegError, match="do not fit the architecture"):
        tomoseg.load_model(bad)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(TomosegError):
        tomoseg.load_model(path)


def test_unknown_model_key_names_allowed_keys():
    with pytest.raises(TomosegError, match="allowed"):
        build_model({"levels": 4, "width": 8})


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_copy_folds_batchnorm_and_keeps_the_logits(channels_last):
    from tomoseg.model import inference_copy

    torch.manual_seed(0)
    model = UNet3D(levels=3, base_features=4)
    for module in model.modules():  # BatchNorms far from the identity, as trained ones are
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.3, 2)
            module.bias.data.uniform_(-0.5, 0.5)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = inference_copy(model, channels_last=channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    conv = fast.down[0][3].weight
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    # a model trained in the other memory order comes out in the order asked for
    other = inference_copy(model.to(memory_format=torch.channels_last_3d if not channels_last
                                    else torch.contiguous_format), channels_last=channels_last)
    assert other.down[0][3].weight.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    model.to(memory_format=torch.contiguous_format)
    # the model itself is untouched: still training, same BatchNorms and weights
    assert model.training and sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == 10
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    x = torch.randn(2, 1, 16, 24, 32)
    with torch.inference_mode():
        expected = model.eval()(x)
        got = fast(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.equal(got, UNet3D(levels=3, base_features=4).eval()(x))  # not some other network's output


def test_the_torch_backend_runs_the_folded_channels_last_copy():
    from tomoseg.inference.backends import TorchBackend

    model = UNet3D(levels=3, base_features=4)
    backend = TorchBackend(model, "cpu")
    assert backend.model is not model and model.training  # the caller's module is not changed
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in backend.model.modules())
    assert backend.model.head.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = np.random.default_rng(1).normal(size=(1, 1, 16, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.sigmoid(model.eval()(torch.from_numpy(x))).numpy()
    assert np.abs(backend(x) - expected).max() < 1e-5
