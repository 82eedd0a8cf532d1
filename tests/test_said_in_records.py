"""What a run said (notes and warnings) is kept in its records: segment's provenance, analyze's summary.json,
evaluate's evaluation.json and track's summary.json list it, so that an assumption (a z spacing a reader took
for granted, a voxel size unknown) is on record, not only on a terminal that is gone."""

import json
import warnings

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.errors import TomosegNote, TomosegWarning, note, recording_said, said, warn
from tomoseg.io.voxel_sizes import UNKNOWN_NOTE


def test_notes_and_warnings_are_kept_once_each_in_order_within_a_recording():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        note("outside: not kept")
        with recording_said() as kept:
            note("a z spacing\n   was assumed")
            warn("gray values look odd")
            note("a z spacing was assumed")  # said again: kept once
            with recording_said() as inner:  # a public function within a command: one list
                note("inner")
            assert inner is kept
            assert said() == ["note: a z spacing was assumed", "warning: gray values look odd", "note: inner"]
        assert said() == []


def test_what_tomosegs_worker_threads_say_is_kept_too():
    """Python's thread pools run a task outside the submitter's context: a note said on a reader thread (the
    statistics pass, the chunk cache, the mask's arithmetic) was printed but not kept. tomoseg's pools
    (thread_pool.ThreadPool, used by read_ahead and the others) run their tasks in the submitter's context."""
    from tomoseg.io.blocks import read_ahead

    def read(i):
        note(f"block {i % 3} assumed something")
        return i

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with recording_said():
            assert [v for _, v in read_ahead(range(12), read, threads=4)] == list(range(12))
            kept = said()
    assert sorted(kept) == [f"note: block {i} assumed something" for i in range(3)]


def test_a_note_is_still_an_ordinary_warning_while_recorded():
    with recording_said(), pytest.warns(TomosegNote, match="assumed"):
        note("assumed")
    with recording_said(), pytest.warns(TomosegWarning, match="odd"):
        warn("odd")


def _imagej_stack_without_z_spacing(path, rng):
    """As ImageJ writes a stack whose voxel depth is 1: x and y calibrated (30 nm), no ``spacing=``."""
    data = rng.integers(60, 200, size=(16, 48, 48), dtype=np.uint8)
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.03, 1 / 0.03), metadata={"unit": "um", "axes": "ZYX"})


def test_segment_records_the_z_spacing_the_reader_assumed(tmp_path, tiny_model, rng, capsys):
    scan = tmp_path / "scan.tif"
    _imagej_stack_without_z_spacing(scan, rng)
    assert main(["segment", str(scan), str(tmp_path / "p.zarr"), "--model", tiny_model, "-q"]) == 0
    notes = json.loads((tmp_path / "p.zarr.provenance.json").read_text())["notes"]
    assert any(n.startswith("note: ") and "no z spacing" in n and "--voxel-size" in n for n in notes), notes
    # the same said on stderr
    assert "no z spacing" in capsys.readouterr().err
    # with --voxel-size nothing is assumed, and nothing recorded about it
    assert main(["segment", str(scan), str(tmp_path / "q.zarr"), "--model", tiny_model, "-q",
                 "--voxel-size", "30", "30", "30"]) == 0
    notes = json.loads((tmp_path / "q.zarr.provenance.json").read_text())["notes"]
    assert not any("z spacing" in n for n in notes), notes


def test_segment_from_python_records_its_notes_too(tmp_path, tiny_model, rng):
    import tomoseg

    scan = tmp_path / "scan.tif"
    _imagej_stack_without_z_spacing(scan, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = tomoseg.segment(scan, tmp_path / "p.npy", model=tiny_model, progress=False)
    assert any("no z spacing" in n for n in record["notes"]), record["notes"]
    assert said() == []  # the recording ended with the call


def test_analyze_and_evaluate_record_what_they_said(phantom_cwd):
    # a mask in .npy has no voxel size: analyze says so, and how it read the file
    np.save("mask.npy", (tifffile.imread("mask.tif") > 0).astype(np.uint8))
    assert main(["analyze", "mask.npy", "--out", "res", "-q"]) == 0
    notes = json.loads((phantom_cwd / "res" / "summary.json").read_text())["notes"]
    assert "note: " + UNKNOWN_NOTE in notes
    assert any(n.startswith("note: mask.npy: read as") for n in notes), notes
    assert main(["evaluate", "mask.npy", "mask.tif", "--out", "ev", "-q"]) == 0
    notes = json.loads((phantom_cwd / "ev" / "evaluation.json").read_text())["notes"]
    assert any(n.startswith("note: mask.npy: read as") for n in notes), notes


def test_the_report_shows_what_the_runs_said_warnings_first(phantom_cwd):
    import html

    np.save("mask.npy", (tifffile.imread("mask.tif") > 0).astype(np.uint8))
    assert main(["analyze", "mask.npy", "--out", "res", "--report", "-q"]) == 0
    page = (phantom_cwd / "res" / "report.html").read_text()
    assert "<h2>Notes and warnings</h2>" in page
    assert html.escape("note: " + UNKNOWN_NOTE) in page
    summary = json.loads((phantom_cwd / "res" / "summary.json").read_text())
    summary["notes"].append("warning: a test warning")
    (phantom_cwd / "res" / "summary.json").write_text(json.dumps(summary))
    from tomoseg.report import build_report

    page = build_report(phantom_cwd / "res", output=phantom_cwd / "again.html").read_text()
    section = page[page.index("<h2>Notes and warnings</h2>"):]
    assert section.index("warning: a test warning") < section.index("note: voxel size unknown")
