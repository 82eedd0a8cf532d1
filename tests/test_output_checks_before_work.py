"""Outputs checked before the work (D4), evaluate's folder against its inputs and system errors that name the
file (D7), outputs into a folder of slices (D8)."""

import re
import subprocess
import sys

import numpy as np
import tifffile

from tomoseg.cli import main




def _limited(argv, limit: int) -> subprocess.CompletedProcess:
    """``tomoseg ARGV`` under a limit on file size (ulimit -f, in bytes), SIGXFSZ ignored as batch jobs have it
    (a write past the limit then fails with EFBIG)."""
    script = ("import resource, signal, sys\nfrom tomoseg.cli import main\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
              f"sys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ D4: label outputs checked before the work
def test_analyze_labels_that_cannot_be_written_are_refused_before_the_analysis(phantom_cwd):
    """D4: --labels was checked for room only when written, after the whole analysis (the table already
    written). The label TIFF (24x64x64 uint16, 192 KiB) past a 150 KB limit on file size: refused first."""
    out = _limited(["analyze", "mask.tif", "--labels", "l.tif", "--csv", "o.csv"], 150_000)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "tomoseg: error: l.tif: the label image needs a file of 192.0 KiB, past the limit on file size" \
        in out.stderr and "ulimit -f" in out.stderr
    assert "analyze:" not in out.stderr and "objects kept" not in out.stdout  # no analysis ran
    assert sorted(p.name for p in phantom_cwd.iterdir()) == ["img.tif", "img.tif.provenance.json", "mask.tif",
                                                             "mask.tif.provenance.json"]


def test_segment_labels_that_cannot_be_written_are_refused_before_the_segmentation(phantom_cwd, tiny_model):
    out = _limited(["segment", "img.tif", "p.zarr", "--labels", "l.npy", "--model", tiny_model, "--backend",
                    "torch", "--device", "cpu", "-q"], 300_000)  # uint32 labels: 384 KiB
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "tomoseg: error: l.npy: the label image needs a file of 384.0 KiB, past the limit" in out.stderr
    assert sorted(p.name for p in phantom_cwd.iterdir()) == ["img.tif", "img.tif.provenance.json", "mask.tif",
                                                             "mask.tif.provenance.json"]  # no map, no work folder


# ------------------------------------------------------------------ D7
def test_evaluate_out_inside_the_predictions_folder_of_slices_is_refused(phantom_cwd, tiny_model, cli_error):
    """D7: evaluate --out could be its prediction's own folder of slices: it wrote its results into the input
    and replaced the folder's .tomoseg marker (a later segment --overwrite then refused the folder)."""
    assert main(["segment", "img.tif", "p.zarr", "--mask", "msl", "--model", tiny_model, "--backend", "torch",
                 "--device", "cpu", "-q"]) == 0
    before = {p.name: p.read_bytes() for p in (phantom_cwd / "msl").iterdir()}
    for out in ("msl", "msl/res"):
        line = cli_error(main(["evaluate", "msl", "mask.tif", "--out", out, "--overwrite", "-q"]))
        assert "is inside the input folder msl" in line, line
    assert {p.name: p.read_bytes() for p in (phantom_cwd / "msl").iterdir()} == before


def test_a_file_too_large_is_named_with_what_to_do(phantom_cwd):
    """D7: a write past the limit on file size ended in "[Errno 27] File too large (run with --debug for
    details)", naming neither the file nor what to do. The error names no file here (a table's write): the
    command's outputs are named instead."""
    out = _limited(["analyze", "mask.tif", "--csv", "o.csv", "--out", "res"], 2_000)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    line = next(x for x in out.stderr.splitlines() if x.startswith("tomoseg: error:"))
    assert line.startswith("tomoseg: error: a file grew past the largest size allowed while writing an output "
                           "(--csv o.csv, --out res) (the limit on file size of this shell or job: ulimit -f; "), line
    assert "raise the limit or write to another disk, and run again" in line


def test_system_errors_keep_the_resume_hint(tmp_path, monkeypatch):
    """Where the run left its work folder (finished tiles); without one, the same command starts again."""
    import argparse
    import errno

    from tomoseg.cli import _system_error
    from tomoseg.inference.engine import work_dir_for

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(command="segment", output="prob.tif", mask=None, labels=None, threshold=127)
    assert _system_error(OSError(errno.ENOSPC, "No space left on device"), args).endswith(
        "; nothing was kept to resume from: the same command (without --resume) starts again")
    work_dir_for("prob.tif").mkdir()
    assert _system_error(OSError(errno.EROFS, "Read-only file system", "w/prob.tif.partial"), args) == (
        "the file system is read-only writing w/prob.tif.partial; write to a folder on a writable disk, and run "
        "again; the same command with --resume continues where it stopped")
    assert _system_error(OSError(errno.ENOSPC, "No space left on device"), args) == (
        "the disk is full while writing an output (prob.tif); no finished output was put in place. Free space "
        "and run again; the same command with --resume continues where it stopped")


# ------------------------------------------------------------------ D8
def test_an_output_into_a_folder_of_slices_is_refused(phantom_cwd, cli_error):
    """D8: analyze --labels slices/lab.tif put a 3D TIFF into a user's folder of 2D slices: tomoseg (and
    Fiji's Image Sequence) no longer read the folder as the volume."""
    slices = phantom_cwd / "slices"
    slices.mkdir()
    for z in range(4):
        tifffile.imwrite(slices / f"scan_{z:04d}.tif", np.full((64, 64), z, np.uint8))
    before = sorted(p.name for p in slices.iterdir())
    for option, name in (("--labels", "lab.tif"), ("--labels", "lab.zarr"), ("--csv", "o.csv")):
        line = cli_error(main(["analyze", "mask.tif", option, f"slices/{name}", "-q"]))
        pattern = rf"slices/{re.escape(name)}: its folder slices holds a volume as 2D slices \(scan_000\d\.tif \.\.\.\); "
        assert re.search(pattern + "a file written there would change that volume", line), line
    assert sorted(p.name for p in slices.iterdir()) == before
