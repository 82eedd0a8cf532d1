"""Folders of TIFF slices: the slices' names decide z, so a gap, a repeat or a stray file is refused."""

import numpy as np
import pytest
import tifffile

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, write_volume


def _folder(path, numbers, v, name="slice_{:04d}.tif"):
    path.mkdir()
    for i in numbers:
        tifffile.imwrite(path / name.format(i), v[i % len(v)])
    return path


@pytest.mark.parametrize("case,message", [
    ("gap", "slice numbers 0-11 have gaps (missing 5)"),
    ("extra", "holds preview.tif, which does not follow the slices' names (slice_####.tif)"),
    ("duplicate", "slices slice_0010.tif and slice_0010.tiff carry the same number 10"),
])
def test_a_gap_a_repeat_or_a_stray_file_is_refused(tmp_path, case, message):
    """A missing slice moved every slice above it down one, a preview image every slice up one, silently
    (second sweep S5)."""
    v = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    folder = _folder(tmp_path / case, [i for i in range(12) if not (case == "gap" and i == 5)], v)
    if case == "extra":
        tifffile.imwrite(folder / "preview.tif", v[0])
    if case == "duplicate":
        tifffile.imwrite(folder / "slice_0010.tiff", v[3])
    with pytest.raises(TomosegError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_volume(str(folder))


def test_numbered_slices_with_a_constant_step_or_unnumbered_names_are_read(tmp_path):
    v = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    every_other = _folder(tmp_path / "step", range(0, 12, 2), v)
    assert np.array_equal(open_volume(str(every_other))[:, :, :], v[::2])
    names = tmp_path / "names"
    names.mkdir()
    for i, n in enumerate(("a", "b", "c")):
        tifffile.imwrite(names / f"{n}.tif", v[i])
    assert open_volume(str(names)).shape == (3, 8, 8)


def _opens(monkeypatch):
    """Counts the TIFF files opened (each open of a slice parses it; each decode needs one)."""
    opened = []
    real = tifffile.TiffFile.__init__

    def counting(self, arg, *a, **k):
        opened.append(str(arg))
        real(self, arg, *a, **k)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counting)
    return opened


@pytest.mark.parametrize("layout", ["one strip", "strips", "tiles"])
def test_chunks_of_compressed_slices_decode_each_slice_a_few_times_not_once_per_chunk(tmp_path, monkeypatch, layout):
    """Review S2: each 128^3 chunk the labelling read decoded its 128 whole slices, so a pass decoded every
    slice (Y/128)·(X/128) times (400 s for 470 Mvox of 2048^2 slices in one strip; 326 s in strips of 128 rows).
    Narrow reads now go through bands kept decoded: a slice in one strip is decoded about once per pass, one in
    strips or tiles once per band of rows."""
    from concurrent.futures import ThreadPoolExecutor

    from tomoseg.io.blocks import chunk_regions

    v = np.random.default_rng(1).integers(0, 255, (8, 512, 384), dtype=np.uint8)
    kwargs = {"one strip": dict(rowsperstrip=512), "strips": dict(rowsperstrip=64),
              "tiles": dict(tile=(128, 128))}[layout]
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(len(v)):
        tifffile.imwrite(folder / f"slice_{z:04d}.tif", v[z], compression="zlib", **kwargs)
    vol = open_volume(str(folder))
    opened = _opens(monkeypatch)
    regions = list(chunk_regions(vol.shape, (8, 64, 64)))  # 48 chunks, each all 8 slices deep
    with ThreadPoolExecutor(3) as pool:  # the labelling reads chunks on several threads
        got = list(pool.map(lambda r: vol[r], regions))
    for r, data in zip(regions, got):
        np.testing.assert_array_equal(data, v[r])
    bands = -(-512 // 128)
    assert len(opened) <= (1 if layout == "one strip" else bands) * len(v) + 2 * 3, len(opened)  # was 48 x 8
    np.testing.assert_array_equal(vol[2, 5:300:3, 7], v[2, 5:300:3, 7])  # other keys read straight
    np.testing.assert_array_equal(vol[-1], v[-1])
    with pytest.raises(TomosegError, match="IndexError"):
        vol[8]


def test_a_narrow_read_of_uncompressed_slices_holds_only_the_rows_asked_for(tmp_path):
    """Review S2: a read kept every whole slice it touched until the block was stacked (128 x threads x whole
    slices for the labelling: 2 GB for 2048^2 slices); an uncompressed slice's rows are now read from the file
    and nothing else is held."""
    import tracemalloc

    v = np.random.default_rng(2).integers(0, 60000, (16, 512, 512), dtype=np.uint16)
    folder = tmp_path / "slices"
    write_volume(str(folder), v)
    vol = open_volume(str(folder))
    tracemalloc.start()
    try:
        block = vol[0:16, 100:164, 200:264]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(block, v[0:16, 100:164, 200:264])
    assert peak < 4 * 512 * 512 * 2, peak  # 16 whole slices were 8 MiB; now a slice's rows at a time


def test_a_slice_cut_short_after_the_folder_was_opened_is_named(tmp_path):
    v = np.random.default_rng(3).integers(0, 255, (4, 64, 64), dtype=np.uint8)
    folder = tmp_path / "slices"
    write_volume(str(folder), v)
    vol = open_volume(str(folder))
    victim = sorted(folder.glob("*.tif"))[2]
    victim.write_bytes(victim.read_bytes()[:-1000])
    with pytest.raises(TomosegError, match=f"{victim.name}: slice is truncated"):
        vol[:, :, :]
