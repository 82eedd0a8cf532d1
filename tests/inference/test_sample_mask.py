"""The sample mask: which tiles may be skipped, its fallbacks, and that skipping keeps the sample exact."""

import json

import numpy as np
import pytest
from scipy import ndimage

import tomoseg
from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.inference import SegmentOptions, TilingConfig, segment
from tomoseg.io import read_volume, write_volume
from tomoseg.inference.normalization import volume_stats
from tomoseg.io import open_volume
from tomoseg.sample_mask import LowResolution, auto_sample_mask, mask_factor, otsu, parse_roi, roi_sample_mask


@pytest.fixture(scope="module")
def pillar():
    return tomoseg.make_phantom((32, 160, 160), rng=7, preset_name="small-pillar")


def test_auto_mask_holds_the_pillar_and_leaves_out_the_corners(pillar):
    m = auto_sample_mask(pillar.image, margin=16)
    assert m.record["fallback"] is None and m.record["method"] == "auto"
    for z, y, x in np.argwhere(pillar.pillar)[::101]:
        assert m.touches((slice(z, z + 1), slice(y, y + 1), slice(x, x + 1)))
    assert not m.touches((slice(0, 32), slice(0, 16), slice(0, 16)))
    assert 0.3 < m.fraction() < 0.9
    # every voxel within the margin of the pillar is inside too
    near = ndimage.distance_transform_edt(~pillar.pillar[16]) <= 16
    for y, x in np.argwhere(near)[::53]:
        assert m.touches((slice(16, 17), slice(y, y + 1), slice(x, x + 1)))


