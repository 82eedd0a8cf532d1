"""The label image and the objects table describe the same objects: ID = row's label, same voxels."""

import re
from pathlib import Path

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.io import open_volume, read_volume, write_volume
from tomoseg.objects import AnalysisOptions, analyze
from tomoseg.objects.label_image import label_image, write_label_image
from tomoseg.table import read_csv


def blobs(rng, shape=(40, 70, 90), n=60):
    """Balls of radius 1-4 voxels at random places (some touch the border, some merge, some are tiny)."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    mask = np.zeros(shape, np.uint8)
    for _ in range(n):
        c = [rng.uniform(0, s) for s in shape]
        r = rng.uniform(0.6, 4.0)
        mask[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r] = 1
    return mask


def check_rows_match_voxels(labels: np.ndarray, table: dict):
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    assert ids.tolist() == sorted(table["label"].tolist())
    count_of = dict(zip(ids.tolist(), counts.tolist()))
    for i, lab in enumerate(table["label"]):
        assert count_of[int(lab)] == table["volume_vox"][i]
        zz, yy, xx = np.nonzero(labels == lab)
        for axis, coords in zip("zyx", (zz, yy, xx)):
            assert coords.mean() == pytest.approx(table[f"centroid_{axis}"][i], abs=1e-3)
            assert coords.min() == table[f"bbox_{axis}0"][i] and coords.max() + 1 == table[f"bbox_{axis}1"][i]


@pytest.mark.parametrize("chunked", [False, True, "kept"], ids=["in-memory", "chunked", "analysis' labels kept"])
@pytest.mark.parametrize("which", ["selected", "objects"])
def test_label_ids_match_table_rows(rng, tmp_path, chunked, which):
    mask = blobs(rng)
    options = AnalysisOptions(chunks=(16, 32, 32), in_memory_voxels=1000 if chunked else 2**30)
    result = analyze(mask, options=options, keep_labels=chunked == "kept", workdir=tmp_path)
    assert (result.labels is not None) == (chunked == "kept")
    table = getattr(result, which)
    assert 10 < len(table["label"])
    if which == "selected":
        assert len(table["label"]) < len(result.objects["label"])  # the exclusions drop objects
    out = write_label_image(mask, tmp_path / "labels.npy", table, options=options, labels=result.labels)
    labels = read_volume(out)
    assert labels.dtype == np.uint32
    check_rows_match_voxels(labels, table)
    assert np.array_equal(label_image(mask, table, options=options), labels)  # the same IDs every way
    if result.labels is not None:
        result.labels.discard()
        assert not list(tmp_path.glob("tomoseg-labels-*"))


def test_probability_map_uses_the_threshold(rng, tmp_path):
    mask = blobs(rng)
    prob = np.where(mask > 0, 200, 40).astype(np.uint8)
    result = analyze(prob)
    check_rows_match_voxels(label_image(prob, result.selected, options=result.options), result.selected)


def test_formats_tiff_uint16_and_ome_zarr_pyramid(rng, tmp_path):
    mask = blobs(rng, shape=(40, 200, 300))
    options = AnalysisOptions(chunks=(32, 64, 64))
    result = analyze(mask, options=options)
    tif = write_label_image(mask, tmp_path / "labels.tif", result.selected, options=options, voxel_size=(30.0,) * 3)
    assert read_volume(tif).dtype == np.uint16
    check_rows_match_voxels(read_volume(tif).astype(np.uint32), result.selected)
    z = write_label_image(mask, tmp_path / "labels.zarr", result.selected, options=options, voxel_size=(30.0,) * 3)
    vol = open_volume(z)
    assert vol.voxel_size == (30.0, 30.0, 30.0)
    check_rows_match_voxels(vol.read(), result.selected)
    from tomoseg.io.ome_zarr import have_models, read_pyramid, validate_ome_zarr

    if not have_models():
        return
    assert validate_ome_zarr(z)["levels"] >= 2
    levels = read_pyramid(z)
    assert set(np.unique(levels[1][:])) <= set(np.unique(vol.read()))  # modes: no invented IDs


def test_cli_analyze_writes_labels_matching_the_csv(rng, tmp_path):
    mask = blobs(rng)
    write_volume(tmp_path / "mask.tif", mask, voxel_size=(30.0, 30.0, 30.0))
    code = main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "objects.csv"),
                 "--labels", str(tmp_path / "labels.tif"), "-q"])
    assert code == 0
    table = read_csv(tmp_path / "objects.csv")
    check_rows_match_voxels(read_volume(tmp_path / "labels.tif").astype(np.uint32), table)
    assert main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "o2.csv"),
                 "--labels", str(tmp_path / "labels.tif")]) == 1  # never overwrites without --overwrite


def test_cli_analyze_writes_labels_from_its_own_chunked_labelling(rng, tmp_path, monkeypatch, capsys):
    """A volume labelled chunk by chunk: ``--labels`` and ``--ome-zarr`` come from the analysis' own labels (not a
    second labelling), match the CSV, and the labels kept for them are gone afterwards."""
    import dataclasses
    import tempfile

    from tomoseg.cli import analysis as cli_analysis
    from tomoseg.objects import label_image as label_image_module

    plain = cli_analysis._options
    monkeypatch.setattr(cli_analysis, "_options",
                        lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 32, 32)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where analyze keeps its labels
    monkeypatch.setattr(label_image_module, "label_chunked", None)  # no second labelling
    mask = blobs(rng)
    write_volume(tmp_path / "mask.tif", mask, voxel_size=(30.0, 30.0, 30.0))
    assert main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "objects.csv"), "-q",
                 "--labels", str(tmp_path / "labels.tif"), "--ome-zarr", str(tmp_path / "objects.ome.zarr")]) == 0
    table = read_csv(tmp_path / "objects.csv")
    check_rows_match_voxels(read_volume(tmp_path / "labels.tif").astype(np.uint32), table)
    check_rows_match_voxels(read_volume(f"{tmp_path / 'objects.ome.zarr'}:labels/objects/0"), table)
    assert not list(tmp_path.glob("tomoseg-labels-*"))
    # without -q: one bar over the volume's voxels for both labelling passes, ending at 100 %
    monkeypatch.delenv("TOMOSEG_NO_PROGRESS", raising=False)  # CI turns bars off
    assert main(["analyze", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "o2.csv")]) == 0
    assert re.search(r"analyze: 100% \(252 kvox of 252 kvox\)", capsys.readouterr().err)  # 40 x 70 x 90 voxels


def test_ome_zarr_writes_no_second_label_image_and_shows_a_bar(rng, tmp_path, monkeypatch, capsys):
    """S6: --ome-zarr wrote the label image a second time (into a temporary folder, even with --labels written)
    and ran with no bar. Now its objects are the kept labels mapped as they are read: the one label image
    written is --labels; one bar over the image, the mask and the objects; and the folder's figures and report
    on a bar of their own."""
    import dataclasses

    from tomoseg.cli import analysis as cli_analysis
    from tomoseg.objects import label_image as label_image_module

    plain = cli_analysis._options
    monkeypatch.setattr(cli_analysis, "_options",
                        lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 32, 32)))
    written = []
    original = label_image_module.write_label_image

    def spy(volume, path, *args, **kwargs):
        written.append(Path(path).name)
        return original(volume, path, *args, **kwargs)

    monkeypatch.setattr(label_image_module, "write_label_image", spy)
    monkeypatch.delenv("TOMOSEG_NO_PROGRESS", raising=False)  # CI turns bars off
    mask = blobs(rng)
    write_volume(tmp_path / "mask.tif", mask, voxel_size=(30.0, 30.0, 30.0))
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "mask.tif"), "--intensity", str(tmp_path / "mask.tif"), "--out", str(out),
                 "--report", "--labels", str(tmp_path / "labels.tif"),
                 "--ome-zarr", str(tmp_path / "objects.ome.zarr")]) == 0
    assert written == ["labels.tif"]
    table = read_csv(out / "objects.csv")
    check_rows_match_voxels(read_volume(f"{tmp_path / 'objects.ome.zarr'}:labels/objects/0"), table)
    err = capsys.readouterr().err
    assert re.search(r"OME-Zarr: 100% \(756 kvox of 756 kvox\)", err), err  # 3 x 40 x 70 x 90 voxels
    # five figures (orthoslices with the gray values) and the report, the step under way named
    assert re.search(r"results \(report\): 100% \(6 steps of 6 steps\)", err), err


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_analysis_and_label_image_count_each_voxel_once_on_a_progress_bar(rng, tmp_path, chunked):
    """Two labelling passes over a chunked volume make one bar of its voxels, not two."""

    class Count:
        n = 0

        def update(self, k):
            self.n += int(k)

    mask = blobs(rng)
    options = AnalysisOptions(chunks=(16, 32, 32), in_memory_voxels=1000 if chunked else 2**30)
    for keep in (False, True):
        bar, label_bar = Count(), Count()
        result = analyze(mask, options=options, progress=bar, keep_labels=keep, workdir=tmp_path)
        write_label_image(mask, tmp_path / f"labels{keep}.npy", result.selected, options=options, progress=label_bar,
                          labels=result.labels, workdir=tmp_path)
        assert bar.n == mask.size and label_bar.n == mask.size
        if result.labels is not None:
            result.labels.discard()


def test_cli_analyze_puts_labels_into_the_folder_it_makes(rng, tmp_path):
    """`--out results --labels results/labels.tif`: the folder analyze creates may hold the label image; a
    folder it does not make must still exist."""
    mask = blobs(rng)
    write_volume(tmp_path / "mask.tif", mask, voxel_size=(30.0, 30.0, 30.0))
    out = tmp_path / "results"
    assert main(["analyze", str(tmp_path / "mask.tif"), "--out", str(out), "--labels", str(out / "labels.tif"),
                 "-q"]) == 0
    check_rows_match_voxels(read_volume(out / "labels.tif").astype(np.uint32), read_csv(out / "objects.csv"))
    assert main(["analyze", str(tmp_path / "mask.tif"), "--out", str(tmp_path / "r2"),
                 "--labels", str(tmp_path / "elsewhere" / "labels.tif"), "-q"]) == 1
    assert not (tmp_path / "r2").exists()  # refused before any work


def test_labels_kept_for_a_label_image_are_removed_when_analyze_fails(rng, tmp_path):
    from tomoseg.errors import TomosegError

    from tomoseg.io import open_volume

    mask = blobs(rng)
    sample = np.ones(mask.shape, np.float32)
    sample[1, 5, 5] = np.nan  # in a slice the first look at the mask does not read: found after the labelling
    np.save(tmp_path / "sample.npy", sample)
    (tmp_path / "work").mkdir()
    with pytest.raises(TomosegError, match="the sample mask holds NaN"):
        analyze(mask, options=AnalysisOptions(chunks=(16, 32, 32), in_memory_voxels=1000), keep_labels=True,
                workdir=tmp_path / "work", sample_mask=open_volume(str(tmp_path / "sample.npy")))
    assert not list((tmp_path / "work").glob("tomoseg-labels-*"))


def test_an_empty_sample_mask_is_refused_before_the_labelling(rng, tmp_path, monkeypatch):
    """An empty sample mask was found only after the whole volume had been labelled and measured (hours on a
    large scan): it is refused first, whether the first look at it (a spread sample) or the whole of it shows
    it empty; a mask whose only sample voxels lie outside the first look is accepted."""
    from tomoseg.errors import TomosegError
    from tomoseg.io import open_volume
    from tomoseg.objects import analysis

    mask = blobs(rng)
    empty = np.zeros(mask.shape, np.uint8)
    np.save(tmp_path / "empty.npy", empty)

    def labelled(*args, **kwargs):
        raise AssertionError("labelled before the sample mask was checked")

    with monkeypatch.context() as m:
        m.setattr(analysis, "_label_and_measure", labelled)
        for sample in (empty, open_volume(str(tmp_path / "empty.npy"))):
            with pytest.raises(TomosegError, match="the sample mask is empty"):
                analyze(mask, sample_mask=sample)
    late = empty.copy()
    late[1, 30:40, 30:40] = 1  # only in slice 1, which the spread sample does not read
    np.save(tmp_path / "late.npy", late)
    result = analyze(mask, sample_mask=open_volume(str(tmp_path / "late.npy")))
    assert result.summary["objects"] + result.summary["objects_outside_sample"] == len(result.selected["label"])


def test_cli_analyze_orthoslices_read_three_planes_at_any_size(rng, tmp_path, monkeypatch):
    """The figure through the slice with the most object voxels comes from three planes of each volume (there
    was a 2^28-voxel limit above which it was left out, because both volumes were read whole): chunked here,
    with the slice and its count named in the caption."""
    import dataclasses
    import json

    from tomoseg.cli import analysis as cli_analysis
    from tomoseg.io import volume as volume_module

    plain = cli_analysis._options
    monkeypatch.setattr(cli_analysis, "_options",
                        lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 32, 32)))
    mask = blobs(rng)
    image = (150 - 60 * mask + rng.normal(0, 5, mask.shape)).astype(np.uint8)
    write_volume(tmp_path / "mask.zarr", mask, chunks=(8, 16, 16))
    write_volume(tmp_path / "image.zarr", image, chunks=(8, 16, 16))
    reads = []
    real = volume_module.Volume.__getitem__
    monkeypatch.setattr(volume_module.Volume, "__getitem__", lambda self, key: reads.append(
        real(self, key).size) or real(self, key))
    assert main(["analyze", str(tmp_path / "mask.zarr"), "--intensity", str(tmp_path / "image.zarr"),
                 "--out", str(tmp_path / "out"), "-q"]) == 0
    assert max(reads) <= 16 * 32 * 32  # chunks and planes, never a whole volume
    # z: the slice crossed by the most volume of the counted objects (each spread over its box's slices)
    kept = read_csv(tmp_path / "out" / "objects.csv")
    per_z = np.zeros(mask.shape[0])
    for v, z0, z1 in zip(kept["volume_vox"], kept["bbox_z0"], kept["bbox_z1"]):
        per_z[int(z0):int(z1)] += v / (int(z1) - int(z0))
    z = int(np.argmax(per_z))
    captions = json.loads((tmp_path / "out" / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert f"z = {z} is the slice crossed by the most volume of the counted objects" in captions["orthoslices"]
    # the figure alone reads three planes of each volume
    from tomoseg.io import open_volume
    from tomoseg.objects.reading import MaskView
    from tomoseg.report import figures

    view = MaskView(open_volume(tmp_path / "mask.zarr"))  # reads a spread sample once: mask or probability?
    reads.clear()
    figures.orthoslices(open_volume(tmp_path / "image.zarr"), view, tmp_path / "o.png", centre=(z, 35, 45))
    assert sorted(reads) == sorted([70 * 90, 40 * 90, 40 * 70] * 2)


# ------------------------------------------------------------------ the label image's provenance record (C8)
def _record(output) -> dict:
    import json

    from tomoseg.io.output_guard import provenance_path

    path = provenance_path(output)
    assert path.is_file(), f"no provenance record {path.name} for {output}"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("labels", ["labels.tif", "labels.npy", "res.h5:/entry/labels"])
def test_cli_analyze_gives_the_label_image_a_provenance_record(rng, tmp_path, capsys, labels):
    """C8: analyze --labels wrote a label image no record described. Its own record now says what it was
    labelled from and how, and which table's rows it holds; the summary names it; report shows the record of
    a label image in its folder; --overwrite replaces it (tomoseg's own) and nothing else."""
    import json

    import h5py
    import tifffile

    from tomoseg._version import __version__

    prob = np.where(blobs(rng) > 0, 200, 40).astype(np.uint8)
    prob[prob == 40] = rng.integers(0, 120, int((prob == 40).sum()), dtype=np.uint8)  # a probability map
    write_volume(tmp_path / "prob.tif", prob, voxel_size=(30.0, 30.0, 30.0))
    out = tmp_path / "res"
    target = f"{tmp_path / labels}" if ":" in labels else str(out / labels)
    argv = ["analyze", str(tmp_path / "prob.tif"), "--csv", str(tmp_path / "objects.csv"), "--out", str(out),
            "--labels", target, "--threshold", "100", "--connectivity", "6", "--min-voxels", "5", "-q"]
    assert main(argv) == 0
    table = read_csv(tmp_path / "objects.csv")
    record = _record(target)
    assert record["tool"] == "tomoseg write_label_image" and record["tomoseg_version"] == __version__
    assert record["command"] == "tomoseg analyze --labels" and record["label_image"] == str(Path(target))
    assert record["labelled_from"] == str(tmp_path / "prob.tif") and record["labelled_as"] == "probability map"
    assert record["threshold"] == 100 and record["objects_where"] == "value > 100"
    assert record["connectivity"] == 6 and record["min_voxels"] == 5 and record["exclude_border"] is True
    assert record["all_objects"] is False and record["objects"] == len(table["label"]) > 3
    assert record["objects_tables"] == [str(tmp_path / "objects.csv"), str(out / "objects.csv")]
    assert record["summary"] == str(out / "summary.json") and record["voxel_size_nm"] == [30.0] * 3
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["labels"] == target
    if ":" not in labels:  # the record in the results folder: in the report's provenance
        assert main(["report", str(out), "-q"]) == 0
        assert f"{labels}.provenance.json" in (out / "report.html").read_text(encoding="utf-8")
    # --overwrite: tomoseg's own label image replaced, its record with it
    assert main(argv[:-1] + ["--threshold", "150", "--overwrite", "-q"]) == 0
    assert _record(target)["threshold"] == 150
    # a user's own label image saved at that path (the record left beside it) is never replaced
    if labels.endswith(".tif"):
        tifffile.imwrite(target, np.ones(prob.shape, np.uint16), photometric="minisblack")
    elif labels.endswith(".npy"):
        np.save(target, np.ones(prob.shape, np.uint32))
    else:
        with h5py.File(tmp_path / "res.h5", "a") as f:
            del f["/entry/labels"]
            f["/entry/labels"] = np.ones(prob.shape, np.uint32)
    capsys.readouterr()
    assert main(argv[:-1] + ["--overwrite", "-q"]) == 1
    err = capsys.readouterr().err  # its stamp in the record left beside it no longer matches (D3)
    assert "changed since tomoseg wrote it" in err or "its file changed since tomoseg last wrote into it" in err
    assert (read_volume(target) == 1).all()


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_cli_segment_labels_and_map_name_each_other_in_their_records(tmp_path, capsys, monkeypatch, chunked):
    """C8: segment --labels: the label image's record names the map it was labelled from, at segment's
    threshold, and the map's record; the map's record names the label image (outputs.labels). Both in one
    HDF5 file, a record each."""
    import dataclasses

    from tomoseg.objects import analysis as analysis_module
    from tomoseg.objects import label_image as label_image_module
    from tomoseg.synthetic import make_phantom

    if chunked:  # labelled chunk by chunk: the analysis' own labels written, the map closed meanwhile
        plain = analysis_module.AnalysisOptions
        monkeypatch.setattr(analysis_module, "AnalysisOptions", lambda **kw: dataclasses.replace(
            plain(**kw), in_memory_voxels=1000, chunks=(16, 32, 32)))
        monkeypatch.setattr(label_image_module, "label_chunked", None)  # no second labelling
    write_volume(str(tmp_path / "scan.tif"), make_phantom((32, 64, 64), rng=2).image, voxel_size=(29.33,) * 3)
    h5 = tmp_path / "out.h5"
    assert main(["segment", str(tmp_path / "scan.tif"), f"{h5}:/prob", "--labels", f"{h5}:/labels", "--threshold",
                 "110", "--backend", "torch", "--device", "cpu", "--tile-size", "32", "--halo", "16", "-q"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"-> {h5}:/prob, {h5}:/labels")  # N7: the line names it too
    prob_record, labels_record = _record(f"{h5}:/prob"), _record(f"{h5}:/labels")
    assert prob_record["tool"] == "tomoseg segment" and prob_record["outputs"]["labels"] == f"{h5}:/labels"
    assert labels_record["command"] == "tomoseg segment --labels"
    assert labels_record["labelled_from"] == f"{h5}:/prob" and labels_record["labelled_as"] == "probability map"
    assert labels_record["threshold"] == 110 and labels_record["all_objects"] is False
    assert labels_record["segment_record"] == str(tmp_path / "out.h5#prob.provenance.json")
    ids = read_volume(f"{h5}:/labels")
    assert labels_record["objects"] == len(np.unique(ids[ids > 0])) > 0
    assert labels_record["max_label"] == int(ids.max()) and labels_record["voxel_size_nm"] == [29.33] * 3


def test_cli_analyze_labels_into_a_new_dataset_of_an_existing_hdf5_file(rng, tmp_path, capsys):
    """A label image written as a new dataset of an existing HDF5 file (one of results, beside an earlier run's
    labels) replaces nothing: it was refused ('already exists; pass --overwrite') as if the file were the output.
    An existing dataset is still refused without --overwrite, and a user's file in the label image's place with
    it; the input's own file is never written (its own check)."""
    prob = np.where(blobs(rng) > 0, 200, 40).astype(np.uint8)
    write_volume(tmp_path / "prob.tif", prob, voxel_size=(30.0, 30.0, 30.0))
    write_volume(f"{tmp_path / 'results.h5'}:/earlier", np.zeros((4, 5, 6), np.uint32))
    argv = ["analyze", str(tmp_path / "prob.tif"), "-q"]
    assert main(argv + ["--out", str(tmp_path / "r1"), "--labels", f"{tmp_path / 'results.h5'}:/labels"]) == 0
    assert read_volume(f"{tmp_path / 'results.h5'}:/labels").max() > 3
    assert read_volume(f"{tmp_path / 'results.h5'}:/earlier").shape == (4, 5, 6)
    capsys.readouterr()
    assert main(argv + ["--out", str(tmp_path / "r2"), "--labels", f"{tmp_path / 'results.h5'}:/labels"]) == 1
    assert "an earlier tomoseg result); pass --overwrite" in capsys.readouterr().err
    np.save(tmp_path / "mine.npy", np.ones(prob.shape, np.uint32))
    assert main(argv + ["--out", str(tmp_path / "r3"), "--labels", str(tmp_path / "mine.npy"), "--overwrite"]) == 1
    assert "tomoseg did not write" in capsys.readouterr().err


def test_a_zarr_label_image_shows_its_pyramid_on_the_bar(rng, tmp_path):
    """The 2x2x2 modes of a .zarr label image read the whole image again: the bar goes on as its own stage
    ("label image pyramid"), counting the voxels read to make each coarser level, instead of standing at 100 %."""
    import io

    from tomoseg.io.ome_zarr import have_models, read_pyramid
    from tomoseg.progress import Progress

    if not have_models():
        pytest.skip("ome-zarr-models not installed")
    mask = np.pad(blobs(rng), ((0, 60), (0, 100), (0, 80)))  # 100x170x170: large enough for 2 levels
    result = analyze(mask)
    stream = io.StringIO()
    bar = Progress(mask.size, desc="label image", stream=stream, tty=False, interval=0)
    write_label_image(mask, tmp_path / "labels.zarr", result.selected, progress=bar)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert any(line.startswith("label image: 100%") for line in lines), lines
    assert lines[-1].startswith("label image pyramid: 100%"), lines
    levels = read_pyramid(tmp_path / "labels.zarr")
    assert len(levels) >= 2 and bar.total == bar.n == sum(int(np.prod(lv.shape)) for lv in levels[:-1])
