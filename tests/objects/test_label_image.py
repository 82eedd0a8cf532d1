"""The label image and the objects table describe the same objects: ID = row's label, same voxels."""

import re

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

    mask = blobs(rng)
    with pytest.raises(TomosegError, match="sample mask is empty"):
        analyze(mask, options=AnalysisOptions(chunks=(16, 32, 32), in_memory_voxels=1000), keep_labels=True,
                workdir=tmp_path, sample_mask=np.zeros(mask.shape, np.uint8))
    assert not list(tmp_path.glob("tomoseg-labels-*"))


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
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    captions = json.loads((tmp_path / "out" / "figures" / "captions.json").read_text(encoding="utf-8"))
    assert f"z = {z} is the slice with the most object voxels ({int(mask[z].sum()):,})" in captions["orthoslices"]
    # the figure alone reads three planes of each volume
    from tomoseg.io import open_volume
    from tomoseg.objects.analysis import MaskView
    from tomoseg.report import figures

    view = MaskView(open_volume(tmp_path / "mask.zarr"))  # reads a spread sample once: mask or probability?
    reads.clear()
    figures.orthoslices(open_volume(tmp_path / "image.zarr"), view, tmp_path / "o.png", centre=(z, 35, 45))
    assert sorted(reads) == sorted([70 * 90, 40 * 90, 40 * 70] * 2)
