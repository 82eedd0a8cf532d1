import numpy as np
import pytest

from tomoseg.inference.normalization import Stats, normalize, volume_stats
from tomoseg.inference.tiling import TilingConfig, read_padded, pad_to_divisor, tile_grid
from tomoseg.errors import TomosegError


@pytest.mark.parametrize("shape", [(100, 64, 64), (7, 33, 129), (64, 64, 64), (1, 9, 200)])
@pytest.mark.parametrize("tile,halo", [(32, 8), (64, 16), (128, 0)])
def test_cores_partition_the_volume_and_reads_are_aligned(shape, tile, halo):
    tiles = tile_grid(shape, TilingConfig(tile_size=tile, halo=halo), 8)
    cover = np.zeros(shape, np.int32)
    read_shapes = set()
    for t in tiles:
        cover[t.core] += 1
        for c, r in zip(t.core, t.read):
            assert r.start % 8 == 0 and (r.stop - r.start) % 8 == 0
            assert r.start <= c.start and c.stop <= r.stop
        read_shapes.add(tuple(r.stop - r.start for r in t.read))
    assert np.all(cover == 1)
    assert len(read_shapes) == 1  # one compiled model serves every tile


def test_halo_context_is_kept_inside_the_volume():
    tiles = tile_grid((256, 256, 256), TilingConfig(tile_size=64, halo=16), 8)
    for t in tiles:
        for c, r in zip(t.core, t.read):
            assert c.start - r.start >= 16 or r.start == 0
            assert r.stop - c.stop >= 16 or r.stop == 256


def test_stitching_is_exact_with_a_known_model(rng):
    """f(x) = 2x: the stitched tiles must equal 2x of the normalized whole volume."""
    image = rng.normal(100, 20, (37, 50, 45)).astype(np.float32)
    stats = volume_stats(image)
    out = np.zeros(image.shape, np.float32)
    for t in tile_grid(image.shape, TilingConfig(tile_size=16, halo=8), 8):
        window = normalize(read_padded(image, t.read, image.shape), stats)
        out[t.core] = (2 * window)[t.core_in_read]
    np.testing.assert_array_equal(out, 2 * normalize(image, stats))


def test_read_padded_matches_whole_volume_padding(rng):
    image = rng.normal(size=(13, 21, 10)).astype(np.float32)
    whole = pad_to_divisor(image, 8)
    assert whole.shape == (16, 24, 16)
    for t in tile_grid(image.shape, TilingConfig(tile_size=8, halo=8), 8):
        np.testing.assert_array_equal(read_padded(image, t.read, image.shape), whole[t.read])


def test_streaming_statistics_equal_numpy(rng):
    image = rng.normal(50, 7, (30, 20, 20)).astype(np.float32)
    stats = volume_stats(image, slab_voxels=1000)
    assert stats.mean == pytest.approx(float(image.astype(np.float64).mean()), rel=1e-12)
    assert stats.std == pytest.approx(float(image.astype(np.float64).std()), rel=1e-10)
    sampled = volume_stats(image, method="sample", sample_fraction=0.5)
    assert sampled.method == "sample" and sampled.mean == pytest.approx(50, abs=1)


