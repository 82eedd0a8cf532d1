import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import read_volume, write_volume
from tomoseg.synthetic import make_phantom
from tomoseg.table import read_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    ph = make_phantom((40, 128, 128), rng=6)
    write_volume(str(d / "img.tif"), ph.image, voxel_size=(29.33,) * 3)
    write_volume(str(d / "lab.tif"), ph.labels, voxel_size=(29.33,) * 3)
    # a prediction: the truth eroded where objects are large, plus a false object
    from scipy import ndimage

    pred = ndimage.binary_erosion(ph.labels, iterations=1) | (ph.labels & (ph.instances % 3 == 0))
    pred[20, 60:63, 60:63] = True
    prob = np.where(pred, 230, 20).astype(np.uint8)
    write_volume(str(d / "prob.zarr"), prob, voxel_size=(29.33,) * 3)
    return d, ph, pred


def test_evaluate_cli_counts_and_report(files, capsys, tmp_path):
    d, ph, pred = files
    out = tmp_path / "ev"
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--intensity", str(d / "img.tif"),
                 "--out", str(out), "--report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    truth = ph.labels.astype(bool)
    assert result["voxel"]["tp"] == int((pred & truth).sum())
    assert result["voxel"]["fp"] == int((pred & ~truth).sum())
    assert result["voxel"]["fn"] == int((~pred & truth).sum())
    assert result["prediction_is_probability"] is True
    assert result["objects"]["predicted_objects"] >= result["objects"]["matched_predicted"]
    assert result["objects"]["precision"] < 1.0  # the false object
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "<script" not in html
    for name in ("confusion_matrix.png", "evaluate_size_histogram.png", "evaluate_sphericity_vs_radius.png"):
        assert (out / "figures" / name).exists()


