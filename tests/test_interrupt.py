"""Ctrl-C that something swallowed is raised again at the next tile."""

import signal

import pytest

import tomoseg
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.interrupt import catching_ctrl_c, raise_if_interrupted


def test_a_swallowed_ctrl_c_is_raised_again():
    with catching_ctrl_c():
        handler = signal.getsignal(signal.SIGINT)
        assert handler is not signal.default_int_handler
        try:
            handler(signal.SIGINT, None)  # what Ctrl-C does, and a library that catches everything
        except BaseException:  # noqa: BLE001
            pass
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    raise_if_interrupted()  # and forgotten after the block


def test_segment_stops_at_the_next_tile_after_a_swallowed_ctrl_c(tmp_path, monkeypatch):
    from tomoseg.inference import engine

    image = tomoseg.make_phantom((32, 64, 64), rng=3).image
    tomoseg.write_volume(str(tmp_path / "in.tif"), image, voxel_size=(29.33,) * 3)
    plain, calls = engine.write_done_marker, []

    def marker(work, tile, counts):  # after the first tile, a Ctrl-C that someone swallows
        plain(work, tile, counts)
        calls.append(tile)
        if len(calls) == 1:
            try:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass

    monkeypatch.setattr(engine, "write_done_marker", marker)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    with catching_ctrl_c(), pytest.raises(KeyboardInterrupt):
        segment(tmp_path / "in.tif", tmp_path / "p.zarr", options=opts, progress=False)
    assert 1 <= len(calls) < 16  # stopped long before the 32 tiles
    assert not (tmp_path / "p.zarr").exists()
    assert engine.work_dir_for(tmp_path / "p.zarr").exists()  # the work folder stays: --resume goes on