@pytest.mark.parametrize("torch_loaded", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_statistics_are_exact_with_either_histogram(rng, monkeypatch, dtype, torch_loaded):
    """8- and 16-bit volumes: the histogram path (PyTorch's bincount where PyTorch is loaded, NumPy's over voxel
    pairs where not, odd block sizes included) gives NumPy's float64 mean and s.d., on several threads."""
    if not torch_loaded:
        monkeypatch.setitem(__import__("sys").modules, "torch", None)
    image = rng.integers(0, 256 if dtype == np.uint8 else 4000, (31, 17, 19)).astype(dtype)
    for slab in (1000, 10**6):  # many blocks (odd sizes) on reader threads, and one
        stats = volume_stats(image, slab_voxels=slab)
        assert stats.voxels == image.size
        assert stats.mean == pytest.approx(float(image.astype(np.float64).mean()), rel=1e-12)
        assert stats.std == pytest.approx(float(image.astype(np.float64).std()), rel=1e-10)


def test_constant_volumes_and_volumes_without_data_are_refused():
    """Constant, or constant but for a NaN (no data, left out: review G9): nothing to segment. Every voxel
    NaN or the fill value: no data at all."""
    image = np.ones((8, 8, 8), np.float32)
    with pytest.raises(TomosegError, match="constant"):
        volume_stats(image)
    image[3, 4, 5] = np.nan
    with pytest.raises(TomosegError, match="constant"):
        volume_stats(image)
    image[:] = np.nan
    image[0] = -1
    with pytest.raises(TomosegError, match="holds no data: every voxel read is NaN or infinite, or the fill value -1"):
        volume_stats(image, fill=-1)


@pytest.mark.parametrize("kwargs", [{"tile_size": 4}, {"halo": -8}, {"pad_mode": "wrap"}])
def test_bad_tiling(kwargs):
    with pytest.raises(TomosegError):
        TilingConfig(**kwargs)


@pytest.mark.parametrize("shape", [(128, 256, 256), (64, 256, 256), (40, 100, 92), (3, 5, 7)])
def test_a_volume_that_fits_one_window_is_one_pass(shape):
    tiles = tile_grid(shape, TilingConfig(), 8)
    assert len(tiles) == 1
    assert tuple(r.stop for r in tiles[0].read) == tuple(-(-s // 8) * 8 for s in shape)
    assert tiles[0].core == tuple(slice(0, s) for s in shape)


@pytest.mark.parametrize("shape", [(16, 600, 600), (128, 512, 512), (300, 40, 1000), (512, 512, 512)])
@pytest.mark.parametrize("tile,halo", [(64, 16), (128, 48)])
def test_windows_fit_the_volume_and_the_budget(shape, tile, halo):
    """Thin volumes are not padded to a cube, no window reaches past the padded volume, one window shape."""
    config = TilingConfig(tile_size=tile, halo=halo)
    tiles = tile_grid(shape, config, 8)
    padded = tuple(-(-s // 8) * 8 for s in shape)
    shapes = {tuple(r.stop - r.start for r in t.read) for t in tiles}
    assert len(shapes) == 1
    (window,) = shapes
    assert all(w <= p for w, p in zip(window, padded))
    assert np.prod(window) <= config.window_voxels(8)
    cover = np.zeros(shape, np.uint8)
    chunk = config.chunk(8)
    for t in tiles:
        cover[t.core] += 1
        for c, r, s, p in zip(t.core, t.read, shape, padded):
            assert 0 <= r.start and r.stop <= p and r.start % 8 == 0
            assert c.start % chunk == 0 and (c.stop % chunk == 0 or c.stop == s)  # whole output chunks
            assert c.start - r.start >= halo or r.start == 0
            assert r.stop - c.stop >= halo or r.stop == p
    assert np.all(cover == 1)
    # no more network work than the old fixed cubes of (tile + 2 halo) per axis
    old = np.prod([-(-s // tile) * min(tile + 2 * halo, p) for s, p in zip(shape, padded)])
    assert len(tiles) * np.prod(window) <= old


def test_region_tiles_cover_only_the_region():
    shape = (100, 300, 300)
    region = (slice(0, 100), slice(70, 230), slice(90, 200))
    tiles = tile_grid(shape, TilingConfig(tile_size=64, halo=16), 8, region=region)
    cover = np.zeros(shape, np.uint8)
    for t in tiles:
        cover[t.core] += 1
    assert cover.max() == 1
    assert np.all(cover[region] == 1)  # the region (grown to whole chunks) is covered once
    assert cover.sum() < cover.size / 2
    assert tile_grid(shape, TilingConfig(), 8, region=(slice(0, 0), slice(0, 10), slice(0, 10))) == []


def test_gpu_sized_tiles_write_chunks_of_128_on_the_chunk_grid():
    """Tiles of 256 and more (a GPU's) write 128-voxel chunks (Zarr's cost per chunk halves the output's write
    time); smaller tiles keep 64. Cores stay unions of whole chunks, so no two tiles write one chunk."""
    assert TilingConfig(tile_size=160).chunk(8) == 64 and TilingConfig(tile_size=32).chunk(8) == 32
    assert TilingConfig(tile_size=256).chunk(8) == 128 and TilingConfig(tile_size=256).chunk(48) == 144
    shape = (256, 1024, 1000)
    tiles = tile_grid(shape, TilingConfig(tile_size=256), 8)
    for t in tiles:
        for core, size in zip(t.core, shape):
            assert core.start % 128 == 0 and (core.stop % 128 == 0 or core.stop == size)


def test_a_work_folder_cut_into_other_chunks_is_not_resumed(tmp_path, random_model_path, monkeypatch):
    """The chunk size decides the tile grid: a work folder from a version that cut it otherwise (its fingerprint
    lacks or differs in "chunk") is refused, never mixed into the new grid."""
    import json

    from tomoseg.inference import SegmentOptions, engine

    image = np.random.default_rng(1).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    src, out = tmp_path / "in.npy", tmp_path / "p.zarr"
    np.save(src, image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8))

    _interrupted_at(monkeypatch, "run_tiles", src, out, model=random_model_path, options=opts)
    state_file = next(tmp_path.glob("*.tomoseg-run")) / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["fingerprint"]["chunk"] == 16
    del state["fingerprint"]["chunk"]  # as an older version wrote it
    state_file.write_text(json.dumps(state))
    from dataclasses import replace

    with pytest.raises(TomosegError, match="chunk"):
        engine.segment(src, out, model=random_model_path, options=replace(opts, resume=True), progress=False)


@pytest.mark.parametrize("shape,tile,workers", [((64, 512, 512), 64, 2), ((64, 512, 512), 64, 1),
                                                ((64, 512, 512), 64, 40), ((200, 300, 700), 64, 3),
                                                ((64, 64, 512), 64, 4), ((32, 32, 32), 64, 2)])
def test_dask_tasks_are_runs_of_consecutive_tiles_covering_every_tile_once(shape, tile, workers):
    """Tasks are runs of consecutive tiles (they share the chunk cache and a GPU batch): whole rows along x, or
    a part of one row; they cover the tiles once, in order, and there are about 4 per worker."""
    from tomoseg.inference.distributed import task_batches

    tiles = tile_grid(shape, TilingConfig(tile_size=tile, halo=16), 8)
    batches = task_batches(tiles, workers)
    assert [t.index for b in batches for t in b] == [t.index for t in tiles]

    def row(t):
        return tuple((s.start, s.stop) for s in t.core[:2])

    rows = {}
    for t in tiles:
        rows.setdefault(row(t), []).append(t.index)
    for batch in batches:
        in_rows = {row(t) for t in batch}
        whole = [i for r in sorted(in_rows, key=lambda r: rows[r][0]) for i in rows[r]]
        assert [t.index for t in batch] == whole or len(in_rows) == 1  # whole rows, or a run within one row
    want = min(len(tiles), 4 * workers)
    assert want <= len(batches) <= want + len(rows)
    if len(rows) >= want:
        assert len(batches) == want
    # a cluster still growing: never fewer tasks than rows
    assert len(task_batches(tiles, workers, merge_rows=False)) >= max(len(rows), want)


def test_default_cpu_tile_size_follows_the_backend():
    from tomoseg.inference.tiling import CPU_TILE_SIZE, OPENVINO_TILE_SIZE, resolve_tiling

    shape = (320, 512, 512)
    ov = resolve_tiling(TilingConfig(), shape, 8, backend="openvino")
    torch_cpu = resolve_tiling(TilingConfig(), shape, 8, backend="torch")
    assert (ov.tile_size, torch_cpu.tile_size) == (OPENVINO_TILE_SIZE, CPU_TILE_SIZE) == (224, 160)
    assert resolve_tiling(TilingConfig(tile_size=100), shape, 8, backend="openvino").tile_size == 104  # the user's


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["bars", "quiet"])
def test_cli_says_once_that_the_tile_size_was_rounded_up(tmp_path, random_model_path, capsys, quiet):
    """--tile-size 20 runs tiles of 24 (a multiple of the divisor 8): it was said in the provenance only. The CLI
    now says it once on stderr, as its other notes (-q silences bars, not notes); a multiple of 8 is not noted."""
    from tomoseg.cli import main
    from tomoseg.io import write_volume

    write_volume(tmp_path / "in.npy", np.random.default_rng(0).normal(100, 10, (16, 40, 40)).astype(np.float32))
    args = ["--model", str(random_model_path), "--halo", "8", "--backend", "torch", "--sample-mask", "off", *quiet]
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "a.zarr"), "--tile-size", "20", *args]) == 0
    err = capsys.readouterr().err
    note = "tomoseg: note: tile size 20 rounded up to 24, a multiple of the network's divisor 8"
    assert err.count(note) == 1 and err.count("tile size") == 1, err
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "b.zarr"), "--tile-size", "16", *args]) == 0
    assert "rounded up" not in capsys.readouterr().err
    args[args.index("--halo") + 1] = "5"
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "c.zarr"), "--tile-size", "16", *args]) == 0
    err = capsys.readouterr().err
    assert err.count("tomoseg: note: halo 5 rounded up to 8, a multiple of the network's divisor 8") == 1, err