def test_analyze_cli_writes_csv_in_nm(files, capsys, tmp_path):
    d, ph, _ = files
    csv = tmp_path / "objects.csv"
    assert main(["analyze", str(d / "lab.tif"), "--intensity", str(d / "img.tif"), "--csv", str(csv),
                 "--out", str(tmp_path / "an"), "--report"]) == 0
    t = read_csv(csv)
    assert len(t["label"]) == len(ph.objects["label"])
    assert np.allclose(t["equivalent_radius_nm"], t["equivalent_radius_vox"] * 29.33, rtol=1e-4)
    assert (tmp_path / "an" / "report.html").exists()
    # the results folder's table is the --csv file copied (formatted once), stamped as tomoseg's own result
    from tomoseg.io.result_stamps import edited_results

    assert (tmp_path / "an" / "objects.csv").read_bytes() == csv.read_bytes()
    assert edited_results([csv, tmp_path / "an" / "objects.csv"]) == []
    # existing output without --overwrite
    assert main(["analyze", str(d / "lab.tif"), "--csv", str(csv)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_bad_evaluation_inputs(files, tmp_path, capsys):
    d, ph, _ = files
    write_volume(str(tmp_path / "small.tif"), ph.labels[:10])
    assert main(["evaluate", str(d / "prob.zarr"), str(tmp_path / "small.tif")]) == 1
    assert "differ in shape" in capsys.readouterr().err
    write_volume(str(tmp_path / "multi.tif"), (ph.instances % 5).astype(np.uint8))
    assert main(["evaluate", str(d / "prob.zarr"), str(tmp_path / "multi.tif")]) == 1
    assert "must be binary" in capsys.readouterr().err


def test_empty_mask_gives_a_valid_report(tmp_path, capsys):
    write_volume(str(tmp_path / "empty.tif"), np.zeros((16, 32, 32), np.uint8))
    assert main(["analyze", str(tmp_path / "empty.tif"), "--out", str(tmp_path / "o"), "--report",
                 "--voxel-size", "30", "30", "30"]) == 0
    assert "0 objects" in capsys.readouterr().out
    assert "Object analysis" in (tmp_path / "o" / "report.html").read_text(encoding="utf-8")


def test_evaluate_of_volumes_larger_than_memory_matches_in_memory(files, tmp_path, monkeypatch, capsys):
    """Above ``in_memory_voxels`` the objects are labelled chunk by chunk and matched block by block, and the hit
    maps read only their slices: evaluation.json, the object tables and the hit maps' slices are those of the
    in-memory run; the gray values are read by chunk and slice (the tree before read every volume whole, the
    gray values even above its object limit); the ground truth has no confidence columns; the labels kept on
    disk are gone."""
    import dataclasses
    import tempfile

    from tomoseg.cli import analysis as cli_analysis
    from tomoseg.io import volume as volume_module

    d, ph, _ = files
    write_volume(str(d / "img.zarr"), ph.image, voxel_size=(29.33,) * 3, chunks=(16, 32, 32))
    write_volume(str(d / "lab.zarr"), (ph.labels > 0).astype(np.uint8) * 255, voxel_size=(29.33,) * 3,
                 chunks=(16, 32, 32))
    argv = ["evaluate", str(d / "prob.zarr"), str(d / "lab.zarr"), "--intensity", str(d / "img.zarr"), "-q"]
    assert main(argv + ["--out", str(tmp_path / "memory")]) == 0
    plain = cli_analysis._options
    monkeypatch.setattr(cli_analysis, "_options",
                        lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 48, 40)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    reads = []
    real = volume_module.Volume.__getitem__
    monkeypatch.setattr(volume_module.Volume, "__getitem__", lambda self, key: reads.append(
        (self.path.name, real(self, key).size)) or real(self, key))
    assert main(argv + ["--out", str(tmp_path / "chunked")]) == 0
    # the gray values: chunks and the hit maps' slices, never the whole image (the tree before read it whole)
    assert max(n for name, n in reads if name == "img.zarr") <= 16 * 48 * 40  # the analysis chunk
    memory, chunked = (json.loads((tmp_path / run / "evaluation.json").read_text(encoding="utf-8"))
                       for run in ("memory", "chunked"))
    diff = {k: (memory[k], chunked.get(k)) for k in memory if memory[k] != chunked.get(k)}
    assert not diff, diff
    assert memory["objects"]["true_objects"] >= 10
    for name in ("objects_ground_truth.csv", "objects_prediction.csv"):
        assert (tmp_path / "chunked" / name).read_text(encoding="utf-8") == \
            (tmp_path / "memory" / name).read_text(encoding="utf-8")
    assert np.isnan(read_csv(tmp_path / "chunked" / "objects_ground_truth.csv")["mean_probability"]).all()
    assert (read_csv(tmp_path / "chunked" / "objects_prediction.csv")["mean_probability"] > 0.5).all()
    maps = sorted(p.name for p in (tmp_path / "memory" / "figures").glob("hit_map_z*.png"))
    assert maps and maps == sorted(p.name for p in (tmp_path / "chunked" / "figures").glob("hit_map_z*.png"))
    assert not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, bool])
