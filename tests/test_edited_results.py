"""D3: --overwrite replaces only results tomoseg wrote and nobody changed since: an annotated objects table, a
figure retouched in place, a mask corrected in its HDF5 file, a label store painted in place are refused, naming
the file; unchanged results are replaced as before."""

import os

import h5py
import numpy as np
import pytest
import zarr

from tomoseg.cli import main




def _refused(argv, cli_error, path) -> str:
    line = cli_error(main(argv + ["-q"]))
    assert f"{path}: changed since tomoseg wrote it" in line or f"{path}: its file changed since" in line, line
    assert "even with --overwrite: move it away" in line
    return line


def _later(path) -> None:
    """The file's modification time moved on, as an editor saving it a moment later does."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))


def test_an_annotated_objects_table_in_a_result_folder_is_not_replaced(phantom_cwd, cli_error, capsys):
    argv = ["analyze", "mask.tif", "--out", "res"]
    assert main(argv + ["-q"]) == 0
    assert main(argv + ["--overwrite", "-q"]) == 0  # unchanged: replaced
    table = phantom_cwd / "res" / "objects.csv"
    lines = table.read_text(encoding="utf-8").splitlines()
    annotated = "\n".join([lines[0] + ",my_annotation"] + [row + ",checked by hand" for row in lines[1:]]) + "\n"
    table.write_text(annotated, encoding="utf-8")
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "res/objects.csv")
    assert table.read_text(encoding="utf-8") == annotated
    os.rename(table, phantom_cwd / "annotated.csv")  # moved away, as the message says: the run goes on
    assert main(argv + ["--overwrite", "-q"]) == 0 and table.is_file()


def test_a_figure_retouched_in_place_is_not_removed(phantom_cwd, cli_error, capsys):
    argv = ["analyze", "mask.tif", "--out", "res"]
    assert main(argv + ["-q"]) == 0
    svg = phantom_cwd / "res" / "figures" / "size_histogram.svg"
    retouched = svg.read_text(encoding="utf-8").replace("</svg>", "<!-- font enlarged for the paper --></svg>")
    svg.write_text(retouched, encoding="utf-8")
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "res/figures/size_histogram.svg")
    assert svg.read_text(encoding="utf-8") == retouched
    _refused(["evaluate", "mask.tif", "mask.tif", "--out", "res", "--overwrite"], cli_error,
             "res/figures/size_histogram.svg")
    assert svg.read_text(encoding="utf-8") == retouched


def test_an_edited_csv_table_is_not_replaced(phantom_cwd, cli_error, capsys):
    argv = ["analyze", "mask.tif", "--csv", "o.csv"]
    assert main(argv + ["-q"]) == 0
    assert main(argv + ["--overwrite", "-q"]) == 0
    table = phantom_cwd / "o.csv"
    text = table.read_text(encoding="utf-8").replace("\n", ",\n", 1)  # same header start, one more column
    table.write_text(text, encoding="utf-8")
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "o.csv")
    assert table.read_text(encoding="utf-8") == text


def test_a_mask_corrected_in_its_hdf5_file_is_not_replaced(phantom_cwd, tiny_model, cli_error, capsys):
    seg = ["segment", "img.tif", "prob.zarr", "--mask", "m.h5:/mask", "--model", tiny_model, "--backend", "torch",
           "--device", "cpu"]
    assert main(seg + ["-q"]) == 0
    assert main(seg + ["--overwrite", "-q"]) == 0  # tomoseg was the file's last writer: replaced
    assert main(["analyze", "mask.tif", "--labels", "m.h5:/labels", "-q"]) == 0  # another dataset: mask still ours
    assert main(seg + ["--overwrite", "-q"]) == 0
    with h5py.File("m.h5", "a") as f:
        f["mask"][0:2] = 1  # corrected by hand
    before = (phantom_cwd / "m.h5").read_bytes()
    capsys.readouterr()
    _refused(seg + ["--overwrite"], cli_error, "m.h5:/mask")
    _refused(["analyze", "mask.tif", "--labels", "m.h5:/labels", "--overwrite"], cli_error, "m.h5:/labels")
    assert (phantom_cwd / "m.h5").read_bytes() == before


def test_a_label_store_painted_in_place_is_not_replaced(phantom_cwd, cli_error, capsys):
    argv = ["analyze", "mask.tif", "--labels", "lab.zarr"]
    assert main(argv + ["-q"]) == 0
    assert main(argv + ["--overwrite", "-q"]) == 0
    labels = zarr.open_array("lab.zarr", path="0", mode="r+")
    labels[0:2, 0:8, 0:8] = 7  # painted in napari, saved in place
    painted = labels[...]
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "lab.zarr")
    assert np.array_equal(zarr.open_array("lab.zarr", path="0", mode="r")[...], painted)


def test_an_edited_npy_volume_is_named_as_changed(phantom_cwd, cli_error, capsys):
    argv = ["analyze", "mask.tif", "--labels", "lab.npy"]
    assert main(argv + ["-q"]) == 0
    np.save("lab.npy", np.zeros((24, 64, 64), np.uint32))
    _later("lab.npy")
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "lab.npy")


def test_an_ome_zarr_store_painted_in_place_is_not_replaced(phantom_cwd, cli_error, capsys):
    """analyze --ome-zarr: objects corrected in napari and saved into the store's labels are never replaced;
    the store has a provenance record of its own, as every other volume tomoseg writes."""
    import json

    from tomoseg.io.ome_zarr import have_models
    from tomoseg.io.output_guard import provenance_path

    if not have_models():
        import pytest

        pytest.skip("ome-zarr-models not installed")
    argv = ["analyze", "mask.tif", "--ome-zarr", "o.ome.zarr"]
    assert main(argv + ["-q"]) == 0
    record = json.loads(provenance_path("o.ome.zarr").read_text(encoding="utf-8"))
    assert record["command"] == "tomoseg analyze --ome-zarr" and record["labelled_from"] == "mask.tif"
    assert main(argv + ["--overwrite", "-q"]) == 0  # unchanged: replaced
    objects = zarr.open_array("o.ome.zarr/labels/objects", path="0", mode="r+")
    objects[0:2, 0:8, 0:8] = 7
    painted = objects[...]
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "o.ome.zarr")
    assert np.array_equal(zarr.open_array("o.ome.zarr/labels/objects", path="0", mode="r")[...], painted)


TRACK = ["track", "img.tif", "img.tif", "--before-labels", "mask.tif", "--after-labels", "mask.tif", "--transform",
         "m.json", "--out", "res"]


def _edit_in_place(path) -> None:
    """An edit saved over the file: a note added to a JSON record or a page, a voxel painted in a label image."""
    import json

    import tifffile

    if path.suffix == ".json":
        record = json.loads(path.read_text(encoding="utf-8"))
        record["my_note"] = "pillar 3, second cycle"
        path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    elif path.suffix == ".html":
        path.write_text(path.read_text(encoding="utf-8").replace("</body>", "<p>checked</p></body>"),
                        encoding="utf-8")
    elif path.suffix == ".tif":
        painted = tifffile.memmap(path, mode="r+")
        painted[0, 0, 0] = 7
        painted.flush()
        del painted
        _later(path)
    else:  # a Zarr store painted in napari: a chunk written in place, its attributes kept
        store = zarr.open(str(path), mode="r+")
        store["0"][0, 0, 0] = 7
    assert path.exists()


@pytest.mark.parametrize("name", ["summary.json", "transform.json", "track.html", "after_match_ids.tif",
                                  "ids.zarr"])
def test_an_edited_track_result_is_not_replaced(phantom_cwd, cli_error, capsys, name):
    """D3 for track: its own JSON records, page and match-ID labels are stamped where written and checked before
    any work; an edited one is refused by name, an unedited one replaced."""
    (phantom_cwd / "m.json").write_text('{"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}')
    argv = TRACK + (["--labels-out", name] if name.endswith(".zarr") else [])
    assert main(argv + ["-q"]) == 0
    result = phantom_cwd / "res" / name
    first = os.stat(result).st_mtime_ns
    assert main(argv + ["--overwrite", "-q"]) == 0  # unedited: replaced
    assert os.stat(result).st_mtime_ns != first
    _edit_in_place(result)
    edited = {p: p.read_bytes() for p in ([result] if result.is_file() else sorted(result.rglob("*"))) if p.is_file()}
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, f"res/{name}")
    assert {p: p.read_bytes() for p in edited} == edited


def test_track_again_into_its_own_folder_removes_no_other_tools_results(phantom_cwd, capsys):
    """track's summary.json is track's: running track again with --overwrite into its own folder says nothing of
    removing analyze's results (before, its own summary was taken for analyze's and said to be removed)."""
    (phantom_cwd / "m.json").write_text('{"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}')
    assert main(TRACK + ["-q"]) == 0
    capsys.readouterr()
    assert main(TRACK + ["--overwrite", "-q"]) == 0
    assert "results there" not in capsys.readouterr().err
    assert (phantom_cwd / "res" / "summary.json").is_file()


@pytest.mark.parametrize("tool", ["analyze", "evaluate", "track"])
def test_edited_captions_are_not_replaced(phantom_cwd, cli_error, capsys, tool):
    """figures/captions.json is stamped as the figures are (each tool's): one whose captions were edited for a
    paper is refused by name, unchanged, even with --overwrite; unedited, it is replaced (before, it was not
    stamped: an edited one was written over)."""
    import json

    from tomoseg.io.result_stamps import LEDGER

    (phantom_cwd / "m.json").write_text('{"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}')
    argv = {"analyze": ["analyze", "mask.tif", "--out", "res"],
            "evaluate": ["evaluate", "mask.tif", "mask.tif", "--out", "res"], "track": TRACK}[tool]
    assert main(argv + ["-q"]) == 0
    figs = phantom_cwd / "res" / "figures"
    assert "captions.json" in json.loads((figs / LEDGER).read_text(encoding="utf-8"))
    assert not list(figs.glob("*.partial"))
    assert main(argv + ["--overwrite", "-q"]) == 0  # unedited: replaced
    captions = json.loads((figs / "captions.json").read_text(encoding="utf-8"))
    assert captions and all(isinstance(v, str) and v for v in captions.values())
    store = figs / "captions.json"
    edited = json.dumps({**captions, next(iter(captions)): "Fig. 2: my own words"}, indent=1)
    store.write_text(edited, encoding="utf-8")
    _later(store)
    capsys.readouterr()
    _refused(argv + ["--overwrite"], cli_error, "res/figures/captions.json")
    assert store.read_text(encoding="utf-8") == edited