def test_segment_records_the_backends_tile_size(tmp_path, random_model_path, small_phantom):
    pytest.importorskip("openvino")
    from tomoseg.inference import SegmentOptions, segment
    from tomoseg.io import write_volume

    src = tmp_path / "in.zarr"
    write_volume(str(src), small_phantom.image[:16, :64, :64], voxel_size=(29.33,) * 3)
    rec = segment(src, tmp_path / "p.zarr", model=random_model_path, options=SegmentOptions(), progress=False)
    assert rec["backend"].startswith("openvino") and rec["tiling"]["tile_size"] == 224


def test_a_resume_with_another_voxel_size_is_refused(tmp_path, random_model_path, monkeypatch):
    """The work stores carry the first run's voxel size: a resume with another --voxel-size wrote outputs whose
    metadata said 100 nm and a provenance that said 50. It is refused now, naming the setting; a work folder of
    an earlier version (no voxel size in its fingerprint) still resumes."""
    import json
    from dataclasses import replace

    from tomoseg.inference import SegmentOptions, engine

    image = np.random.default_rng(1).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    src, out = tmp_path / "in.npy", tmp_path / "p.zarr"
    np.save(src, image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), voxel_size=(100.0, 100.0, 100.0))

    _interrupted_at(monkeypatch, "run_tiles", src, out, model=random_model_path, options=opts)
    other = replace(opts, resume=True, voxel_size=(50.0, 50.0, 50.0))
    with pytest.raises(TomosegError, match=r"other settings \(voxel_size_nm\)"):
        engine.segment(src, out, model=random_model_path, options=other, progress=False)
    state_file = next(tmp_path.glob("*.tomoseg-run")) / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    del state["fingerprint"]["voxel_size_nm"]  # as an earlier version wrote it
    state_file.write_text(json.dumps(state))
    record = engine.segment(src, out, model=random_model_path, options=replace(opts, resume=True), progress=False)
    assert record["voxel_size_nm"] == [100.0, 100.0, 100.0]


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_resume_computes_again_the_finished_tiles_whose_chunks_were_lost(tmp_path, random_model_path,
                                                                           monkeypatch, damage):
    """--resume trusted the work store: a finished tile's chunk lost after its done marker (a crash, a network
    file system) left a hole of probability 0 in the result, an empty chunk an unreadable result, both with
    exit 0. Such tiles are computed again, with a warning, and the result equals an uninterrupted run."""
    from dataclasses import replace

    from tomoseg.errors import TomosegWarning
    from tomoseg.inference import SegmentOptions, engine
    from tomoseg.io import read_volume

    image = np.random.default_rng(2).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    src = tmp_path / "in.npy"
    np.save(src, image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    engine.segment(src, tmp_path / "ref.zarr", model=random_model_path, options=opts, progress=False)

    # every tile done, the result not yet written
    _interrupted_at(monkeypatch, "check_input_unchanged", src, tmp_path / "out.zarr", model=random_model_path,
                    options=opts)
    chunk = tmp_path / "out.zarr.tomoseg-run" / "prob.zarr" / "0" / "c" / "0" / "1" / "1"
    assert chunk.stat().st_size > 0
    chunk.unlink() if damage == "missing" else chunk.write_bytes(b"")
    with pytest.warns(TomosegWarning, match="1 finished tile had lost output chunks"):
        engine.segment(src, tmp_path / "out.zarr", model=random_model_path, options=replace(opts, resume=True),
                       progress=False)
    assert np.array_equal(read_volume(str(tmp_path / "out.zarr")), read_volume(str(tmp_path / "ref.zarr")))


def test_more_local_workers_than_cores_or_memory_hold_are_refused_at_once(tmp_path, capsys):
    """--workers 64 on 2 cores and 23 GiB gave each worker 0.37 GiB: Dask killed them one after another and the
    run ended in a KilledWorker traceback minutes later. It is refused before anything is read or made."""
    from tomoseg.cli import main
    from tomoseg.inference.engine import _check_workers

    _check_workers(2, cores=2, memory=24 << 30)
    with pytest.raises(TomosegError, match=r"--workers 8: this machine has 16 cores; each would get 1.00 GiB of "
                                           r"the 8 GiB; use at most 4"):
        _check_workers(8, cores=16, memory=8 << 30)
    np.save(tmp_path / "in.npy", np.zeros((8, 16, 16), np.uint8))
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), "--workers", "64", "-q"]) == 1
    err = capsys.readouterr().err
    assert "--workers 64: this machine has" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_two_runs_into_one_hdf5_file_keep_their_own_work(tmp_path, random_model_path, monkeypatch):
    """Work folders were one per HDF5 file: a run into two.h5:/b found /a's interrupted work, asked for --resume,
    then called the input changed, or took /a's tiles over as /b's. Each dataset now has its own."""
    import h5py
    from dataclasses import replace

    from tomoseg.inference import SegmentOptions, engine

    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 255, (16, 48, 48), dtype=np.uint8) for _ in range(2))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    out = tmp_path / "two.h5"

    _interrupted_at(monkeypatch, "run_tiles", tmp_path / "a.npy", f"{out}:/a", model=random_model_path,
                    options=opts)
    engine.segment(tmp_path / "b.npy", f"{out}:/b", model=random_model_path, options=opts, progress=False)
    engine.segment(tmp_path / "a.npy", f"{out}:/a", model=random_model_path, options=replace(opts, resume=True),
                   progress=False)
    engine.segment(tmp_path / "a.npy", tmp_path / "ref.h5:/a", model=random_model_path, options=opts,
                   progress=False)
    with h5py.File(out) as f, h5py.File(tmp_path / "ref.h5") as r:
        assert np.array_equal(f["a"][:], r["a"][:]) and not np.array_equal(f["a"][:], f["b"][:])
    assert not list(tmp_path.glob("*.tomoseg-run"))


