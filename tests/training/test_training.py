from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.io import write_volume
from tomoseg.table import read_csv
from tomoseg.training import config_from_dict, load_config, train
from tomoseg.training.config import dump_config
from tomoseg.training.losses import masked_loss


def tiny(tmp_path, name="run", **changes):
    cfg = {
        "output": str(tmp_path / name), "epochs": 2, "seed": 3,
        "model": {"levels": 3, "base_features": 4},
        "data": {"phantoms": {"count": 1, "shape": [32, 64, 64], "validation_count": 1, "seed": 5}},
        "sampling": {"patch_size": 32, "batch_size": 2, "steps_per_epoch": 3, "validation_patches": 2},
        "optim": {"learning_rate": 0.01},
    }
    for key, value in changes.items():
        cfg[key] = value
    return cfg


@pytest.mark.parametrize("precision", ["f32", "bf16"])  # bf16 autocast on the CPU: auto where it has bf16 units
def test_a_few_steps_lower_the_loss(tmp_path, precision):
    run = train(tiny(tmp_path, epochs=3, precision=precision), progress=False)
    metrics = read_csv(run / "metrics.csv")
    assert list(metrics["step"]) == [3, 6, 9]
    # each epoch says where its time went: data, compute (the steps) and validation, within the epoch's time
    parts = metrics["data_s"] + metrics["compute_s"] + metrics["validation_s"]
    assert (metrics["data_s"] > 0).all() and (metrics["compute_s"] > metrics["data_s"]).all()
    assert (parts <= metrics["seconds"] + 1e-3).all() and (parts > 0.5 * metrics["seconds"]).all()
    # the loss on the whole training volume, before (the same seeded start) and after, with BatchNorm on the
    # volume's own statistics: after 9 steps the running averages are only 61 % updated, and the loss through
    # them swings with float rounding (bf16, memory order) more than the weights' progress moves it
    from tomoseg.model import build_model
    from tomoseg.training import prepare_data

    cfg = config_from_dict(tiny(tmp_path, "unused", epochs=3))
    volume = prepare_data(cfg)[0][0]
    x = torch.from_numpy(volume.image)[None, None]
    y = torch.from_numpy(volume.labels)[None, None]
    torch.manual_seed(cfg.seed)
    start = build_model({"levels": 3, "base_features": 4}).train()
    trained = tomoseg.load_model(run / "last.safetensors").train()
    with torch.no_grad():
        before, after = (float(masked_loss(m(x), y)) for m in (start, trained))
    assert after < before
    for name in ("best.safetensors", "last.safetensors", "config.yaml", "learning_curve.png"):
        assert (run / name).exists()
    model = tomoseg.load_model(run / "best.safetensors")
    assert model.metadata["trained_on"] == {"device": "cpu", "precision": precision}
    assert model.metadata["training"]["config"]["seed"] == 3
    assert model.metadata["normalization"]["scope"] == "whole-volume"