def test_auto_mask_never_skips_dark_end_slices(pillar):
    image = pillar.image.copy()
    image[:6] //= 4  # cone-beam CT: dark first and last slices that still hold sample
    image[-6:] //= 4
    m = auto_sample_mask(image, margin=16)
    np.testing.assert_array_equal(m.low[0], m.low[m.low.shape[0] // 2])


@pytest.mark.parametrize("gap", [False, True])
def test_auto_mask_keeps_the_inside_of_a_hollow_sample(rng, gap):
    """A tube (a dark core inside the sample's wall) is sample inside too; with ``gap``, each slice's wall has
    an opening at another angle, so no one slice encloses the core but the slices together do."""
    z, y, x = np.mgrid[:32, :160, :160]
    r, angle = np.hypot(y - 80, x - 80), np.arctan2(y - 80, x - 80)
    wall = (r > 40) & (r < 60)
    if gap:
        wall &= np.abs(np.angle(np.exp(1j * (angle - z * 2 * np.pi / 32)))) > 0.3
    image = (20 + 180 * wall + rng.normal(0, 5, wall.shape)).clip(0, 255).astype(np.uint8)
    m = auto_sample_mask(image, margin=8)
    assert m.record["fallback"] is None
    assert m.touches((slice(0, 32), slice(78, 82), slice(78, 82)))  # the core
    assert not m.touches((slice(0, 32), slice(0, 8), slice(0, 8)))  # the corners are not


@pytest.mark.parametrize("kind", ["noise", "no background"])
def test_auto_mask_falls_back_to_all_sample(rng, kind):
    if kind == "noise":
        image = rng.integers(0, 255, (32, 128, 128)).astype(np.uint8)
    else:  # concrete-like: matrix and pores fill the field of view
        blobs = ndimage.gaussian_filter(rng.normal(size=(32, 128, 128)), 3) > 0
        image = (blobs * 100 + rng.normal(0, 20, blobs.shape)).astype(np.float32)
    m = auto_sample_mask(image)
    assert m.everything and m.record["fallback"]


@pytest.mark.parametrize("holder", ["half", "corner"])
def test_a_sample_darker_than_what_runs_along_the_edge_is_never_cut(rng, holder):
    """The mask takes the brighter class for the sample. A darker sample beside a bright holder (or resin),
    both reaching the field's edge, lost the sample: 41 % of the object voxels got probability 0 (a review's
    reproducer, 'half'). Where the brighter class runs along the field's edge the mask is now all sample; a
    pillar inside the field keeps its mask (the tests above)."""
    z, y, x = np.mgrid[:32, :256, :256]
    bright = x >= 128 if holder == "half" else (y >= 200) & (x >= 150)
    image = np.where(bright, 200, 110) + rng.normal(0, 10, bright.shape)
    pores = np.zeros(bright.shape, bool)
    for _ in range(40):
        c = rng.integers(4, 28), rng.integers(10, 246), rng.integers(8, 120)
        pores |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < 16
    image[pores] = 40
    m = auto_sample_mask(np.clip(image, 0, 255).astype(np.uint8))
    assert m.everything and "field's edge" in m.record["fallback"]


def test_otsu_on_two_levels():
    values = np.r_[np.full(100, 10.0), np.full(300, 200.0)]
    t, separation = otsu(values)
    assert 10 < t < 200 and separation == pytest.approx(1.0, abs=0.01)  # bin centres, not the values


@pytest.mark.parametrize("chunks", [(8, 32, 160), (32, 48, 48), None])
def test_mask_from_the_statistics_pass_equals_its_own_read(tmp_path, pillar, chunks):
    src = tmp_path / ("in.zarr" if chunks else "in.npy")
    write_volume(str(src), pillar.image, **({"chunks": chunks} if chunks else {}))
    with open_volume(str(src)) as vol:
        low = LowResolution(vol.shape, mask_factor(vol.shape))
        stats = volume_stats(vol, visit=low, multiple=low.factor, slab_voxels=40_000)
        assert low.complete
        shared, alone = auto_sample_mask(vol, margin=16, low=low), auto_sample_mask(vol, margin=16)
    assert stats.mean == pytest.approx(float(pillar.image.mean()))
    np.testing.assert_array_equal(shared.low, alone.low)
    assert shared.box == alone.box and shared.record == alone.record
    partial = LowResolution(pillar.image.shape, 4)
    partial((slice(0, 8), slice(0, 160), slice(0, 160)), pillar.image[:8])
    assert not partial.complete
    with pytest.raises(ValueError, match="incomplete"):
        auto_sample_mask(pillar.image, low=partial)


def test_segment_reads_the_volume_once_before_the_tiles(tmp_path, random_model_path, pillar, monkeypatch):
    """Statistics and the automatic sample mask share one read of the input."""
    from tomoseg.inference import engine
    from tomoseg.io.volume import Volume

    src = tmp_path / "in.zarr"
    write_volume(str(src), pillar.image, chunks=(16, 64, 64))
    read = []
    plain_getitem = Volume.__getitem__

    def counting(self, key):
        data = plain_getitem(self, key)
        read.append(data.size)
        return data

    first_pass = engine.first_pass
    seen = {}

    def measured(*a, **k):
        before = len(read)
        out = first_pass(*a, **k)
        seen["voxels"] = sum(read[before:])
        return out

    monkeypatch.setattr(Volume, "__getitem__", counting)
    monkeypatch.setattr(engine, "first_pass", measured)
    rec = segment(src, tmp_path / "out.zarr", model=random_model_path, progress=False,
                  options=SegmentOptions(tiling=TilingConfig(tile_size=8, halo=16)))
    assert rec["sample_mask"]["method"] == "auto" and rec["sample_mask"]["fallback"] is None
    assert seen["voxels"] == pillar.image.size


@pytest.fixture(scope="module")
def deep_pillar():
    """A pillar 24 chunk layers deep (chunks of 4 slices): a sampled statistics pass reads 8 of them."""
    return tomoseg.make_phantom((96, 128, 128), rng=8, preset_name="small-pillar")


@pytest.mark.parametrize("chunks", [(4, 64, 64), (4, 32, 128), None])
def test_sampled_statistics_and_the_mask_share_a_read_of_a_few_layers(tmp_path, deep_pillar, chunks):
    """``--stats sample`` (the default above 2^31 voxels): the statistics pass reads evenly spread whole layers of
    chunks (chunks narrower than the slice once crashed the mask's collection), and the automatic mask is made
    from those layers' slices, not from a second read of the volume."""
    from tomoseg.inference.engine import first_pass
    from tomoseg.io.blocks import sample_slabs, storage_chunks

    src = tmp_path / ("in.zarr" if chunks else "in.npy")
    write_volume(str(src), deep_pillar.image, **({"chunks": chunks} if chunks else {}))
    read = []
    with open_volume(str(src)) as vol:
        plain = vol.__getitem__

        class Counted:  # the volume, each read recorded
            shape, dtype, size, chunks, path = vol.shape, vol.dtype, vol.size, vol.chunks, vol.path

            def __getitem__(self, key):
                read.append(key)
                return plain(key)

        counted = Counted()
        stats, sampled = first_pass(counted, SegmentOptions(stats="sample", tiling=TilingConfig(halo=8)), 8, None)
        slabs = sample_slabs(vol.shape, storage_chunks(vol), 0.05)
        full = auto_sample_mask(vol, margin=8)
    depth = chunks[0] if chunks else 1
    assert len(slabs) == 8 and all((s.stop - s.start) == depth and s.start % depth == 0 for s in slabs)
    ends = [slice(0, depth), slice(96 - depth, 96)]  # read for the mask alone (review SM6), not the statistics
    assert not any(s.start <= e.start < s.stop for s in slabs for e in ends)
    assert all(any(s.start <= k[0].start and k[0].stop <= s.stop for s in slabs + ends) for k in read)
    assert sum(int(np.prod([k.stop - k.start for k in key])) for key in read) == 10 * depth * 128 * 128
    assert stats.method == "sample" and stats.voxels == 8 * depth * 128 * 128
    assert stats.mean == pytest.approx(float(deep_pillar.image.mean()), rel=0.05)
    assert sampled.record["fallback"] is None and sampled.record["slices"] == 10
    assert sampled.record["layers"] == sorted([[s.start, s.stop] for s in slabs + ends])
    assert sampled.low.shape == full.low.shape  # every block along z, as the full mask
    assert sampled.box == full.box and abs(sampled.fraction() - full.fraction()) < 0.01  # a prism: ~ the same
    pillar = np.argwhere(deep_pillar.pillar)  # every slice's pillar inside, also where no slice was read
    assert all(sampled.touches((slice(z, z + 1), slice(y, y + 1), slice(x, x + 1))) for z, y, x in pillar[::97])


@pytest.mark.parametrize("chunks", [(4, 64, 64), None])
@pytest.mark.parametrize("end", ["base", "top"])
def test_a_mask_from_sampled_layers_holds_a_base_wider_than_the_pillar(tmp_path, rng, chunks, end):
    """Review SM6: the sampled layers leave the volume's ends out (the statistics want them out), and a pillar on
    a wider base (a FIB pillar's foot, the substrate) in the first slices lost the base: its tiles were skipped,
    objects there got probability 0. The mask reads the first and the last layer too."""
    from tomoseg.inference.engine import first_pass

    z, y, x = np.ogrid[:96, :128, :128]
    ring = (y - 64) ** 2 + (x - 64) ** 2
    foot = z < 3 if end == "base" else z >= 93
    sample = np.where(foot, ring <= 56 ** 2, ring <= 20 ** 2)  # the foot 8 voxels from the field's edge
    image = np.clip(np.where(sample, 170.0, 40.0) + rng.normal(0, 8, sample.shape), 0, 255).astype(np.uint8)
    src = tmp_path / ("in.zarr" if chunks else "in.npy")
    write_volume(str(src), image, **({"chunks": chunks} if chunks else {}))
    with open_volume(str(src)) as vol:
        _, mask = first_pass(vol, SegmentOptions(stats="sample", tiling=TilingConfig(halo=8)), 8, None)
    assert mask.record["method"] == "auto" and mask.record["fallback"] is None
    f = mask.factor
    up = mask.low.repeat(f, 0).repeat(f, 1).repeat(f, 2)[:96, :128, :128]
    assert not (sample & ~up).any()  # every voxel of the sample, the foot's too, in a block of the mask
    assert not up[:, :4, :4].all()  # and it still skips: the field's corners are outside


def test_the_progress_of_sampled_statistics_ends_at_the_sample(tmp_path, deep_pillar):
    """The statistics bar counts the layers read (8 of 24 here) and ends at 100 %, not at a third."""
    import io

    from tomoseg.inference.engine import first_pass
    from tomoseg.progress import Progress

    write_volume(str(tmp_path / "in.zarr"), deep_pillar.image, chunks=(4, 64, 64))
    stream = io.StringIO()
    bar = Progress(deep_pillar.image.size, stream=stream, tty=False)
    with open_volume(str(tmp_path / "in.zarr")) as vol:
        first_pass(vol, SegmentOptions(stats="sample", tiling=TilingConfig(halo=8)), 8, bar)
    bar.close()
    assert bar.n == bar.total == 8 * 4 * 128 * 128
    assert "statistics (sample): 100%" in stream.getvalue()


def test_cli_segments_chunked_volumes_with_sampled_statistics(tmp_path, random_model_path, deep_pillar):
    """The first run of the fix above: chunked Zarr and HDF5 with ``--stats sample`` and the automatic mask."""
    for name, chunks in [("in.zarr", (4, 64, 64)), ("in.h5", (8, 32, 32))]:
        src = tmp_path / name
        write_volume(str(src), deep_pillar.image, chunks=chunks)
        out = tmp_path / f"{name}.out.zarr"
        assert main(["segment", str(src), str(out), "--stats", "sample", "--model", str(random_model_path),
                     "-q", "--tile-size", "64", "--halo", "16"]) == 0
        rec = json.loads((tmp_path / f"{name}.out.zarr.provenance.json").read_text(encoding="utf-8"))
        assert rec["normalization"]["method"] == "zscore" and rec["normalization"]["statistics"] == "sample"
        assert rec["sample_mask"]["method"] == "auto" and rec["sample_mask"]["fallback"] is None
        assert read_volume(out).shape == deep_pillar.image.shape


def test_roi_parsing():
    assert parse_roi("0:10,:,5:", (20, 30, 40)) == (slice(0, 10), slice(0, 30), slice(5, 40))
    for bad in ["0:10,0:10", "0:30,:,:", "a:b,:,:", "5:5,:,:"]:
        with pytest.raises(TomosegError, match="--roi"):
            parse_roi(bad, (20, 30, 40))
    # N7: a range past the end (the README's 0:256 on a 128-slice volume) is named as such, with what fits
    with pytest.raises(TomosegError, match=r"z range 0:30 reaches past the volume's end \(0:20\); use 0:20 or 0:"):
        parse_roi("0:30,:,:", (20, 30, 40))
    with pytest.raises(TomosegError, match="x range 50:60 is empty or outside the volume"):
        parse_roi(":,:,50:60", (20, 30, 40))
    m = roi_sample_mask((20, 30, 40), "2:5,:,10:20")
    assert m.touches((slice(0, 8), slice(0, 8), slice(16, 24)))
    assert not m.touches((slice(0, 8), slice(0, 8), slice(24, 32)))
    assert not m.touches((slice(8, 16), slice(0, 8), slice(0, 16)))


def test_segment_skips_empty_space_and_stays_exact_inside(tmp_path, random_model_path, pillar):
    src = tmp_path / "in.zarr"
    write_volume(str(src), pillar.image)
    opts = dict(tiling=TilingConfig(tile_size=8, halo=16))  # small tiles: some lie wholly outside
    full = segment(src, tmp_path / "full.zarr", model=random_model_path, progress=False,
                   options=SegmentOptions(sample_mask="off", **opts))
    rec = segment(src, tmp_path / "masked.zarr", model=random_model_path, progress=False,
                  options=SegmentOptions(**opts))
    a, b = read_volume(tmp_path / "full.zarr"), read_volume(tmp_path / "masked.zarr")
    sm = rec["sample_mask"]
    assert sm["method"] == "auto" and sm["tiles_computed"] < full["sample_mask"]["tiles_computed"]
    assert sm["voxels_computed"] < a.size
    np.testing.assert_array_equal(a[pillar.pillar], b[pillar.pillar])  # the sample: identical bytes
    assert (b != a).any() and (b[b != a] == 0).all()  # outside: 0 where skipped, else the same
    assert json.loads((tmp_path / "masked.zarr.provenance.json").read_text(encoding="utf-8"))["sample_mask"] == sm
    assert full["sample_mask"]["method"] == "off"


def test_cli_roi_and_mask_file(tmp_path, random_model_path, pillar, capsys):
    src = tmp_path / "in.npy"
    np.save(src, pillar.image)
    m = ["--model", str(random_model_path), "-q", "--tile-size", "16", "--halo", "16"]
    assert main(["segment", str(src), str(tmp_path / "all.npy"), "--no-sample-mask"] + m) == 0
    assert main(["segment", str(src), str(tmp_path / "roi.npy"), "--roi", "3:29,61:90,70:101"] + m) == 0
    ref, roi = np.load(tmp_path / "all.npy"), np.load(tmp_path / "roi.npy")
    box = (slice(3, 29), slice(61, 90), slice(70, 101))  # not on tile or chunk edges
    np.testing.assert_array_equal(roi[box], ref[box])
    outside = np.ones(ref.shape, bool)
    outside[box] = False
    assert ref[outside].any() and not roi[outside].any()  # "only this box": 0 outside, also in computed tiles
    # one window over the whole volume: the box still bounds the output (the advice for flooded end slices)
    assert main(["segment", str(src), str(tmp_path / "one.npy"), "--roi", "4:,:,:", "--model",
                 str(random_model_path), "-q"]) == 0
    one = np.load(tmp_path / "one.npy")
    assert not one[:4].any() and one[4:].any()
    mask = np.zeros(pillar.image.shape, np.uint8)
    mask[:, :40, :40] = 1
    np.save(tmp_path / "mask.npy", mask)
    assert main(["segment", str(src), str(tmp_path / "f.npy"), "--sample-mask", str(tmp_path / "mask.npy")] + m) == 0
    f = np.load(tmp_path / "f.npy")
    np.testing.assert_array_equal(f[:, :40, :40], ref[:, :40, :40])
    assert not f[:, 64:, 64:].any()
    capsys.readouterr()
    np.save(tmp_path / "small.npy", mask[:, :10])
    assert main(["segment", str(src), str(tmp_path / "g.npy"), "--sample-mask", str(tmp_path / "small.npy")] + m) == 1
    assert "differs from the input" in capsys.readouterr().err
    assert main(["segment", str(src), str(tmp_path / "h.npy"), "--roi", "0:99,:,:"] + m) == 1
    assert "--roi" in capsys.readouterr().err


def test_a_mask_file_is_grown_by_the_halo_so_objects_at_its_edge_are_whole(tmp_path, random_model_path, pillar):
    """Review SM1: a user's mask whose edge lies on a tile edge (x = 64) skipped the tiles beyond it, so
    objects reaching past the mask (pores open at the surface, a mask drawn a few voxels tight) were cut there:
    probability 0 a voxel past the mask. Grown by the halo, as the automatic mask, everything within the halo
    of the mask is what a run without a mask gives."""
    src = tmp_path / "in.npy"
    np.save(src, pillar.image)
    opts = dict(tiling=TilingConfig(tile_size=8, halo=16))  # cores of 64 voxels
    ref = segment(src, tmp_path / "all.zarr", model=random_model_path, progress=False,
                  options=SegmentOptions(sample_mask="off", **opts))
    mask = np.zeros(pillar.image.shape, np.uint8)
    mask[:, :, :64] = 1
    np.save(tmp_path / "mask.npy", mask)
    rec = segment(src, tmp_path / "m.zarr", model=random_model_path, progress=False,
                  options=SegmentOptions(sample_mask=str(tmp_path / "mask.npy"), **opts))
    a, b = read_volume(tmp_path / "all.zarr"), read_volume(tmp_path / "m.zarr")
    np.testing.assert_array_equal(b[:, :, :64 + 16], a[:, :, :64 + 16])  # the mask and its halo: exact
    assert a[:, :, 64:80].any()
    assert rec["sample_mask"]["margin"] == 16 and rec["sample_mask"]["tiles_computed"] < ref["tiling"]["tiles"]
    assert not b[:, :, 128:].any()  # and it still skips: the tiles beyond the halo are not computed


def test_analyze_of_a_map_segmented_inside_a_mask_file_names_the_mask(tmp_path, random_model_path, pillar,
                                                                        capsys):
    """Review SM8: analyze of a map segment computed inside a --sample-mask file measured over the whole volume,
    the part never segmented included, without a word; a note names the mask to pass."""
    np.save(tmp_path / "in.npy", pillar.image)
    mask = np.zeros(pillar.image.shape, np.uint8)
    mask[:, 20:140, 20:140] = 1
    np.save(tmp_path / "mask.npy", mask)
    assert main(["segment", str(tmp_path / "in.npy"), str(tmp_path / "p.zarr"), "--sample-mask",
                 str(tmp_path / "mask.npy"), "--model", str(random_model_path), "-q"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "p.zarr"), "--json"]) == 0
    err = capsys.readouterr().err
    assert f"segmented inside --sample-mask {tmp_path / 'mask.npy'} (its provenance record)" in err
    assert f"pass --sample-mask {tmp_path / 'mask.npy'} to measure inside the sample" in err
    assert main(["analyze", str(tmp_path / "p.zarr"), "--json", "--sample-mask", str(tmp_path / "mask.npy")]) == 0
    assert "segmented inside" not in capsys.readouterr().err


def test_a_mask_file_grown_covers_every_voxel_within_the_margin(tmp_path):
    from tomoseg.sample_mask import file_sample_mask

    mask = np.zeros((40, 72, 72), np.uint8)
    mask[13, 30, 41] = 1  # one voxel, off the block grid
    np.save(tmp_path / "m.npy", mask)
    m = file_sample_mask(tmp_path / "m.npy", mask.shape, margin=10)
    up = m.low.repeat(4, 0).repeat(4, 1).repeat(4, 2)[:40, :72, :72]
    near = ndimage.distance_transform_cdt(mask == 0, metric="chessboard") <= 10  # the cube of side 21 around it
    assert up[near].all() and not up.all()
    assert m.record["margin"] == 10 and m.factor == 4


def test_a_mask_drawn_on_a_binned_scan_is_refused_with_the_way_to_upsample_it(tmp_path, random_model_path, pillar,
                                                                              capsys):
    """Review SM4: a mask made on the scan binned by 4 was refused with "give a mask of the same shape" only; the
    message names the binning and the NumPy line that upsamples it, and that line gives a mask segment takes."""
    src = tmp_path / "in.npy"
    np.save(src, pillar.image)
    binned = np.zeros((8, 40, 40), np.uint8)
    binned[:, 8:30, 8:30] = 1
    np.save(tmp_path / "b.npy", binned)
    m = ["--model", str(random_model_path), "-q", "--tile-size", "16", "--halo", "16"]
    capsys.readouterr()
    assert main(["segment", str(src), str(tmp_path / "o.zarr"), "--sample-mask", str(tmp_path / "b.npy")] + m) == 1
    err = capsys.readouterr().err
    line = "mask.repeat(4, 0).repeat(4, 1).repeat(4, 2)[:32, :160, :160]"
    assert "differs from the input's (32, 160, 160); it looks like the input binned by 4" in err and line in err
    mask = binned  # the advice, as given
    np.save(tmp_path / "up.npy", eval(line))
    assert main(["segment", str(src), str(tmp_path / "o.zarr"), "--sample-mask", str(tmp_path / "up.npy")] + m) == 0
    assert main(["analyze", str(tmp_path / "o.zarr"), "--json", "--sample-mask", str(tmp_path / "b.npy"), "-q"]) == 1
    assert line in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["graded", "probability", "binary 0.5", "interpolated edges"])
