"""Review S8: a pore much larger than the model's objects, found in pieces, raised the count and lowered the mean
radius without a word. With the gray image, analyze warns where a dark region larger than the objects holds
several of them (or one covering little of it), and lists the regions in summary.json."""

import json
import warnings

import numpy as np
import pytest

from tomoseg.errors import TomosegWarning
from tomoseg.objects import analyze

SHAPE = (64, 96, 96)


def _ball(centre, radius, shape=SHAPE):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


def _scan(rng, pores=(((32, 48, 48), 15),)):
    """A matrix (gray 170) with small dark objects (gray 110) spread through it and, for each of ``pores``, a large
    dark pore (gray 100-120, textured) in the middle; noise s.d. 6."""
    gray = np.full(SHAPE, 170.0)
    mask = np.zeros(SHAPE, np.uint8)
    for c in ((12, 16, 16), (12, 80, 80), (52, 16, 80), (52, 80, 16), (20, 20, 76), (44, 76, 20)):
        ball = _ball(c, 3)
        gray[ball] = 110
        mask[ball] = 1
    for centre, radius in pores:
        pore = _ball(centre, radius)
        gray[pore] = 110 + 10 * np.sin(np.arange(pore.sum()) / 7.0)
    gray += rng.normal(0, 6, SHAPE)
    return gray.astype(np.float32), mask


def test_a_large_pore_found_in_pieces_is_warned_of_and_listed(rng):
    gray, mask = _scan(rng)
    pieces = [(26, 42, 42), (26, 54, 54), (38, 42, 54), (38, 54, 42)]  # four small objects inside the pore
    for c in pieces:
        mask[_ball(c, 3)] = 1
    with pytest.warns(TomosegWarning, match=r"4 of the 10 kept objects lie in 1 dark region.*large pore found in "
                                            r"pieces"):
        result = analyze(mask, intensity=gray)
    record = result.summary["large_dark_regions"]
    assert record["regions"] == 1 and record["objects"] == 4
    region, = record["largest"]
    assert region["equivalent_radius_vox"] == pytest.approx(15, abs=2.5)
    assert np.allclose(region["centre_vox"], (32, 48, 48), atol=2.5)
    table = result.selected
    inside = [int(l) for l, *c in zip(table["label"], table["centroid_z"], table["centroid_y"], table["centroid_x"])
              if np.min([np.linalg.norm(np.subtract(c, p)) for p in pieces]) < 1]
    assert sorted(region["labels"]) == sorted(inside)
    assert 0 < region["segmented_share"] < 0.2  # four balls of radius 3 in one of radius 15
    json.dumps(result.summary, allow_nan=False)  # strict JSON, as summary.json


def test_a_large_pore_found_whole_and_small_objects_alone_are_not_warned_of(rng):
    gray, mask = _scan(rng)
    mask[_ball((32, 48, 48), 15)] = 1  # the pore found whole: one object covering its region
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = analyze(mask, intensity=gray)
    assert not [w for w in said if "pieces" in str(w.message)]
    assert result.summary["large_dark_regions"]["regions"] == 0
    gray, mask = _scan(rng, pores=())  # no large region
    result = analyze(mask, intensity=gray)
    assert result.summary["large_dark_regions"]["regions"] == 0
    # without the gray image nothing is checked
    assert analyze(mask).summary["large_dark_regions"] is None


def test_dark_surroundings_touching_the_border_are_not_a_pore(rng):
    """A pillar in dark air: the air is one large dark region, but it touches the volume's border; objects
    near the pillar's surface are not pieces of a pore."""
    gray, mask = _scan(rng, pores=())
    _, y, x = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    air = np.broadcast_to((y - 48) ** 2 + (x - 48) ** 2 > 44 ** 2, SHAPE)
    gray[air] = 100 + rng.normal(0, 6, air.sum())
    mask[air] = 0
    for c in ((30, 8, 48), (30, 48, 88)):  # two objects at the pillar's surface, by the air
        mask[_ball(c, 3) & ~air] = 1
    result = analyze(mask, intensity=gray)
    assert result.summary["large_dark_regions"]["regions"] == 0


def test_the_command_line_warns_and_writes_the_regions(tmp_path, rng, capsys):
    from tomoseg import write_volume
    from tomoseg.cli import main

    gray, mask = _scan(rng)
    for c in ((26, 42, 42), (38, 54, 54)):
        mask[_ball(c, 3)] = 1
    write_volume(tmp_path / "mask.tif", mask)
    write_volume(tmp_path / "gray.tif", gray)
    assert main(["analyze", str(tmp_path / "mask.tif"), "--intensity", str(tmp_path / "gray.tif"), "--out",
                 str(tmp_path / "res"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "tomoseg: warning: 2 of the 8 kept objects lie in 1 dark region(s) larger than the objects" in err
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["large_dark_regions"]["objects"] == 2
    assert any("large pore found in pieces" in n for n in summary["notes"])


def test_the_low_resolution_copy_read_in_chunks_equals_the_one_read_in_whole_slices(rng):
    """The check reads the gray image in the analysis's chunks (its memory bound), not whole slices: the same
    copy, block for block, also where the sides are not multiples of the factor."""
    from tomoseg.sample_mask import downsample

    gray = rng.normal(100, 20, (37, 70, 53)).astype(np.float32)
    whole = downsample(gray, 4)
    for chunks in ((16, 32, 32), (8, 12, 20), (64, 64, 64)):
        np.testing.assert_array_equal(downsample(gray, 4, chunks), whole)
