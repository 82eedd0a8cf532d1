"""The command line as a user meets it (review of the CLI, findings C4-C10, C13, C14): install hints, thread
settings, options misspelt, ``~`` in quoted paths, full temporary folders, provenance paths, help texts, ASCII
terminals, third-party noise."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tomoseg.cli import build_parser, main
from tomoseg.io import write_volume


def _child(code: str, *args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python (tomoseg importable as in this one), with ``env`` added."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


# ---------------------------------------------------------------- C4: one style for install hints
def test_export_onnx_without_onnx_names_the_extra(tmp_path, tiny_model_factory):
    run = _child("""
        import sys
        sys.modules["onnx"] = None  # as if not installed
        from tomoseg.cli import main
        sys.exit(main(["export-onnx", sys.argv[1], sys.argv[2]]))
        """, tiny_model_factory(2), str(tmp_path / "m.onnx"))
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == "tomoseg: error: export-onnx needs the onnx package: pip install 'tomoseg[onnx]'"
    assert not list(tmp_path.iterdir())


def test_every_extra_named_in_a_hint_exists():
    import tomllib
    from pathlib import Path

    from tomoseg.errors import EXTRAS, install_hint, needs_package

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for package, extra in EXTRAS.items():
        assert any(dep.startswith(package) for dep in extras[extra]), (package, extra)
    assert install_hint("hdf5plugin") == "pip install 'tomoseg[hdf5]'"
    assert str(needs_package("the openvino backend", "openvino", "or use --backend torch")) == \
        "the openvino backend needs the openvino package: pip install 'tomoseg[openvino]'; or use --backend torch"


def test_openvino_missing_names_the_extra(monkeypatch):
    from tomoseg.errors import TomosegError
    from tomoseg.inference import backends

    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    with pytest.raises(TomosegError, match=r"pip install 'tomoseg\[openvino\]'"):
        backends.resolve(backends.BackendConfig(backend="openvino", device="cpu"))


# ---------------------------------------------------------------- C5: TOMOSEG_THREADS and PyTorch
_THREADS_PROBE = """
    import sys
    import torch
    from tomoseg.inference import backends

    seen = []
    run_windows = backends.TorchBackend.run_windows

    def spy(self, windows, stats):
        seen.append(torch.get_num_threads())
        yield from run_windows(self, windows, stats)

    backends.TorchBackend.run_windows = spy
    from tomoseg.cli import main
    code = main(sys.argv[1:])
    print("threads during the run:", seen[0] if seen else None, "exit", code)
    """


@pytest.mark.parametrize("threads", [1, 3])
def test_tomoseg_threads_sets_pytorch_threads_in_a_run(tmp_path, tiny_model_factory, threads):
    write_volume(str(tmp_path / "in.tif"), np.random.default_rng(0).integers(0, 255, (16, 24, 24), np.uint8))
    run = _child(_THREADS_PROBE, "segment", str(tmp_path / "in.tif"), str(tmp_path / "p.zarr"), "--model",
                 tiny_model_factory(2), "--backend", "torch", "--device", "cpu", "--no-sample-mask", "-q",
                 env={"TOMOSEG_THREADS": str(threads)})
    assert run.returncode == 0, run.stderr
    assert f"threads during the run: {threads} exit 0" in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------- C7: ~ in a quoted path
def test_quoted_tilde_is_the_home_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans").mkdir()
    write_volume(str(tmp_path / "scans" / "v.npy"), np.zeros((3, 4, 5), np.uint8))
    assert main(["info", "~/scans/v.npy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [3, 4, 5]
    assert main(["phantom", "~/scans/ph.tif", "--labels", "~/scans/ph_l.tif", "--shape", "24", "48", "48"]) == 0
    assert (tmp_path / "scans" / "ph.tif").is_file() and not (tmp_path / "~").exists()


# ---------------------------------------------------------------- C9: option typos
def test_misspelt_option_gets_a_suggestion_and_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "in.tif", "out.zarr", "--tile-szie", "64"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tomoseg segment" in err
    assert "did you mean --tile-size?" in err


@pytest.mark.parametrize("argv", [["--deb", "info", "x.npy"], ["--quie", "info", "x.npy"],
                                  ["info", "x.npy", "--deb"]])
def test_abbreviated_global_flags_are_refused_not_dropped(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean --" in err and "usage: tomoseg info" in err


def test_global_flags_after_the_subcommand_still_work(tmp_path, capsys):
    from tomoseg.errors import TomosegError

    with pytest.raises(TomosegError):  # --debug: the error itself, with its traceback
        main(["info", str(tmp_path / "missing.npy"), "--debug"])
    assert main(["info", str(tmp_path / "missing.npy"), "-q"]) == 1


# ---------------------------------------------------------------- C13: help
def test_every_subcommand_help_lists_the_global_flags_and_defaults():
    parser = build_parser()
    for name, sub in parser.subcommands.items():
        text = sub.format_help()
        assert "--debug" in text and "-q, --quiet" in text, name
    segment = parser.subcommands["segment"].format_help()
    assert "(default: f32)" in " ".join(segment.split()) or "the default" in segment
    assert "VOXELS" in segment and "0 to 254" in " ".join(segment.split())


# ---------------------------------------------------------------- C8: a full temporary folder
def test_full_temporary_folder_is_said_naming_tmpdir(tmp_path, monkeypatch):
    import errno
    import tempfile

    from tomoseg.errors import TomosegError
    from tomoseg.io import create_volume

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    staged = scratch / "tomoseg-ome-x" / "objects.zarr"
    staged.parent.mkdir()

    class Full:
        def __setitem__(self, key, value):
            raise OSError(errno.ENOSPC, "No space left on device")

    with create_volume(str(staged), (4, 4, 4), np.uint32) as w:
        w._sink.array = Full()
        with pytest.raises(TomosegError) as exc:
            w[:, :, :] = np.zeros((4, 4, 4), np.uint32)
    message = str(exc.value)
    assert "the disk is full" in message and f"the temporary folder {scratch}" in message
    assert "point TMPDIR at a folder with more free space" in message


def test_temporary_folder_that_cannot_be_made_names_tmpdir(tmp_path, monkeypatch):
    import tempfile

    from tomoseg.errors import TomosegError
    from tomoseg.io.disk_space import make_temporary_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(TomosegError, match="point TMPDIR at"):
        make_temporary_folder("tomoseg-labels-")


# ---------------------------------------------------------------- C10: provenance paths
def test_provenance_records_the_working_directory_and_resolved_paths(tmp_path, monkeypatch, tiny_model_factory):
    (tmp_path / "data").mkdir()
    write_volume(str(tmp_path / "data" / "in.tif"), np.random.default_rng(0).integers(0, 255, (16, 24, 24),
                                                                                        np.uint8))
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "data/in.tif", "data/p.zarr", "--mask", "data/m.tif", "--model",
                 tiny_model_factory(2), "--no-sample-mask", "-q", "--backend", "torch"]) == 0
    record = json.loads((tmp_path / "data" / "p.zarr.provenance.json").read_text())
    assert record["input"] == "data/in.tif"  # as typed
    assert record["working_directory"] == str(tmp_path)
    resolved = record["resolved_paths"]
    assert resolved["input"] == str((tmp_path / "data" / "in.tif").resolve())
    assert resolved["output"] == str((tmp_path / "data" / "p.zarr").resolve())
    assert resolved["outputs"]["mask"] == str((tmp_path / "data" / "m.tif").resolve())
    mask_record = json.loads((tmp_path / "data" / "m.tif.provenance.json").read_text())
    assert mask_record["resolved_paths"]["output"] == str((tmp_path / "data" / "m.tif").resolve())


# ---------------------------------------------------------------- C14: ASCII terminals, third-party noise
def test_ascii_terminal_gets_x_not_escapes(tmp_path):
    write_volume(str(tmp_path / "v.npy"), np.zeros((3, 4, 5), np.uint8))
    run = _child("""
        import sys
        from tomoseg.cli import main
        sys.exit(main(["info", sys.argv[1], "--voxel-size", "30", "20", "10"]))
        """, str(tmp_path / "v.npy"), env={"PYTHONIOENCODING": "ascii"})
    assert run.returncode == 0, run.stderr
    assert "3 x 4 x 5" in run.stdout and "30 x 20 x 10 nm" in run.stdout
    assert "\\x" not in run.stdout


def test_read_only_home_brings_no_matplotlib_noise(tmp_path):
    write_volume(str(tmp_path / "m.npy"), np.pad(np.ones((4, 4, 4), np.uint8), 4))
    home = tmp_path / "home"
    home.write_text("")  # not a folder: nothing can be made in it (as a read-only HOME, also for root)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    run = subprocess.run([sys.executable, "-m", "tomoseg", "analyze", str(tmp_path / "m.npy"), "--out",
                          str(tmp_path / "res"), "-q"], capture_output=True, text=True,
                         env={**env, "HOME": str(home)}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "atplotlib" not in run.stderr and "mkdir" not in run.stderr, run.stderr
    assert (tmp_path / "res" / "figures").is_dir()


def test_openvino_telemetry_complaints_dropped_where_home_is_read_only(tmp_path, monkeypatch):
    import logging

    from tomoseg.cli import _quiet_third_parties

    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    root = logging.getLogger()
    before = list(root.filters)
    try:
        _quiet_third_parties()
        record = logging.makeLogRecord({"msg": "Failed to create openvino_telemetry file", "levelno": 30,
                                        "pathname": "/x/site-packages/openvino_telemetry/utils/cid.py"})
        other = logging.makeLogRecord({"msg": "another warning", "levelno": 30, "pathname": "/x/other.py"})
        assert not root.filter(record) and root.filter(other)
    finally:
        root.filters[:] = before


# ---------------------------------------------------------------- C6: configs, LICENSE, what the packages hold
def test_example_config_found_by_name_from_an_empty_folder(tmp_path, monkeypatch):
    from tomoseg.training.config import find_config, read_yaml

    monkeypatch.chdir(tmp_path)
    with pytest.warns(Warning, match="example config installed with tomoseg"):
        assert find_config("finetune-default.yaml").name == "finetune-default.yaml"
    with pytest.warns(Warning):
        assert read_yaml("configs/ablation.yaml")  # as the README writes it
    with pytest.warns(Warning):
        assert find_config("train-phantoms").name == "train-phantoms.yaml"


def test_example_config_printed_by_train_example(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--example", "finetune-default"])
    assert exc.value.code == 0
    assert "init: default" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["train", "--example", "list"])
    assert "finetune-default.yaml" in capsys.readouterr().out.splitlines()


def test_missing_config_lists_the_installed_examples(tmp_path, monkeypatch, cli_error):
    monkeypatch.chdir(tmp_path)
    line = cli_error(main(["train", "nosuch.yaml"]))
    assert "config file not found" in line and "finetune-default.yaml" in line


@pytest.mark.slow
def test_wheel_and_sdist_hold_configs_license_and_tests(tmp_path):
    """Built from a copy of the tree (not in place: no build/ left in the checkout), without network."""
    import shutil
    import tarfile
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tree = tmp_path / "tree"
    for name in ("src", "configs", "docs", "tests", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in",
                 "Makefile"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy2)(
            root / name, tree / name, **({"symlinks": True, "ignore": shutil.ignore_patterns(
                "__pycache__", "*.egg-info")} if (root / name).is_dir() else {}))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(tree), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("tomoseg-*.whl")))
    names = wheel.namelist()
    for config in ("finetune-default.yaml", "ablation.yaml", "train-phantoms.yaml", "default-model-v3.yaml"):
        assert f"tomoseg/configs/{config}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "tomoseg/py.typed" not in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: BSD-3-Clause" in wheel.read(meta).decode()
    sdist = subprocess.run([sys.executable, "-c", "from setuptools import build_meta as b; import sys; "
                            "print(b.build_sdist(sys.argv[1]))", str(tmp_path / "sdist")],
                           cwd=tree, capture_output=True, text=True, timeout=600)
    assert sdist.returncode == 0, sdist.stderr
    members = tarfile.open(tmp_path / "sdist" / sdist.stdout.split()[-1]).getnames()
    top = members[0].split("/")[0]
    for path in ("LICENSE", "configs/finetune-default.yaml", "docs/training.md", "tests/conftest.py",
                 "tests/io/test_contract.py", "src/tomoseg/configs/finetune-default.yaml"):
        assert f"{top}/{path}" in members, path
    assert not any("__pycache__" in m for m in members)
