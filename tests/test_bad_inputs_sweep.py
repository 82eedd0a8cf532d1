"""The bad-input sweep of 2026-11-26 (report, phantom, info, the napari reader): each refusal through the CLI gives
exit code 1, one ``tomoseg: error:`` line and no traceback; docs/bad-inputs.md lists the cases. ``track``'s own
cases are in tests/track/test_track_inputs.py."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.errors import TomosegError


# ------------------------------------------------------------------------------------------------ report (C3)
def test_report_shows_csvs_without_object_columns_plainly(tmp_path, capsys):
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:5, 3:7, 3:7] = 1
    np.save(tmp_path / "m.npy", mask)
    res = tmp_path / "res"
    assert main(["analyze", str(tmp_path / "m.npy"), "--out", str(res), "-q"]) == 0
    (res / "mynotes.csv").write_text("a,b\n1,2\n")
    (res / "matches.csv").write_text("match_id,status,before_label\n1,persisting,3\n")
    (res / "binary.csv").write_bytes(b"\xff\xfe\x00\x01")
    (res / "ragged.csv").write_text("a,b\n1\n")
    code = main(["report", str(res), "-q"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    page = (res / "report.html").read_text(encoding="utf-8")
    assert "Table: mynotes.csv" in page and "<th>a</th><th>b</th>" in page
    assert "<td>persisting</td>" in page
    assert "binary.csv is not shown: it is not a readable table" in page
    assert "ragged.csv is not shown" in page
    assert "<th>volume_vox</th>" in page  # the objects table as before


# ------------------------------------------------------------------------------------------------ phantom
def test_phantom_negative_seed(tmp_path, capsys, cli_error):
    line = cli_error(main(["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"),
                                "--shape", "8", "16", "16", "--seed", "-1"]))
    assert line == "tomoseg: error: --seed -1: give a whole number >= 0"
    assert not (tmp_path / "i.tif").exists()


def test_phantom_pair_negative_seed(tmp_path, capsys, cli_error):
    line = cli_error(main(["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"), "--pair",
                                str(tmp_path / "a.tif"), "--pair-labels", str(tmp_path / "al.tif"),
                                "--shape", "24", "48", "48", "--seed", "-3"]))
    assert "--seed -3: give a whole number >= 0" in line


def test_phantom_list_presets_needs_no_outputs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["phantom", "--list-presets"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("default") and "noisy" in out


# ------------------------------------------------------------------------------------------------ info (D8)
def test_info_on_a_folder_holding_a_3d_tiff(tmp_path, capsys, cli_error):
    folder = tmp_path / "one3d"
    folder.mkdir()
    tifffile.imwrite(folder / "b.tif", np.zeros((5, 8, 8), np.uint8), photometric="minisblack")
    line = cli_error(main(["info", str(folder)]))
    assert (f"{folder}: holds the multi-page (3D) TIFF b.tif (5 slices), not a folder of 2D slices; give the file "
            f"itself ({folder / 'b.tif'})") in line


def test_info_on_slices_with_a_3d_tiff_among_them(tmp_path, capsys, cli_error):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"s{i}.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(folder / "s9.tif", np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
    line = cli_error(main(["info", str(folder)]))
    assert "holds the multi-page (3D) TIFF s9.tif (4 slices), not a folder of 2D slices" in line
    # a folder of 2D slices still reads
    (folder / "s9.tif").unlink()
    assert main(["info", str(folder)]) == 0


# ------------------------------------------------------------------------------------------------ napari reader (C6)
HEADER = "label,centroid_z,centroid_y,centroid_x,equivalent_radius_vox\n"


def test_napari_get_reader_declines_a_binary_csv(tmp_path):
    from tomoseg.napari_plugin.reader import get_reader

    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x01")
    assert get_reader(str(path)) is None


@pytest.mark.parametrize("body, message", [
    ("1,abc,2,3,4\n", "row 2, column centroid_z: 'abc' is not a number"),
    ("1,2,3,4,5\n1,2,3\n", "row 3 has 3 values, the header 5"),
], ids=["value", "short"])
def test_napari_reader_names_file_and_row_of_a_damaged_table(tmp_path, body, message):
    from tomoseg.napari_plugin.reader import get_reader

    path = tmp_path / "objects.csv"
    path.write_text(HEADER + body)
    reader = get_reader(str(path))
    with pytest.raises(TomosegError, match="objects.csv: " + message.replace("(", r"\(")):
        reader(str(path))


def test_napari_reader_reads_a_good_table(tmp_path):
    from tomoseg.napari_plugin.reader import get_reader

    path = tmp_path / "objects.csv"
    path.write_text(HEADER + "1,2,3,4,5\n2,1,1,1,1.5\n")
    data, kwargs, kind = get_reader(str(path))(str(path))[0]
    assert kind == "points" and data.tolist() == [[2, 3, 4], [1, 1, 1]]


# ------------------------------------------------------------------------------------------------ smaller messages (D9)
def test_napari_reader_opens_track_match_ids_as_labels(tmp_path):
    from tomoseg.io import write_volume
    from tomoseg.napari_plugin.reader import read

    ids = np.zeros((4, 8, 8), np.uint16)
    ids[1:3, 2:5, 2:5] = 7
    write_volume(str(tmp_path / "after_match_ids.tif"), ids)
    assert read(str(tmp_path / "after_match_ids.tif"))[0][2] == "labels"


def test_info_of_an_all_nan_volume(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.full((4, 4, 4), np.nan, np.float32))
    assert main(["info", str(tmp_path / "nan.npy")]) == 0
    assert "only NaN (not a number) in the 4 sampled slices" in capsys.readouterr().out
    part = np.full((4, 4, 4), 2, np.float32)
    part[0] = np.nan
    np.save(tmp_path / "part.npy", part)
    assert main(["info", str(tmp_path / "part.npy")]) == 0
    assert "min 2, max 2, mean 2 (16 NaN voxels left out)" in capsys.readouterr().out


def test_info_of_an_object_npy(tmp_path, capsys, cli_error):
    np.save(tmp_path / "obj.npy", np.empty((2, 2, 2), object), allow_pickle=True)
    line = cli_error(main(["info", str(tmp_path / "obj.npy")]))
    assert "obj.npy: holds Python objects (dtype object), not gray values" in line and "truncated" not in line


def test_training_state_given_as_a_model(tmp_path, capsys, cli_error):
    from safetensors.numpy import save_file

    save_file({"step": np.zeros(1, np.int64)}, str(tmp_path / "last.state.safetensors"))
    line = cli_error(main(["info", str(tmp_path / "last.state.safetensors")]))
    assert "is the training state (optimizer, step) that train --resume reads, not a model; use best.safetensors" \
        in line


def test_train_volumes_not_a_list_shows_the_right_example(tmp_path, capsys, cli_error):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("output: run\nepochs: 1\ndata: {volumes: img.tif}\n")
    line = cli_error(main(["train", str(cfg)]))
    assert "data.volumes: 'img.tif' must be a list, e.g. [{image: scan.tif, labels: labels.tif}]" in line
