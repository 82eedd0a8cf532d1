"""What --resume reads of the interrupted run's state."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tomoseg.inference import SegmentOptions, TilingConfig, engine
from tomoseg.io import write_volume

OPTS = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")


@pytest.fixture
def scan(tmp_path, monkeypatch):
    """A small volume in ``tmp_path/data`` (the current folder: ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return np.random.default_rng(5).normal(100, 20, (16, 40, 40)).astype(np.float32)


def _interrupted(monkeypatch, src, out, model, options) -> None:
    """``segment`` stopped by Ctrl-C once its work folder and state are written, before any tile."""
    def stop(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine, "run_tiles", stop)
        with pytest.raises(KeyboardInterrupt):
            engine.segment(src, out, model=model, options=options, progress=False)
    assert engine.work_dir_for(out).exists()


def _resumed(src, out, model, options) -> dict:
    record = engine.segment(src, out, model=model, options=replace(options, resume=True), progress=False)
    assert len(record["invocations"]) == 2  # continued, not started over
    return record


def test_a_resume_reads_the_state_once(tmp_path, scan, monkeypatch, random_model_path):
    write_volume("data/in.npy", scan)
    out = tmp_path / "p.zarr"
    _interrupted(monkeypatch, "data/in.npy", out, random_model_path, OPTS)
    plain, reads = Path.read_text, []

    def counted(self, *args, **kwargs):
        if self.name == "state.json":
            reads.append(self)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    _resumed("data/in.npy", out, random_model_path, OPTS)
    assert len(reads) == 1