def _interrupted_at(monkeypatch, step: str, *args, **kwargs) -> None:
    """``engine.segment(*args, **kwargs)`` stopped by Ctrl-C where it calls ``step`` (its work folder left)."""
    from tomoseg.inference import engine

    def stop(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine, step, stop)
        with pytest.raises(KeyboardInterrupt):
            engine.segment(*args, progress=False, **kwargs)


@pytest.mark.parametrize("prob_name,mask_name", [("p.zarr", "m.tif"), ("p.tif", "m.tif"), ("p.ome.zarr", "m.zarr")])
def test_a_run_cut_in_its_finish_step_resumes(tmp_path, random_model_path, monkeypatch, prob_name, mask_name):
    """Ctrl-C between the map and the mask being put in place: the message said --resume continues, but the
    resume was refused ("already exists"; with a Zarr map, whose work store had been moved, --overwrite failed
    too). The finished outputs are recorded in the work folder's state, kept on --resume, and the run ends as an
    uninterrupted one: the same bytes, its provenance written."""
    from dataclasses import replace

    from tomoseg.inference import SegmentOptions, engine
    from tomoseg.io import read_volume

    image = np.random.default_rng(3).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    src = tmp_path / "in.npy"
    np.save(src, image)
    opts = SegmentOptions(tiling=TilingConfig(tile_size=16, halo=8), sample_mask="off")
    ref = engine.segment(src, tmp_path / f"ref-{prob_name}", model=random_model_path,
                         mask_output=tmp_path / f"ref-{mask_name}", options=opts, progress=False)
    finish, calls = engine.finish_output, []

    def cut_after_the_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return finish(*args, **kwargs)

    out, mask = tmp_path / prob_name, tmp_path / mask_name
    with monkeypatch.context() as patch:
        patch.setattr(engine, "finish_output", cut_after_the_first)
        with pytest.raises(KeyboardInterrupt):
            engine.segment(src, out, model=random_model_path, mask_output=mask, options=opts, progress=False)
    assert out.exists() and not mask.exists()
    record = engine.segment(src, out, model=random_model_path, mask_output=mask, options=replace(opts, resume=True),
                            progress=False)
    np.testing.assert_array_equal(read_volume(out), read_volume(tmp_path / f"ref-{prob_name}"))
    np.testing.assert_array_equal(read_volume(mask), read_volume(tmp_path / f"ref-{mask_name}"))
    assert record["resolution_levels"] == ref["resolution_levels"]
    assert (tmp_path / f"{prob_name}.provenance.json").exists() and not list(tmp_path.glob("*.tomoseg-run"))
