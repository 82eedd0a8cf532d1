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
