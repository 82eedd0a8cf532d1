"""What the objects tables and summaries say, and in which units (review O3, O4, O5, O6)."""

import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.objects import analyze
from tomoseg.table import read_csv


def _objects():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[8:11, 8:11, 8:11] = 1          # kept, inside the sample: 27 voxels, radius 1.86
    mask[2:4, 2:4, 2:4] = 1             # kept, outside the sample: 8 voxels, radius 1.24
    mask[6:9, 5:7, 12:14] = 1           # kept, inside the sample: 12 voxels
    mask[0:20, 18:20, 18:20] = 1        # touches the border: excluded, outside the sample
    mask[16, 10, 10:13] = 1             # 3 voxels: too small
    sample = np.zeros_like(mask)
    sample[5:15, 5:15, 5:15] = 1        # 1000 voxels
    return mask, sample


def test_with_a_sample_mask_the_summary_covers_the_objects_inside_it(tmp_path, capsys):
    """O4: the object count, radii and sphericity covered every kept object (3) while the volume fraction and
    the number density counted those inside the sample (2): a reader's 3 / volume was not the density given.
    The table now marks in_sample, and every summary figure covers the kept objects inside the sample."""
    mask, sample = _objects()
    r = analyze(mask, sample_mask=sample, voxel_size=(10.0, 10.0, 10.0))
    s = r.summary
    assert s["objects"] == 2 and s["objects_outside_sample"] == 1
    assert s["number_density_per_um3"] == pytest.approx(s["objects"] / s["analysed_volume_um3"])
    inside = r.selected["in_sample"] == 1
    assert sorted(r.selected["volume_vox"][inside].tolist()) == [12, 27]
    assert r.selected["volume_vox"][~inside].tolist() == [8]
    radii = (3 * np.array([27, 12]) / (4 * np.pi)) ** (1 / 3)
    assert s["mean_radius_vox"] == pytest.approx(radii.mean())
    assert s["sd_radius_vox"] == pytest.approx(radii.std(ddof=1))
    assert "in_sample" in s["objects_basis"]
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "s.npy", sample)
    assert main(["analyze", str(tmp_path / "m.npy"), "--sample-mask", str(tmp_path / "s.npy"), "--csv",
                 str(tmp_path / "o.csv"), "--voxel-size", "10", "10", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 objects kept inside the sample mask (1 more outside it) of 5 ")
    table = read_csv(tmp_path / "o.csv")
    assert sorted(table["in_sample"].tolist()) == [0, 1, 1]


def test_a_centroid_half_way_between_voxels_rounds_up_whatever_its_parity():
    """np.rint rounds half to even: a centroid at 4.5 fell in voxel 4, one at 5.5 in voxel 6."""
    from tomoseg.objects.analysis import _sample_mask_counts

    sample = np.zeros((1, 1, 10), np.uint8)
    sample[0, 0, 5] = 1
    _, inside, _ = _sample_mask_counts(sample, np.array([[0, 0, 4.5], [0, 0, 5.5]]), sample.shape, 10**6)
    assert inside.tolist() == [True, False]


def test_all_objects_marks_every_exclusion(tmp_path):
    """O6: --all-objects promised "exclusions marked", but only touches_border was a column."""
    mask, _ = _objects()
    np.save(tmp_path / "m.npy", mask)
    assert main(["-q", "analyze", str(tmp_path / "m.npy"), "--csv", str(tmp_path / "all.csv"), "--all-objects"]) == 0
    t = read_csv(tmp_path / "all.csv")
    assert t["too_small"].tolist() == (t["volume_vox"] < 8).astype(int).tolist() and t["too_small"].sum() == 1
    assert t["touches_border"].sum() == 1 and len(t["label"]) == 5


def test_evaluate_without_a_voxel_size_leaves_the_nm_columns_empty(tmp_path, capsys):
    """O3: evaluate wrote volume_nm3 81 and mean_radius_nm 2.73 (voxel values under nm names) where the voxel
    size was unknown; analyze leaves them empty. Also O6: objects_all_sizes held every object, border ones
    included: it is objects_no_exclusions now."""
    mask, _ = _objects()
    np.save(tmp_path / "p.npy", mask)
    np.save(tmp_path / "t.npy", mask)
    assert main(["-q", "evaluate", str(tmp_path / "p.npy"), str(tmp_path / "t.npy"), "--out", str(tmp_path / "e")]) == 0
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text(encoding="utf-8"))
    for name in ("ground_truth", "prediction"):
        assert result["table1"][name]["mean_radius_nm"] is None
        assert result["table1"][name]["mean_radius_vox"] > 1
    for name in ("objects_ground_truth.csv", "objects_prediction.csv"):
        t = read_csv(tmp_path / "e" / name)
        assert len(t["label"]) == 3 and (t["volume_vox"] > 0).all()
        for column in ("volume_nm3", "equivalent_radius_nm", "centroid_z_nm", "surface_voxel_nm2"):
            assert np.isnan(t[column]).all(), column
    assert "objects_all_sizes" not in result
    assert result["objects_no_exclusions"]["true_objects"] == 5 and result["objects"]["true_objects"] == 3
    assert main(["-q", "evaluate", str(tmp_path / "p.npy"), str(tmp_path / "t.npy"), "--out", str(tmp_path / "f"),
                 "--voxel-size", "10", "10", "10"]) == 0
    t = read_csv(tmp_path / "f" / "objects_prediction.csv")
    assert t["volume_nm3"].tolist() == (t["volume_vox"] * 1000.0).tolist()


def test_centroids_in_nm_lie_in_the_nrrd_files_space(tmp_path):
    """O5: labels.nrrd keeps the input's space origin (ParaView draws it there) but centroid_*_nm started at
    voxel (0, 0, 0): the spheres of docs/viewers.md were drawn off their objects by the origin."""
    import nrrd

    from tomoseg.io import open_volume

    mask = np.zeros((16, 24, 32), np.uint8)
    mask[4:9, 5:10, 6:11] = 1
    mask[10:12, 14:17, 20:23] = 1
    header = {"space dimension": 3, "space directions": np.diag([0.03, 0.02, 0.05]),
              "space origin": np.array([1.0, 2.0, 3.0]), "space units": ["um", "um", "um"]}
    nrrd.write(str(tmp_path / "m.nrrd"), mask, header, index_order="C")  # z, y, x: 50, 20, 30 nm
    assert main(["-q", "analyze", str(tmp_path / "m.nrrd"), "--out", str(tmp_path / "r"),
                 "--labels", str(tmp_path / "r" / "labels.nrrd")]) == 0
    t = read_csv(tmp_path / "r" / "objects.csv")
    assert t["centroid_z"].tolist() == [6.0, 10.5] and t["centroid_x"].tolist() == [8.0, 21.0]
    assert t["centroid_z_nm"].tolist() == pytest.approx([3000 + 6 * 50.0, 3000 + 10.5 * 50])
    assert t["centroid_y_nm"].tolist() == pytest.approx([2000 + 7 * 20.0, 2000 + 15 * 20.0])
    assert t["centroid_x_nm"].tolist() == pytest.approx([1000 + 8 * 30.0, 1000 + 21 * 30.0])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["origin_nm"] == pytest.approx([3000.0, 2000.0, 1000.0])
    labels = nrrd.read_header(str(tmp_path / "r" / "labels.nrrd"))
    np.testing.assert_allclose(labels["space origin"], header["space origin"])  # the same place
    from tomoseg.napari_plugin.reader import table_voxel_size

    with open_volume(str(tmp_path / "m.nrrd")) as vol:
        assert table_voxel_size(t) == pytest.approx(vol.voxel_size)  # the napari reader still finds it


def test_the_kept_objects_are_no_second_copy_where_nothing_is_left_out():
    """A table of millions of objects is hundreds of MB: the kept rows and the summary's population share the
    table's arrays where no row is left out (they were copied: three tables at analyze's peak), and are their
    own rows where some are."""
    from tomoseg.objects.measure import select_objects

    mask = np.zeros((20, 20, 20), np.uint8)
    mask[8:11, 8:11, 8:11] = 1
    mask[3:5, 3:5, 3:5] = 1
    r = analyze(mask, voxel_size=(10.0, 10.0, 10.0))
    assert len(r.selected["label"]) == 2
    for column in r.objects:
        assert np.shares_memory(r.selected[column], r.objects[column]), column
        assert np.shares_memory(r.population[column], r.selected[column]), column
    kept = select_objects(r.objects)
    kept["mine"] = np.zeros(2)
    assert "mine" not in r.objects                      # a dict of its own

    mask[0:3, 15:18, 15:18] = 1                         # touches the border: left out
    r = analyze(mask, voxel_size=(10.0, 10.0, 10.0))
    assert len(r.objects["label"]) == 3 and len(r.selected["label"]) == 2
    assert not np.shares_memory(r.selected["label"], r.objects["label"])
    assert sorted(r.selected["volume_vox"]) == [8, 27]

    mask, sample = _objects()                           # with a sample mask: the population is the rows inside
    r = analyze(mask, sample_mask=sample, voxel_size=(10.0, 10.0, 10.0))
    assert len(r.selected["label"]) == 3 and len(r.population["label"]) == 2


def test_a_table_is_written_column_by_column_as_cell_by_cell(tmp_path, monkeypatch):
    """The CSV is formatted a block of rows at a time, column by column (1.8x faster on an objects table: minutes
    on millions of rows); every cell must read as the one-cell formatter writes it: integers whole, floats in
    their shortest round trip (float32 without float64's digits), integer-valued floats without ".0", NaN empty."""
    import csv

    from tomoseg import table as tables

    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e15, 123456789012345.0, 1e-4, 1e-5, 5e-324,
                        1.7976931348623157e308, 0.1, 1 / 3, 2.5, 100.0, -7.0])
    floats = np.concatenate([special, rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000),
                             rng.integers(-10**17, 10**17, 3000).astype(float), np.round(rng.random(3000) * 1e3, 2)])
    n = len(floats)
    with np.errstate(over="ignore"):  # float32 of the largest: inf
        f32 = floats.astype(np.float32)
    table = {"f": floats, "i": rng.integers(-2**62, 2**62, n), "u8": rng.integers(0, 255, n).astype(np.uint8),
             "f32": f32, "b": rng.random(n) > 0.5, "s": np.array(["a,b", "c"] * (n // 2)
                                                                                          + ["d"] * (n % 2))}
    monkeypatch.setattr(tables, "CSV_BLOCK_ROWS", 1000)  # several blocks, the last one short
    tables.write_csv(table, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(table) and len(rows) == n + 1
    for i in range(n):
        assert rows[i + 1] == [tables._fmt(table[c][i]) for c in table], i
    assert rows[1][0] == "0" and rows[3][0] == "" and rows[6][0] == "1e+16" and rows[13][0] == "0.1"


def test_a_table_of_numbers_is_written_byte_for_byte_as_the_csv_module_writes_it(tmp_path, monkeypatch):
    """Rows of numbers are joined as strings (the csv module's writer was half the time of writing an objects
    table): the file must hold the bytes the writer writes from the one-cell formatter (\\r\\n line ends, no
    quoting), over several blocks; a table of one column, whose empty (NaN) cell the writer quotes, and a table
    with text keep the writer."""
    import csv
    import io

    from tomoseg import table as tables

    rng = np.random.default_rng(1)
    n = 2500
    floats = rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n)
    floats[[0, 7, 99]] = [np.nan, np.inf, 3.0]
    monkeypatch.setattr(tables, "CSV_BLOCK_ROWS", 1000)

    def expected(table) -> bytes:
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(list(table))
        writer.writerows([[tables._fmt(table[c][i]) for c in table] for i in range(len(floats))])
        return text.getvalue().encode()

    numbers = {"f": floats, "i": rng.integers(-2**40, 2**40, n), "f32": floats.astype(np.float32),
               "b": rng.random(n) > 0.5, "u": rng.integers(0, 9, n).astype(np.uint16)}
    for name, table in [("numbers", numbers), ("one column", {"f": floats}),
                        ("text", {**numbers, "s": np.array(['x,"y"', "z"] * (n // 2))})]:
        path = tables.write_csv(table, tmp_path / f"{name}.csv")
        assert path.read_bytes() == expected(table), name
    assert tables.read_csv(tmp_path / "one column.csv")["f"][0] != tables.read_csv(tmp_path / "one column.csv")["f"][0]


def test_a_table_written_already_is_copied_atomically_and_stamped(tmp_path):
    """``write_csv(..., written=FILE)``: the file written from the same table is copied (analyze --csv with --out
    formatted millions of cells twice), in place at once, stamped; an existing target still needs overwrite."""
    from tomoseg.io.result_stamps import edited_results
    from tomoseg.table import TomosegError, write_csv

    table = {"a": np.arange(5), "b": np.linspace(0, 1, 5)}
    first = write_csv(table, tmp_path / "first.csv")
    second = write_csv(table, tmp_path / "second.csv", written=first)
    assert second.read_bytes() == first.read_bytes() and not (tmp_path / "second.csv.partial").exists()
    assert edited_results([second]) == []
    with pytest.raises(TomosegError, match="already exists"):
        write_csv(table, second, written=first)
    assert write_csv(table, first, overwrite=True, written=first).read_bytes() == second.read_bytes()