def test_a_prediction_mask_of_any_dtype_is_labelled_by_connectivity(files, dtype):
    """A mask stored as uint16, float32 or bool scores as the uint8 mask does (a uint16 mask is not a label
    image with every object labelled 1), and a probability map gets the confidence columns."""
    from tomoseg.evaluation import evaluate

    _, ph, pred = files
    truth = ph.labels.astype(np.uint8)
    plain = evaluate(pred.astype(np.uint8), truth)
    other = evaluate(pred.astype(dtype), truth)
    def same(a, b):  # NaN in empty radius bins
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    assert same(other["objects"], plain["objects"]) and plain["objects"]["predicted_objects"] > 5
    assert np.isnan(plain["_tables"]["prediction"]["mean_probability"]).all()
    prob = evaluate(np.where(pred, 230, 20).astype(np.uint8), truth)
    assert same(prob["objects"], plain["objects"])
    assert (prob["_tables"]["prediction"]["mean_probability"] > 0.85).all()


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_evaluate_shows_one_bar_to_100_percent(files, tmp_path, monkeypatch, capsys, chunked):
    """One bar over the volume's voxels, fed by four passes (the voxel scores, both labellings, the overlaps), in
    memory and chunk by chunk, ending at 100 % of the volume's voxels (S9: it counted them four times, 8.59 Gvox
    for a 2.15 Gvox pair, and its rate in those units)."""
    import dataclasses
    import re

    from tomoseg.cli import analysis as cli_analysis

    d, _, _ = files
    if chunked:
        plain = cli_analysis._options
        monkeypatch.setattr(cli_analysis, "_options",
                            lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 48, 40)))
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif")]) == 0
    bars = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evaluate:")]
    total = 40 * 128 * 128 / 1e3
    assert re.match(rf"evaluate: 100% \({total:.0f} kvox of {total:.0f} kvox\)", bars[-1]), bars


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("tomoseg: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_evaluate_reads_a_map_in_0_1_and_refuses_gray_values_of_another_shape(files, capsys, tmp_path):
    """A float probability map in [0, 1] was taken as a mask (every nonzero voxel an object: voxel precision
    0.002); it is read as rint(p * 255), as its uint8 copy is. Fractions beyond 1 and an --intensity image of
    another shape (used as is: mean gray values from misplaced voxels, or an IndexError when much smaller) are
    refused before the work, with one line that says what to do."""
    d, ph, pred = files
    frac, p8 = tmp_path / "frac.npy", tmp_path / "p8.npy"
    np.save(frac, np.where(pred, 0.9, 0.05).astype(np.float32))
    np.save(p8, np.where(pred, 230, 13).astype(np.uint8))  # rint(0.9 * 255), rint(0.05 * 255)
    scores = []
    for name in ("frac", "p8"):
        assert main(["evaluate", str(tmp_path / f"{name}.npy"), str(d / "lab.tif"), "--json"]) == 0
        out = capsys.readouterr()
        scores.append(json.loads(out.out))
        assert ("read as a probability map in [0, 1] (float32): object where rint(p x 255) > 127" in out.err) == \
            (name == "frac")
    assert scores[0]["voxel"] == scores[1]["voxel"] and scores[0]["objects"] == scores[1]["objects"]
    assert scores[0]["voxel"]["precision"] > 0.5 and scores[0]["prediction_is_probability"]
    np.save(frac, np.where(pred, 1.9, 0.05).astype(np.float32))
    assert main(["evaluate", str(frac), str(d / "lab.tif")]) == 1
    assert "frac.npy: holds fractional values from 0.05 to 1.9 (float32); evaluate takes a mask" in \
        _one_error(capsys.readouterr().err)
    for shape in ((40, 128, 127), (8, 16, 16)):
        bad = tmp_path / f"gray{shape[0]}.npy"
        np.save(bad, np.zeros(shape, np.uint8))
        assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--intensity", str(bad),
                     "--out", str(tmp_path / f"ev{shape[0]}")]) == 1
        assert f"has shape {shape}" in _one_error(capsys.readouterr().err)


def test_evaluate_warns_when_most_of_the_prediction_is_objects(files, capsys, tmp_path):
    """A 16-bit probability map on the 0-65535 scale (or a gray image) given as the prediction is refused (it is
    no mask, 0-255 map or label image); read as a mask all the same (--read-as mask), every nonzero voxel is an
    object, and evaluate says so, as analyze does."""
    d, ph, pred = files
    wide = tmp_path / "p16.npy"
    np.save(wide, np.where(pred, 57000, 3000).astype(np.uint16))
    assert main(["evaluate", str(wide), str(d / "lab.tif"), "--json"]) == 1
    assert "p16.npy: holds values up to 57000 (uint16) and does not look like object IDs" in \
        _one_error(capsys.readouterr().err)
    assert main(["evaluate", str(wide), str(d / "lab.tif"), "--json", "--read-as", "mask"]) == 0
    err = capsys.readouterr().err
    assert "p16.npy: 100% of the voxels are objects; is this a mask?" in err
    assert "p16.npy: read as a mask (--read-as mask): object where value is not 0" in err


