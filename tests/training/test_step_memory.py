"""A training step too large for the memory is refused before any phantom is generated or volume read, naming a
patch and a batch size that fit; an allocation that fails in a step (a GPU's, or the CPU's) is one line with what
to change, not PyTorch's traceback."""

from pathlib import Path

import pytest
import torch

from tomoseg.training import config_from_dict
from tomoseg.training import step as training_step
from tomoseg.training.step_memory import check_step_memory, step_bytes

from test_config_sweep2 import no_generation, one_error, run_cli, tiny  # noqa: F401 (no_generation: a fixture)


def test_step_bytes_grows_with_the_patch_voxels():
    assert step_bytes(8, 192) > 20 * 2**30  # 192³ x 8: about 22 GiB on the CPU
    assert step_bytes(2, 96) < 1 * 2**30
    assert step_bytes(4, 96) - step_bytes(2, 96) == pytest.approx(2 * (step_bytes(2, 96) - step_bytes(1, 96)))
    assert step_bytes(2, 96, base_features=16) - step_bytes(0, 96) == 2 * (step_bytes(2, 96) - step_bytes(0, 96))


def test_a_step_larger_than_the_memory_is_refused_before_the_data(tmp_path, capsys, monkeypatch, no_generation):
    from tomoseg import host_memory

    monkeypatch.setattr(host_memory, "available_memory", lambda: 1 << 30)  # 1 GiB for this process
    cfg = tiny(tmp_path, model={"levels": 4, "base_features": 8},
               sampling={"patch_size": 96, "batch_size": 4, "steps_per_epoch": 1, "validation_patches": 1})
    line = one_error(*run_cli(tmp_path, capsys, cfg))
    assert "a training step of 4 patches of 96³ voxels needs about 1.5 GiB of memory on the CPU and 1.0 GiB" in line
    assert "sampling.patch_size: 80 or sampling.batch_size: 2" in line
    assert not (tmp_path / "run").exists()
    # what it names fits
    for fix in ({"patch_size": 80, "batch_size": 4}, {"patch_size": 96, "batch_size": 2}):
        check_step_memory(config_from_dict({**cfg, "sampling": {**cfg["sampling"], **fix}}), torch.device("cpu"),
                          available=1 << 30)


def test_the_check_is_for_the_cpu_only():
    cfg = config_from_dict(tiny(Path("/tmp"), sampling={"patch_size": 192, "batch_size": 8}))
    check_step_memory(cfg, torch.device("cuda"), available=1 << 30)  # a GPU's own error is said (below)
    with pytest.raises(Exception, match=r"needs about 5.5 GiB .* use sampling.patch_size: 96 or sampling.batch_size: 1"):
        check_step_memory(cfg, torch.device("cpu"), available=1 << 30)


@pytest.mark.parametrize("error", [
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 21474836480 bytes."),
    MemoryError(),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total capacity)"),
])
def test_an_allocation_failing_in_a_step_is_one_line(tmp_path, capsys, monkeypatch, error):
    def step(self, x, y, progress):
        raise error

    monkeypatch.setattr(training_step.TrainStep, "__call__", step)
    line = one_error(*run_cli(tmp_path, capsys, tiny(tmp_path), "-q"))
    assert "out of memory in a training step on the cpu device (1 patch of 16³ voxels" in line
    assert "use a smaller sampling.patch_size or sampling.batch_size" in line


def test_other_errors_in_a_step_are_not_taken_for_memory(tmp_path, monkeypatch):
    def step(self, x, y, progress):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(training_step.TrainStep, "__call__", step)
    from tomoseg.training import train

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train(tiny(tmp_path), progress=False)