def test_resume_continues_the_step_count_and_equals_an_uninterrupted_run(tmp_path):
    straight = train(tiny(tmp_path, "a"), progress=False)
    first = train(tiny(tmp_path, "b", epochs=1), progress=False)
    assert list(read_csv(first / "metrics.csv")["step"]) == [3]
    resumed = train(tiny(tmp_path, "b"), resume=True, progress=False)
    assert list(read_csv(resumed / "metrics.csv")["step"]) == [3, 6]
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(resumed / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_result_on_cpu(tmp_path):
    a = train(tiny(tmp_path, "a", epochs=1), progress=False)
    b = train(tiny(tmp_path, "b", epochs=1), progress=False)
    ta, tb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_existing_run_is_not_overwritten(tmp_path):
    train(tiny(tmp_path, epochs=1), progress=False)
    with pytest.raises(TomosegError, match="--resume"):
        train(tiny(tmp_path, epochs=1), progress=False)


def test_unannotated_voxels_get_no_gradient():
    torch.manual_seed(0)
    model = tomoseg.UNet3D(levels=2, base_features=2)
    x = torch.randn(1, 1, 8, 8, 8)
    labels = torch.randint(0, 2, (1, 1, 8, 8, 8), dtype=torch.uint8)
    labels[..., :4] = 255  # half not annotated
    for kind in ("bce", "dice_bce", "focal"):
        logits = model(x).detach().requires_grad_(True)
        masked_loss(logits, labels, kind=kind).backward()
        assert torch.all(logits.grad[..., :4] == 0), kind
        assert torch.any(logits.grad[..., 4:] != 0), kind
        # and the loss equals the loss of the annotated part alone
        with torch.no_grad():
            known = masked_loss(logits[..., 4:], labels[..., 4:], kind=kind)
            assert float(masked_loss(logits, labels, kind=kind)) == pytest.approx(float(known), rel=1e-6)
    # the model's gradients equal those of plain BCE over the annotated voxels alone
    from torch.nn import functional as F

    grads = []
    for loss_fn in (lambda out: masked_loss(out, labels),
                    lambda out: F.binary_cross_entropy_with_logits(out[..., 4:], labels[..., 4:].float())):
        model.zero_grad()
        loss_fn(model(x)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(*grads))


def test_config_round_trips(tmp_path):
    cfg = config_from_dict(tiny(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    examples = sorted(Path("configs").glob("*.yaml")) + sorted(Path("configs/experiments").glob("*.yaml"))
    assert len(examples) >= 10
    for example in examples:
        if example.name != "ablation.yaml":  # the ablation study has its own schema
            load_config(example)  # every shipped training config is valid


@pytest.mark.parametrize("written,expected_cpu,expected_cuda", [
    (None, True, False), ("auto", True, False), (True, True, True), ("off", False, False),
])
def test_channels_last_auto_is_on_for_the_cpu_only(tmp_path, written, expected_cpu, expected_cuda):
    from tomoseg.training.step import TrainStep, resolve_channels_last

    values = tiny(tmp_path) | ({} if written is None else {"performance": {"channels_last": written}})
    cfg = config_from_dict(values)
    assert cfg.performance.channels_last in ("auto", True, False)
    assert resolve_channels_last(cfg.performance.channels_last, torch.device("cpu")) is expected_cpu
    assert resolve_channels_last(cfg.performance.channels_last, torch.device("cuda")) is expected_cuda
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    step = TrainStep(tomoseg.UNet3D(levels=3, base_features=4), cfg, torch.device("cpu"))
    weight = step.model.down[0][3].weight  # 4 input channels: the two memory orders differ
    assert weight.is_contiguous(memory_format=torch.channels_last_3d) is expected_cpu
    x, y = torch.randn(2, 1, 16, 16, 16), (torch.rand(2, 1, 16, 16, 16) > 0.9).float()
    assert torch.isfinite(step(x, y, 0.0))


def test_channels_last_accepts_only_a_boolean_or_auto(tmp_path):
    from tomoseg.training.config import PerformanceConfig

    with pytest.raises(TomosegError, match="channels_last.*true or false or auto"):
        config_from_dict(tiny(tmp_path) | {"performance": {"channels_last": "fast"}})
    with pytest.raises(TomosegError, match="channels_last.*true, false or auto"):
        PerformanceConfig(channels_last="fast")


@pytest.mark.parametrize("values,match", [
    ({"epochz": 3}, "unknown config key.*epochz.*allowed"),
    ({"sampling": {"patch": 32}}, r"sampling\.patch.*allowed"),
    ({"data": {"phantoms": {"count": 1, "colour": 2}}}, r"data\.phantoms\.colour"),
    ({"data": {}}, "training set is empty"),
    ({"optim": {"loss": "mse"}}, "optim.loss"),
])
def test_bad_config(tmp_path, values, match):
    base = {"data": {"phantoms": {"count": 1}}}
    base.update(values)
    with pytest.raises(TomosegError, match=match):
        config_from_dict(base)


def _pair(tmp_path, image, labels, name="p"):
    write_volume(str(tmp_path / f"{name}_img.npy"), image)
    write_volume(str(tmp_path / f"{name}_lab.npy"), labels)
    return {"image": str(tmp_path / f"{name}_img.npy"), "labels": str(tmp_path / f"{name}_lab.npy")}


@pytest.mark.parametrize("case,match", [
    ("shape", "differ in shape"), ("values", "labels hold values"), ("small", "smaller than the patch size"),
])
def test_bad_training_data_fails_before_training(tmp_path, case, match):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(32, 32, 32)).astype(np.float32)
    labels = (rng.random((32, 32, 32)) > 0.9).astype(np.uint8)
    if case == "shape":
        labels = labels[:, :, :30]
    elif case == "values":
        labels[0, 0, 0] = 7
    labels[-1, -1, -1] = 255  # one voxel not annotated: no partial-annotation warning for the salt labels
    patch = 64 if case == "small" else 32
    cfg = {"output": str(tmp_path / "run"), "data": {"volumes": [_pair(tmp_path, image, labels)]},
           "sampling": {"patch_size": patch}}
    with pytest.raises(TomosegError, match=match):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_train_on_own_volumes_with_sparse_labels_through_the_cli(tmp_path, capsys):
    ph = tomoseg.make_phantom((32, 64, 64), rng=1)
    sparse = np.full(ph.labels.shape, 255, np.uint8)
    sparse[10:14] = ph.labels[10:14]  # four annotated slices
    pair = _pair(tmp_path, ph.image, sparse)
    import yaml

    cfg = {"output": str(tmp_path / "run"), "epochs": 1, "model": {"levels": 3, "base_features": 4},
           "data": {"volumes": [pair]}, "sampling": {"patch_size": 32, "steps_per_epoch": 2, "validation_patches": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["-q", "train", str(tmp_path / "c.yaml")]) == 0
    assert (tmp_path / "run" / "best.safetensors").exists()
    assert main(["-q", "train", str(tmp_path / "c.yaml"), "--epochs", "2", "--resume"]) == 0
    assert list(read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2]


def test_paper_sampling_mode_and_per_patch_normalization(tmp_path):
    cfg = tiny(tmp_path, epochs=1)
    cfg["sampling"] = {"mode": "paper", "patch_size": 16, "batch_size": 2, "steps_per_epoch": 2,
                       "validation_patches": 2}
    cfg["data"]["normalization"] = "patch"
    run = train(cfg, progress=False)
    assert tomoseg.load_model(run / "last.safetensors").metadata["normalization"]["scope"] == "patch"


def test_cli_init_fine_tunes_the_default_model(tmp_path, capsys):
    import yaml

    cfg = tiny(tmp_path, epochs=1, model={"levels": 4, "base_features": 8},
               optim={"learning_rate": 1e-12})  # a step this small leaves the weights as they were
    cfg["sampling"] = {**cfg["sampling"], "steps_per_epoch": 1}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["-q", "train", str(tmp_path / "c.yaml"), "--init", "default"]) == 0
    tuned = load_file(str(tmp_path / "run" / "last.safetensors"))
    shipped = load_file(str(tomoseg.checkpoint.default_model_path()))
    conv = next(k for k in shipped if k.endswith("weight") and shipped[k].ndim == 5)
    assert torch.allclose(tuned[conv], shipped[conv], atol=1e-6)
    # a model of another architecture is refused, naming the mismatch
    cfg["model"] = {"levels": 3, "base_features": 4}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["-q", "train", str(tmp_path / "d.yaml"), "--init", "default", "--output", str(tmp_path / "r3")]) == 1
    assert "init model has levels 4" in capsys.readouterr().err


def test_data_paths_are_found_beside_the_config_file(tmp_path, monkeypatch):
    """A config written next to its data, run from another folder: relative data paths that do not exist from
    the current folder are taken beside the config (HDF5 datasets kept); paths found from the current folder,
    absolute paths and the shipped models' names stay as written."""
    import yaml

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for name in ("scan.tif", "labels.tif", "vol.h5"):
        (project / "data" / name).write_bytes(b"")
    here = tmp_path / "elsewhere"
    (here / "data").mkdir(parents=True)
    (here / "data" / "labels.tif").write_bytes(b"")  # found from the current folder: kept as written
    config = project / "train.yaml"
    config.write_text(yaml.safe_dump({"init": "default", "data": {
        "volumes": [{"image": "data/scan.tif", "labels": "data/labels.tif"}],
        "validation_volumes": [{"image": "data/vol.h5:/entry/image", "labels": str(project / "data/labels.tif")}]}}))
    monkeypatch.chdir(here)
    cfg = load_config(config)
    assert cfg.data.volumes == [{"image": str(project / "data/scan.tif"), "labels": "data/labels.tif"}]
    assert cfg.data.validation_volumes == [{"image": str(project / "data/vol.h5") + ":/entry/image",
                                            "labels": str(project / "data/labels.tif")}]
    assert cfg.init == "default"


def test_swapped_image_and_labels_are_named_as_such(tmp_path):
    """The labels' problem names the labels file (it named the image), and where the image holds only label
    values, the message asks whether the two are swapped."""
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, size=(32, 32, 32)).astype(np.uint8)
    labels = (rng.random((32, 32, 32)) > 0.9).astype(np.uint8)
    entry = _pair(tmp_path, image, labels)
    swapped = {"image": entry["labels"], "labels": entry["image"]}
    cfg = {"output": str(tmp_path / "run"), "data": {"volumes": [swapped]}, "sampling": {"patch_size": 32}}
    with pytest.raises(TomosegError, match=r"\(the labels of .*\): labels hold values .* are image and labels "
                                           r"swapped\?") as info:
        train(cfg, progress=False)
    assert str(info.value).startswith(str(entry["image"]))