def test_overwritten_result_folder_holds_only_this_runs_results(files, capsys, tmp_path):
    """analyze --overwrite into an earlier evaluate folder: the evaluation's scores, tables, hit maps and
    captions are gone from the folder and its report; a user's own files there are kept."""
    d, _, _ = files
    out = tmp_path / "r"
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--intensity", str(d / "img.tif"),
                 "--out", str(out), "--report"]) == 0
    assert (out / "evaluation.json").exists() and list((out / "figures").glob("hit_map_z*.png"))
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    assert main(["analyze", str(d / "prob.zarr"), "--threshold", "200", "--out", str(out), "--report",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".tomoseg", ".tomoseg-stamps.json", "figures",
                                                     "fraction_along_z.csv", "notes.txt", "objects.csv",
                                                     "report.html", "summary.json"]
    stems = ("fraction_along_z", "objects_3d", "size_histogram", "sphericity_vs_radius")
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        [".tomoseg-stamps.json", "captions.json", "my_plot.png"] + [f"{s}.{e}" for s in stems
                                                                      for e in ("png", "svg", "pdf")])
    assert sorted(json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))) == sorted(stems)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Voxel scores" not in html and "objects_ground_truth.csv" not in html and "hit_map" not in html
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_analyze_and_evaluate_of_one_prediction_share_a_folder_and_report(files, capsys, tmp_path):
    """make demo's flow: analyze, then evaluate --overwrite of the same prediction at the same threshold into one
    folder, gives one report of both (the clearing of an earlier run's results had removed analyze's summary,
    table and figures); evaluate of that folder at another threshold, or analyze of another prediction, removes
    the other tool's results, which would describe something else."""
    d, _, _ = files
    out = tmp_path / "r"
    assert main(["analyze", str(d / "prob.zarr"), "--intensity", str(d / "img.tif"), "--out", str(out)]) == 0
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--intensity", str(d / "img.tif"),
                 "--out", str(out), "--overwrite", "--report"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "objects.csv", "evaluation.json", "objects_ground_truth.csv", "report.html"} <= names
    figs = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"orthoslices", "objects_3d", "fraction_along_z", "confusion_matrix"} <= figs
    captions = json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert {"orthoslices", "confusion_matrix"} <= set(captions)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Voxel scores" in html and "orthoslices" in html
    # the same folder evaluated at another threshold: analyze's results (threshold 127) go
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--threshold", "200", "--out", str(out),
                 "--overwrite"]) == 0
    assert not (out / "summary.json").exists() and not (out / "figures" / "orthoslices.png").exists()
    assert "orthoslices" not in json.loads((out / "figures" / "captions.json").read_text(encoding="utf-8"))
    # analyze of another prediction: evaluate's results go
    np.save(tmp_path / "other.npy", np.asarray(read_volume(d / "prob.zarr")))
    assert main(["analyze", str(tmp_path / "other.npy"), "--threshold", "200", "--out", str(out),
                 "--overwrite"]) == 0
    assert not (out / "evaluation.json").exists() and not list((out / "figures").glob("confusion_matrix.*"))


