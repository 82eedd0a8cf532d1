"""analyze of a map segmented with ``segment --roi`` (review study S1): the box from the map's provenance is the
analysed volume, its faces a border; the result equals analyze of the map cropped to the box."""

import json

import numpy as np
import pytest

from tomoseg.cli import main

BOX = ((4, 16), (8, 32), (6, 34))


def _balls(shape, centres, r=2.2):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    out = np.zeros(shape, bool)
    for c in centres:
        out |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
    return out


@pytest.fixture
def roi_map(tmp_path, tiny_model, monkeypatch):
    """A real ``segment --roi`` run (its provenance record), its map then given known objects inside the box:
    three inside it, two cut by its faces (z0 and x1); and the same map cropped to the box."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("img.npy", rng.integers(0, 255, (20, 40, 40), dtype=np.uint8))
    roi = ",".join(f"{a}:{b}" for a, b in BOX)
    assert main(["segment", "img.npy", "map.npy", "--roi", roi, "--model", tiny_model, "-q"]) == 0
    record = json.loads((tmp_path / "map.npy.provenance.json").read_text())
    assert record["sample_mask"]["method"] == "roi"
    objects = _balls((20, 40, 40), [(9, 14, 12), (10, 24, 20), (12, 20, 28), (4, 20, 14), (10, 16, 33)])
    box = tuple(slice(a, b) for a, b in BOX)
    inside = np.zeros(objects.shape, bool)
    inside[box] = True
    prob = np.where(objects & inside, 230, 0).astype(np.uint8)
    prob[box] = np.maximum(prob[box], 20)  # a low probability everywhere in the box, as a map has
    np.save("map.npy", prob)  # the record stays: segment's map of this box
    np.save("crop.npy", prob[box])
    return tmp_path


def _summary(capsys, *args):
    capsys.readouterr()
    assert main(["analyze", *args, "--json", "--voxel-size", "10", "10", "10", "-q"]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_roi_map_is_analysed_inside_its_box(roi_map, capsys):
    full, err = _summary(capsys, "map.npy")
    crop, _ = _summary(capsys, "crop.npy")
    assert "--roi 4:16,8:32,6:34" in err and "provenance" in err and "--no-roi" in err
    assert full["roi"] == [list(b) for b in BOX]
    box_voxels = 12 * 24 * 28
    assert full["analysed_voxels"] == crop["analysed_voxels"] == box_voxels
    assert full["objects_all"] == crop["objects_all"] == 5
    assert full["excluded_border"] == crop["excluded_border"] == 2  # cut by the box's faces
    assert full["objects"] == crop["objects"] == 3
    for key in ("volume_fraction", "volume_fraction_all_objects", "number_density_per_um3", "mean_radius_vox",
                "sd_radius_vox", "analysed_volume_um3"):
        assert full[key] == pytest.approx(crop[key]), key


def test_roi_map_printed_line(roi_map, capsys):
    assert main(["analyze", "map.npy", "--csv", "o.csv", "-q"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("3 objects kept of 5 (2 touch the border or the ROI box") and "sample mask" not in line
    assert "inside the ROI box (every object voxel" in line


def test_roi_map_overrides(roi_map, capsys, tmp_path):
    whole, _ = _summary(capsys, "map.npy", "--no-roi")  # the whole volume, as before
    assert whole["analysed_voxels"] == 20 * 40 * 40 and whole["excluded_border"] == 0 and whole["roi"] is None
    sample = np.zeros((20, 40, 40), np.uint8)
    sample[:, :20] = 1
    np.save(tmp_path / "sample.npy", sample)
    own, err = _summary(capsys, "map.npy", "--sample-mask", "sample.npy")  # the user's mask is the denominator
    assert own["analysed_voxels"] == 12 * 12 * 28 and own["excluded_border"] == 2  # inside the box (SM2)
    assert "--sample-mask sample.npy inside the box" in err


def test_a_sample_mask_counts_only_the_sample_inside_the_box(roi_map, capsys, tmp_path):
    """Review SM2: with --sample-mask, the sample outside the box (never segmented: the map is 0 there) was in
    the denominator, and the fractions and densities came out low by its share (25 % in the review). The
    result equals analyze of the map and the mask cropped to the box."""
    z, y, x = np.ogrid[:20, :40, :40]
    sample = np.broadcast_to((y - 20) ** 2 + (x - 18) ** 2 <= 15 ** 2, (20, 40, 40)).astype(np.uint8)
    np.save(tmp_path / "disc.npy", sample)
    box = tuple(slice(a, b) for a, b in BOX)
    np.save(tmp_path / "disc_crop.npy", sample[box])
    full, err = _summary(capsys, "map.npy", "--sample-mask", "disc.npy")
    crop, _ = _summary(capsys, "crop.npy", "--sample-mask", "disc_crop.npy")
    assert full["analysed_voxels"] == crop["analysed_voxels"] == int(sample[box].sum()) < int(sample.sum())
    for key in ("objects", "objects_outside_sample", "volume_fraction", "volume_fraction_all_objects",
                "number_density_per_um3", "analysed_volume_um3"):
        assert full[key] == pytest.approx(crop[key]), key
    assert "inside the ROI box" in full["fraction_basis"]


def test_a_sample_mask_empty_inside_the_box_is_refused(roi_map, capsys, tmp_path):
    sample = np.zeros((20, 40, 40), np.uint8)
    sample[17:, :, :] = 1  # below the box (z 4:16) only
    np.save(tmp_path / "below.npy", sample)
    assert main(["analyze", "map.npy", "--json", "--sample-mask", "below.npy", "-q"]) == 1
    err = capsys.readouterr().err
    assert "below.npy: holds no voxel inside the box 4:16,8:32,6:34" in err and "--no-roi" in err