def test_train_takes_a_config_file_path_as_the_cli_does(tmp_path):
    """A9: tomoseg.train("config.yaml") was refused ("config section '(the top level)' must be a mapping"): a path
    (str or Path) is read as `tomoseg train CONFIG` reads it, and trains the same weights as the dict."""
    import yaml

    from tomoseg.checkpoint import load_model

    cfg = tiny(tmp_path, name="from_file", epochs=1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    a = train(str(tmp_path / "c.yaml"), progress=False)
    b = train(tiny(tmp_path, name="from_dict", epochs=1), progress=False)
    wa, wb = load_model(a / "last.safetensors").state_dict(), load_model(b / "last.safetensors").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_progress_in_a_log_is_plain_lines_with_the_epoch_and_loss(tmp_path, capsys):
    """Review C2: train wrote a tqdm bar into logs (hundreds of \\r fragments a minute, UTF-8 block characters).
    Now tomoseg's progress: plain lines (here the first and the last, at 100 %), with the epoch and the recent
    loss in the description, the epoch lines kept; a resumed run says what was done before."""
    import re

    sampling = {"patch_size": 32, "batch_size": 1, "steps_per_epoch": 20, "validation_patches": 1}
    train(tiny(tmp_path, epochs=1, sampling=sampling), progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and err.isascii(), err
    bar = [line for line in err.splitlines() if line.startswith("train epoch")]
    assert bar[0].startswith("train epoch 1/1:   0% (0 steps of 20 steps), starting"), err
    assert re.match(r"train epoch 1/1, loss \d\.\d{4}: 100% \(20 steps of 20 steps\), [\d.]+ steps?/s", bar[-1]), err
    assert len(bar) == 2
    assert re.search(r"^epoch 1/1: train [\d.]+, val ", err, re.MULTILINE), err

    train(tiny(tmp_path, epochs=2, sampling=sampling), resume=True, progress=True)
    bar = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train epoch")]
    assert bar[0].startswith("train epoch 2/2 (resumed: 50% done before):  50% (20 steps of 40 steps), starting")
    assert re.match(r"train epoch 2/2, loss \d\.\d{4} \(resumed: 50% done before\): 100%", bar[-1]), bar


def test_a_stop_signal_that_something_swallowed_stops_training_before_the_next_step(tmp_path, swallowed_sigterm):
    """A SIGTERM (a job's time limit) raised where Python ignores exceptions (a weakref callback, a finalizer)
    was lost: training ran to the end of its budget. The loop checks for a recorded signal before each step
    (interrupt.py's design, as segment between tiles), so it stops; --resume continues from the last epoch."""
    from tomoseg import interrupt

    with pytest.raises(interrupt.Stopped):
        train(tiny(tmp_path), progress=False)
    assert not (tmp_path / "run" / "last.safetensors").exists()  # no step taken, no epoch saved