def test_all_objects_fraction_and_fraction_along_z_inside_the_sample_mask(tmp_path, capsys):
    """V3: with --sample-mask, volume_fraction_all_objects and the fraction along z were over the whole volume
    while volume_fraction beside them was over the sample mask."""
    from tomoseg.objects import analyze

    mask = np.zeros((20, 20, 20), np.uint8)
    mask[8:11, 8:11, 8:11] = 1          # kept, inside the sample: 27 voxels
    mask[2:4, 2:4, 2:4] = 1             # kept, outside the sample: 8 voxels
    mask[6:9, 5:7, 12:14] = 1           # kept, inside the sample: 12 voxels
    mask[0:20, 18:20, 18:20] = 1        # touches the border: excluded, outside the sample (80 voxels)
    sample = np.zeros_like(mask)
    sample[5:15, 5:15, 5:15] = 1        # 1000 voxels, 100 per slice z = 5..14
    r = analyze(mask, sample_mask=sample, voxel_size=(10.0, 10.0, 10.0))
    assert r.summary["volume_fraction"] == pytest.approx((27 + 12) / 1000)
    assert r.summary["volume_fraction_all_objects"] == pytest.approx((27 + 12) / 1000)
    f = r.fraction_along_z
    assert np.isnan(f[:5]).all() and np.isnan(f[15:]).all()
    assert f[5:15].tolist() == pytest.approx([0, 0.04, 0.04, 0.13, 0.09, 0.09, 0, 0, 0, 0])
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "s.npy", sample)
    assert main(["analyze", str(tmp_path / "m.npy"), "--sample-mask", str(tmp_path / "s.npy"), "--out",
                 str(tmp_path / "o"), "--intensity", str(tmp_path / "m.npy"), "--voxel-size", "10", "10", "10"]) == 0
    captions = json.loads((tmp_path / "o" / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert "over the sample mask's voxels in it" in captions["fraction_along_z"]
    assert "z = 8 is the slice crossed by the most volume of the counted objects (2 of them); y and x go through " \
        "the centroid of the largest of them (label 4, 27 voxels)" in captions["orthoslices"]


def test_an_interrupted_analyze_leaves_no_summary_and_report_says_what_is_missing(files, capsys, tmp_path,
                                                                                   monkeypatch):
    """S7: Ctrl-C during the figures left objects.csv, summary.json and 2 of 5 figures, and ``report`` made a
    2-figure report without a word. summary.json is now written last (it marks the results complete) and lists
    the figures; report says what a folder lacks, on stderr and at the top of the report."""
    from tomoseg.report import figures

    d, _, _ = files
    out = tmp_path / "an"
    argv = ["analyze", str(d / "prob.zarr"), "--intensity", str(d / "img.tif"), "--out", str(out), "-q"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(figures, "objects_3d", interrupted)
        assert main(argv) == 130
    assert (out / "objects.csv").exists() and (out / "figures" / "size_histogram.png").exists()
    assert not (out / "summary.json").exists()
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert "summary.json is missing, though analyze wrote objects.csv" in err and "interrupted" in err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Incomplete results" in html and "summary.json is missing" in html
    # complete: no word; a figure the summary lists gone: said
    assert main(argv + ["--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["figures"] == ["size_histogram", "sphericity_vs_radius", "fraction_along_z", "objects_3d",
                                  "orthoslices"]
    assert main(["report", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "Incomplete results" not in (out / "report.html").read_text(encoding="utf-8")
    (out / "figures" / "objects_3d.png").unlink()
    assert main(["report", str(out)]) == 0
    assert "summary.json lists 5 figures, of which objects_3d is not in figures/" in capsys.readouterr().err
    # evaluate's record lists its figures too
    ev = tmp_path / "ev"
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--out", str(ev), "-q"]) == 0
    listed = json.loads((ev / "evaluation.json").read_text(encoding="utf-8"))["figures"]
    assert listed[:3] == ["confusion_matrix", "evaluate_size_histogram", "evaluate_sphericity_vs_radius"]
    assert listed[3:] and all(f.startswith("hit_map_z") for f in listed[3:])
    (ev / "figures" / f"{listed[-1]}.png").unlink()
    assert main(["report", str(ev)]) == 0
    assert f"evaluation.json lists {len(listed)} figures, of which {listed[-1]} is" in capsys.readouterr().err


def test_evaluate_of_an_empty_prediction_prints_n_a_not_nan(tmp_path, capsys):
    """Nothing predicted: precision (and F1) are 0/0. The printed line said "precision nan, F1 nan"; it says
    n/a, and the JSON holds null (the counts are there to read)."""
    truth = np.zeros((16, 32, 32), np.uint8)
    truth[6:10, 10:14, 10:14] = 1
    np.save(tmp_path / "truth.npy", truth)
    np.save(tmp_path / "empty.npy", np.zeros_like(truth))
    assert main(["evaluate", str(tmp_path / "empty.npy"), str(tmp_path / "truth.npy")]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "precision n/a" in out and "recall 0.0000" in out, out
    assert main(["evaluate", str(tmp_path / "empty.npy"), str(tmp_path / "truth.npy"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["voxel"]["precision"] is None and scores["voxel"]["fn"] == 64


def test_evaluate_joins_analyze_of_the_same_prediction_without_overwrite(files, capsys, tmp_path, cli_error):
    """N1: the README's flow (analyze, then evaluate into one --out) was refused ("folder exists and is not
    empty"), and the --overwrite it suggested removed analyze's results without a word when the predictions
    differed. The other tool's results of the same prediction and settings now stay without --overwrite
    (nothing is replaced); of another prediction, the refusal says --overwrite removes them, and the removal is
    said."""
    d, _, _ = files
    out = tmp_path / "r"
    assert main(["analyze", str(d / "prob.zarr"), "--out", str(out), "-q"]) == 0
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--out", str(out), "--report", "-q"]) == 0
    assert {"summary.json", "objects.csv", "evaluation.json", "report.html"} <= {p.name for p in out.iterdir()}
    assert "Voxel scores" in (out / "report.html").read_text(encoding="utf-8")
    # its own results again: --overwrite needed, as before
    line = cli_error(main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--out", str(out), "-q"]))
    assert "folder exists and is not empty; pass --overwrite" in line
    # another prediction into a folder of analyze's results only
    out2 = tmp_path / "r2"
    assert main(["analyze", str(d / "prob.zarr"), "--out", str(out2), "-q"]) == 0
    np.save(tmp_path / "other.npy", np.asarray(read_volume(d / "prob.zarr")))
    argv = ["evaluate", str(tmp_path / "other.npy"), str(d / "lab.tif"), "--out", str(out2), "-q"]
    line = cli_error(main(argv))
    assert f"{out2}: holds analyze's results of another prediction or with other settings" in line
    assert "pass --overwrite to remove them" in line and (out2 / "summary.json").is_file()
    capsys.readouterr()
    assert main(argv + ["--overwrite"]) == 0
    assert f"tomoseg: note: {out2}: analyze's results there (of another prediction or with other settings) were " \
        "removed" in capsys.readouterr().err
    assert not (out2 / "summary.json").exists() and (out2 / "evaluation.json").is_file()


def test_joining_a_folder_with_a_report_builds_the_report_again(files, capsys, tmp_path):
    """evaluate (without --report) after `analyze --report` of the same prediction removed analyze's report and
    made none: the folder was left without one. Joining a folder that holds tomoseg's report builds it again
    with both tools' results, and says so."""
    d, _, _ = files
    out = tmp_path / "r"
    assert main(["analyze", str(d / "prob.zarr"), "--out", str(out), "--report", "-q"]) == 0
    assert "Voxel scores" not in (out / "report.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--out", str(out), "-q"]) == 0
    assert f"tomoseg: note: {out / 'report.html'}: built again with both tools' results" in capsys.readouterr().err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Voxel scores" in html and "size_histogram" in html  # both tools' results


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_evaluation_json_is_strict_json(files, capsys, tmp_path):
    """Review S10: evaluation.json held ``"radius_to_vox": Infinity`` and ``"recall": NaN`` (a size bin without
    objects), which JSON.parse and other strict readers refuse; summary.json wrote null. Every result record,
    the --json output and the provenance record are strict JSON now, with null in their place."""
    d, ph, pred = files
    out = tmp_path / "ev"
    assert main(["evaluate", str(d / "prob.zarr"), str(d / "lab.tif"), "--out", str(out), "--report",
                 "--json"]) == 0
    printed = _strict(capsys.readouterr().out)
    record = _strict((out / "evaluation.json").read_text())
    assert record["objects"]["by_radius"][-1]["radius_to_vox"] is None
    assert printed["objects"]["by_radius"][-1]["radius_to_vox"] is None
    empty = [b for b in record["objects"]["by_radius"] if b["true_objects"] == 0]
    assert empty and all(b["recall"] is None for b in empty)
    assert "Radius to (voxels)" in (out / "report.html").read_text()
    from tomoseg.io.output_guard import write_provenance

    write_volume(str(tmp_path / "m.tif"), np.zeros((2, 4, 4), np.uint8))
    write_provenance(tmp_path / "m.tif", {"tool": "test", "value": float("nan"), "inf": np.float32("inf")})
    prov = _strict((tmp_path / "m.tif.provenance.json").read_text())
    assert prov["value"] is None and prov["inf"] is None


def _nrrd(path, mask, directions, origin, space="left-posterior-superior"):
    """``mask`` (z, y, x) as an NRRD as 3D Slicer writes one: ``directions`` the steps along x, y, z (mm)."""
    import nrrd

    header = {"space": space, "space directions": np.asarray(directions, float),
              "space origin": np.asarray(origin, float)}
    nrrd.write(str(path), np.ascontiguousarray(mask.transpose(2, 1, 0)), header)
    return str(path)


_ALONG = np.diag([0.03, 0.03, 0.06])


@pytest.mark.parametrize("case, said", [
    ("rotated", "axes: p.nrrd's along the array's axes, gt.nrrd's rotated"),
    ("turned", "axes: p.nrrd's along the array's axes, gt.nrrd's swapped or turned by 90 degrees"),
    ("flipped", "axes: p.nrrd's along the array's axes, gt.nrrd's flipped (y)"),
    ("moved", "origin (x, y, z nm): p.nrrd 1000, 2000, 3000; gt.nrrd 1000, 2000, 9000"),
    ("other space", "space: p.nrrd left-posterior-superior, gt.nrrd right-anterior-superior"),
])
def test_evaluate_warns_where_the_files_place_the_volumes_differently(tmp_path, capsys, monkeypatch, case, said):
    """A prediction and a ground truth whose NRRD spaces differ (one along the array's axes, one rotated; origins
    apart) were compared voxel by voxel without a word (adversarial review LO3). Scored as before, with one warning
    naming both files and what differs."""
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:6, 4:10, 4:10] = 1
    origin = [0.001, 0.002, 0.003]  # mm
    theta = np.radians(30)
    gt_dirs, gt_origin, space = {
        "rotated": (np.array([[np.cos(theta), np.sin(theta), 0], [-np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
                    * [[0.03], [0.03], [0.06]], origin, None),
        "turned": (np.array([[0, 0.03, 0], [-0.03, 0, 0], [0, 0, 0.06]]), origin, None),
        "flipped": (np.diag([0.03, -0.03, 0.06]), origin, None),
        "moved": (_ALONG, [0.001, 0.002, 0.009], None),
        "other space": (_ALONG, origin, "right-anterior-superior"),
    }[case]
    _nrrd(tmp_path / "p.nrrd", mask, _ALONG, origin)
    _nrrd(tmp_path / "gt.nrrd", mask, gt_dirs, gt_origin, **({"space": space} if space else {}))
    monkeypatch.chdir(tmp_path)  # the files named as a user names them
    assert main(["evaluate", "p.nrrd", "gt.nrrd", "--json", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["voxel"]["tp"] == int(mask.sum())
    warnings = [line for line in err.splitlines() if line.startswith("tomoseg: warning:")]
    assert warnings == [f"tomoseg: warning: p.nrrd and gt.nrrd are compared voxel by voxel, but their files place "
                        f"them differently in space ({said}): check that both are on the same voxel grid (the same "
                        f"scan, cut and orientation)"], err


@pytest.mark.parametrize("case", ["same", "rounded", "no origin", "tiff"])
def test_evaluate_says_nothing_where_the_placements_agree_or_one_is_not_recorded(tmp_path, capsys, monkeypatch,
                                                                                   case):
    """The same space (to a rounding of the origin, or an origin left out for 0), or a ground truth in a format that
    records no placement (TIFF): no warning."""
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:6, 4:10, 4:10] = 1
    _nrrd(tmp_path / "p.nrrd", mask, _ALONG, [0.0, 0.0, 0.0] if case == "no origin" else [1.0, 2.0, 3.0])
    if case == "tiff":
        write_volume(str(tmp_path / "gt.tif"), mask, voxel_size=(60000.0, 30000.0, 30000.0))
    else:
        import nrrd

        header = {"space": "left-posterior-superior", "space directions": _ALONG}
        if case != "no origin":
            header["space origin"] = np.array([1.0, 2.0, 3.0 + 1e-9 if case == "rounded" else 3.0])
        nrrd.write(str(tmp_path / "gt.nrrd"), np.ascontiguousarray(mask.transpose(2, 1, 0)), header)
    monkeypatch.chdir(tmp_path)
    gt = "gt.tif" if case == "tiff" else "gt.nrrd"
    assert main(["evaluate", "p.nrrd", gt, "-q"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_evaluate_names_both_files_where_the_shapes_differ(tmp_path, capsys):
    """Shapes that differ: no voxel grid in common, refused as before; the message named neither file."""
    write_volume(str(tmp_path / "p.tif"), np.zeros((4, 6, 8), np.uint8))
    write_volume(str(tmp_path / "gt.tif"), np.zeros((4, 6, 9), np.uint8))
    assert main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "gt.tif")]) == 1
    err = capsys.readouterr().err
    assert f"prediction {tmp_path / 'p.tif'} (4, 6, 8) and labels {tmp_path / 'gt.tif'} (4, 6, 9) differ in shape: " \
           "they cannot be compared voxel by voxel" in err, err
