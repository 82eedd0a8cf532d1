"""evaluate of a prediction segmented with ``segment --roi`` (review AB17's leftover): the map is 0 outside the
box, so the true objects there counted as missed (recall low without a word). The box from the prediction's
provenance is scored as the volume, as analyze measures it: the scores equal those of both volumes cropped to
the box, and the positions stay the scan's."""

import csv
import json

import numpy as np
import pytest

import tomoseg
from tomoseg.cli import main

BOX = ((4, 16), (8, 32), (6, 34))
SHAPE = (20, 40, 40)


def _balls(centres, r=2.2):
    z, y, x = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    out = np.zeros(SHAPE, bool)
    for c in centres:
        out |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
    return out


@pytest.fixture
def roi_prediction(tmp_path, tiny_model, monkeypatch):
    """A real ``segment --roi`` run (its provenance record), its map then given known objects: found inside the
    box (three whole, one cut by its z0 face) plus one false object there; the truth holds those and three more
    outside the box. Also both cropped to the box."""
    monkeypatch.chdir(tmp_path)
    np.save("img.npy", np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8))
    assert main(["segment", "img.npy", "map.npy", "--roi", ",".join(f"{a}:{b}" for a, b in BOX),
                 "--model", tiny_model, "-q"]) == 0
    inside_objects = [(9, 14, 12), (10, 24, 20), (12, 20, 28), (4, 20, 14)]
    truth = _balls(inside_objects + [(16, 4, 4), (2, 34, 34), (10, 36, 20)])
    box = tuple(slice(a, b) for a, b in BOX)
    prob = np.zeros(SHAPE, np.uint8)
    prob[box] = 20
    found = _balls(inside_objects + [(12, 12, 30)])
    prob[box] = np.where(found[box], 230, prob[box])
    np.save("map.npy", prob)  # the record stays: segment's map of this box
    np.save("truth.npy", truth.astype(np.uint8))
    np.save("map_crop.npy", prob[box])
    np.save("truth_crop.npy", truth[box].astype(np.uint8))
    return tmp_path


def _scores(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", *args, "--json", "--voxel-size", "10", "10", "10", "-q"]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_a_roi_prediction_is_scored_inside_its_box(roi_prediction, capsys):
    full, err = _scores(capsys, "map.npy", "truth.npy")
    cropped, _ = _scores(capsys, "map_crop.npy", "truth_crop.npy")
    assert "--roi 4:16,8:32,6:34" in err and "scored inside that box" in err and "--no-roi" in err
    assert full["roi"] == [list(b) for b in BOX] and cropped["roi"] is None
    for key in ("tp", "fp", "fn", "tn"):
        assert full["voxel"][key] == cropped["voxel"][key], key
    assert full["voxel"]["tp"] + full["voxel"]["fp"] + full["voxel"]["fn"] + full["voxel"]["tn"] == 12 * 24 * 28
    for key in ("true_objects", "predicted_objects", "recall", "precision"):
        assert full["objects"][key] == cropped["objects"][key], key
    # the three whole objects found, the one cut by the box's face left out, the false one counted
    assert full["objects"]["true_objects"] == 3 and full["objects"]["recall"] == 1.0
    assert full["objects"]["predicted_objects"] == 4 and full["objects"]["precision"] == 0.75


def test_no_roi_scores_the_whole_volume(roi_prediction, capsys):
    whole, err = _scores(capsys, "map.npy", "truth.npy", "--no-roi")
    assert whole["roi"] is None and "scored inside" not in err
    assert sum(whole["voxel"][k] for k in ("tp", "fp", "fn", "tn")) == int(np.prod(SHAPE))
    assert whole["objects"]["recall"] < 1.0  # the objects outside the box, never segmented, missed


def test_a_roi_evaluation_keeps_the_scans_positions(roi_prediction, capsys):
    assert main(["evaluate", "map.npy", "truth.npy", "--out", "full", "--intensity", "img.npy", "-q"]) == 0
    assert main(["evaluate", "map_crop.npy", "truth_crop.npy", "--out", "crop", "-q"]) == 0
    capsys.readouterr()

    def rows(folder):
        with open(roi_prediction / folder / "objects_ground_truth.csv", newline="") as f:
            return sorted((float(r["centroid_z"]), float(r["centroid_y"]), float(r["centroid_x"]),
                           int(r["bbox_z0"]), int(r["bbox_x1"])) for r in csv.DictReader(f))

    start = [a for a, _ in BOX]
    moved = [(z + start[0], y + start[1], x + start[2], z0 + start[0], x1 + start[2])
             for z, y, x, z0, x1 in rows("crop")]
    assert len(moved) == 3 and np.allclose(rows("full"), moved)
    maps = sorted((roi_prediction / "full" / "figures").glob("hit_map_z*.png"))
    assert maps and all(BOX[0][0] <= int(p.stem.split("_z")[1]) < BOX[0][1] for p in maps)
    captions = json.loads((roi_prediction / "full" / "figures" / "captions.json").read_text())
    where = f"in the box y {BOX[1][0]}:{BOX[1][1]}, x {BOX[2][0]}:{BOX[2][1]}"  # the map shows the box, not the scan
    assert all(where in captions[p.stem] for p in maps)
    record = json.loads((roi_prediction / "full" / "evaluation.json").read_text())
    assert record["roi"] == [list(b) for b in BOX]


def test_crop_reads_a_volume_through_its_box(tmp_path):
    from tomoseg.io.volume import crop

    data = np.arange(6 * 7 * 8, dtype=np.uint16).reshape(6, 7, 8)
    tomoseg.write_volume(str(tmp_path / "v.tif"), data, voxel_size=(30, 20, 10))
    box = ((1, 5), (2, 7), (3, 8))
    ref = data[1:5, 2:7, 3:8]
    with tomoseg.open_volume(str(tmp_path / "v.tif")) as vol:
        view = crop(vol, box)
        assert view.shape == ref.shape and view.voxel_size == (30, 20, 10) and view.path == vol.path
        for key in [(slice(None),) * 3, (1,), (-1, slice(1, None, 2)), (slice(0, 2), 3, slice(-2, None)),
                    (slice(3, 1),)]:
            np.testing.assert_array_equal(view[key], ref[key])
    np.testing.assert_array_equal(crop(data, box), ref)