def test_a_mask_of_graded_values_is_warned_of(tmp_path, rng, kind):
    """Review SM7: a mask of 1 inside and 0.01 outside (or a probability) made every voxel sample without a word.
    Warned of by segment and analyze; a mask of one nonzero level, or 0/1 with interpolated edges, is not."""
    from tomoseg.errors import TomosegWarning
    from tomoseg.objects import analyze
    from tomoseg.sample_mask import file_sample_mask

    z, y, x = np.ogrid[:4, :256, :256]
    disc = np.broadcast_to((y - 128) ** 2 + (x - 128) ** 2 <= 100 ** 2, (4, 256, 256))
    mask = {"graded": np.where(disc, 1.0, 0.01), "probability": np.clip(disc * 0.9 + rng.random(disc.shape) * 0.1,
                                                                         0, 1),
            "binary 0.5": disc * 0.5, "interpolated edges": ndimage.zoom(disc[:, ::2, ::2] * 1.0, (1, 2, 2),
                                                                          order=1)}[kind].astype(np.float32)
    np.save(tmp_path / "m.npy", mask)
    objects = np.zeros(mask.shape, np.uint8)
    objects[1:4, 130:133, 130:133] = 1
    if kind in ("graded", "probability"):
        with pytest.warns(TomosegWarning, match=r"m.npy: \d+% of its nonzero voxels lie below 0.5"):
            file_sample_mask(tmp_path / "m.npy", mask.shape)
        with pytest.warns(TomosegWarning, match="threshold it where the sample begins"):
            analyze(objects, sample_mask=mask)
    else:  # warnings are errors here
        file_sample_mask(tmp_path / "m.npy", mask.shape)
        assert analyze(objects, sample_mask=mask).summary["analysed_voxels"] == int(np.count_nonzero(mask))


