"""The bad-input sweep of 2026-11-26 (report, phantom, info, the napari reader): each refusal through the CLI gives
exit code 1, one ``tomoseg: error:`` line and no traceback; docs/bad-inputs.md lists the cases. ``track``'s own
cases are in tests/track/test_track_inputs.py."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.errors import TomosegError


def _error(capsys, code) -> str:
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("tomoseg: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


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
    page = (res / "report.html").read_text()
    assert "Table: mynotes.csv" in page and "<th>a</th><th>b</th>" in page
    assert "<td>persisting</td>" in page
    assert "binary.csv is not shown: it is not a readable table" in page
    assert "ragged.csv is not shown" in page
    assert "<th>volume_vox</th>" in page  # the objects table as before


# ------------------------------------------------------------------------------------------------ phantom
def test_phantom_negative_seed(tmp_path, capsys):
    line = _error(capsys, main(["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"),
                                "--shape", "8", "16", "16", "--seed", "-1"]))
    assert line == "tomoseg: error: --seed -1: give a whole number >= 0"
    assert not (tmp_path / "i.tif").exists()


def test_phantom_pair_negative_seed(tmp_path, capsys):
    line = _error(capsys, main(["phantom", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "l.tif"), "--pair",
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
def test_info_on_a_folder_holding_a_3d_tiff(tmp_path, capsys):
    folder = tmp_path / "one3d"
    folder.mkdir()
    tifffile.imwrite(folder / "b.tif", np.zeros((5, 8, 8), np.uint8), photometric="minisblack")
    line = _error(capsys, main(["info", str(folder)]))
    assert (f"{folder}: holds the multi-page (3D) TIFF b.tif (5 slices), not a folder of 2D slices; give the file "
            f"itself ({folder / 'b.tif'})") in line


def test_info_on_slices_with_a_3d_tiff_among_them(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"s{i}.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(folder / "s9.tif", np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
    line = _error(capsys, main(["info", str(folder)]))
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