def test_a_mask_file_of_a_large_volume_is_kept_coarse(tmp_path):
    """Review SM5: a mask file's block mask was at 1/4 resolution at any size (17 GB of booleans for a
    4096x16384x16384 scan); it takes the automatic mask's resolution, under 2^24 blocks."""
    import zarr

    from tomoseg.sample_mask import file_sample_mask

    shape = (1024, 1024, 1040)  # just above 2^30 voxels: blocks of 8; only one chunk stored
    z = zarr.open_array(str(tmp_path / "m.zarr"), mode="w", shape=shape, chunks=(128, 512, 520), dtype="u1")
    z[500, 600, 700] = 1
    m = file_sample_mask(tmp_path / "m.zarr", shape)
    assert m.factor == mask_factor(shape) == 8 and m.low.size < 2**24
    assert m.touches((slice(500, 501), slice(600, 601), slice(700, 701)))
    assert not m.touches((slice(0, 64), slice(0, 64), slice(0, 64)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.float32])
@pytest.mark.parametrize("f", [4, 8, 32])
def test_block_means_are_exact_for_every_input_type(rng, dtype, f):
    from tomoseg.sample_mask import _block_mean

    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    lo, hi = (info.min, info.max) if info else (-1e4, 1e4)
    image = rng.uniform(lo, hi, (64, 96)).astype(dtype)
    expected = image.astype(np.float64).reshape(64 // f, f, 96 // f, f).mean(axis=(1, 3))
    np.testing.assert_allclose(_block_mean(image, f), expected, rtol=1e-6)


@pytest.mark.parametrize("name, chunks", [("m.zarr", (16, 24, 40)), ("m.npy", None)])
def test_file_mask_blocks_equal_numpy(tmp_path, name, chunks):
    from tomoseg.sample_mask import file_sample_mask

    mask = np.zeros((37, 50, 41), np.uint8)
    mask[5:9, 13:14, 30:41] = 1
    mask[36, 49, 0] = 7
    write_volume(str(tmp_path / name), mask, **({"chunks": chunks} if chunks else {}))
    m = file_sample_mask(tmp_path / name, mask.shape)
    padded = np.pad(mask != 0, ((0, 3), (0, 2), (0, 3)))
    np.testing.assert_array_equal(m.low, padded.reshape(10, 4, 13, 4, 11, 4).any(axis=(1, 3, 5)))


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_otsu_counted_in_parts_on_threads_equals_one_count(rng, threads):
    values = np.r_[rng.normal(40, 9, 50_001), rng.normal(170, 14, 70_003)].astype(np.float32)
    one, parts = otsu(values), otsu(values, threads=threads)
    assert parts[0] == one[0]                                   # the same counts, so the same threshold
    assert parts[1] == pytest.approx(one[1], rel=1e-12)         # the variance summed in float64 from parts
    assert 40 < one[0] < 170 and 0.9 < one[1] < 1


def test_auto_mask_is_the_same_on_one_thread_or_many(pillar, monkeypatch):
    import tomoseg.sample_mask as sm

    masks = []
    for n in (1, 3, 8):
        monkeypatch.setattr(sm, "mask_threads", lambda n=n: n)
        masks.append(auto_sample_mask(pillar.image, margin=16))
    for m in masks[1:]:
        np.testing.assert_array_equal(m.low, masks[0].low)
        assert m.box == masks[0].box and m.record == masks[0].record


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_narrow_float_range_at_a_large_offset_gets_a_mask(pillar, dtype):
    """G7: 85 gray levels within 1000.000-1000.005 (float32 spacing ~6e-5 there): np.histogram's float32 edges
    collapsed ("Too many bins for data range") and segment ended in a traceback, for float64 input too (its
    low-resolution copy is float32). The counts are now made in float64: the mask is the uint8 volume's."""
    image = np.asarray(pillar.image)
    offset = (image.astype(np.float64) * 2e-5 + 1000).astype(dtype)
    assert dtype is np.float64 or len(np.unique(offset)) < 256  # float64: made float32 in the low-resolution copy
    t, separation = otsu(offset[::4, ::4, ::4])
    assert 1000.0 <= t <= 1000.0051 and separation > 0.5
    got, want = auto_sample_mask(offset, margin=16), auto_sample_mask(image, margin=16)
    assert want.record["fallback"] is None and got.record["fallback"] is None and got.box == want.box
    assert np.mean(got.low != want.low) < 0.005  # the smoothing's float32 rounding at this offset moves a few blocks
