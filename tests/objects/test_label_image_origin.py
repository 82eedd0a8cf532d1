"""analyze's label images lie where its input lies: an OME-Zarr input's translation (an NRRD's space origin) is
the origin of the ``centroid_*_nm`` columns, and now of the label images too: a Zarr label image's (and every
image of ``--ome-zarr``'s) multiscale translation, each pyramid level's at its 2x2x2 block centres, and an NRRD
label image's ``space origin``. They were written at 0, so viewers that apply the translation (napari-ome-zarr,
neuroglancer, 3D Slicer) drew the labels shifted from the image, and away from the CSV's nm centroids."""

import dataclasses

import nrrd
import numpy as np
import pytest
import zarr

from tomoseg.cli import main
from tomoseg.io import open_volume
from tomoseg.io.nrrd_file import origin_nm
from tomoseg.table import read_csv

SCALE_UM = [0.06, 0.03, 0.03]          # z, y, x in micrometer
TRANSLATION_UM = [1.5, -2.0, 12.25]    # level 0's
SCALE_NM = [s * 1000 for s in SCALE_UM]
ORIGIN_NM = [t * 1000 for t in TRANSLATION_UM]
SHAPE = (24, 40, 300)                  # wider than a chunk along x: label pyramids of three levels
CENTRES = [(8, 12, 40), (14, 26, 150), (10, 20, 260)]


def _balls(shape=SHAPE, centres=CENTRES, r=3.6):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    out = np.zeros(shape, np.uint8)
    for c in centres:
        out[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r] = 1
    return out


def _ome_zarr_input(path):
    """A mask cut from a larger scan, as an OME-Zarr 0.5 image whose level 0 has a translation (micrometer)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=_balls(), chunks=(8, 16, 64))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": SCALE_UM}, {"type": "translation", "translation": TRANSLATION_UM}]}]}]}
    return path


def _nrrd_input(path):
    """The same mask as an NRRD with a space origin (micrometer; NRRD's vectors are x, y, z)."""
    header = {"space dimension": 3, "space units": ["um", "um", "um"],
              "space directions": np.diag(SCALE_UM[::-1]), "space origin": np.array(TRANSLATION_UM[::-1]),
              "kinds": ["domain"] * 3, "encoding": "raw"}
    nrrd.write(str(path), np.ascontiguousarray(_balls().transpose(2, 1, 0)), header, index_order="F")
    return path


def origin_of(volume):
    """Where the volume's voxel (0, 0, 0) lies (nm): its OME-Zarr translation, or its NRRD space origin."""
    return volume.origin_nm if volume.origin_nm is not None else origin_nm(volume.orientation)


def _chunked(monkeypatch):
    """analyze labels the volume chunk by chunk and keeps its labels: the label images are mapped from them."""
    from tomoseg.cli import analysis as cli_analysis

    plain = cli_analysis._options
    monkeypatch.setattr(cli_analysis, "_options",
                        lambda args: dataclasses.replace(plain(args), in_memory_voxels=1000, chunks=(16, 32, 32)))


def _datasets(group) -> list[dict]:
    """{type: values} of each level's coordinate transformations, finest first."""
    ms = dict(group.attrs)["ome"]["multiscales"][0]
    assert [a.get("unit") for a in ms["axes"]] == ["nanometer"] * 3
    return [{t["type"]: t[t["type"]] for t in d["coordinateTransformations"]} for d in ms["datasets"]]


def _check_levels(group) -> None:
    """Level l: scale × 2^l, its translation at the centre of its 2x2x2^l block of level-0 voxels."""
    levels = _datasets(group)
    assert len(levels) >= 3
    for level, d in enumerate(levels):
        f = 2 ** level
        assert d["scale"] == pytest.approx([s * f for s in SCALE_NM])
        assert d["translation"] == pytest.approx([o + s * (f - 1) / 2 for o, s in zip(ORIGIN_NM, SCALE_NM)])
    assert levels[1]["translation"] == pytest.approx([o + s / 2 for o, s in zip(ORIGIN_NM, SCALE_NM)])


def _check_against_csv(labels: np.ndarray, volume, table: dict) -> None:
    """Each row's centroid_*_nm is where its voxels lie in the label image, placed by the image's own voxel size
    and origin: the table and the image agree in nm."""
    assert len(table["label"]) == len(CENTRES)
    origin = origin_of(volume)
    for i, lab in enumerate(table["label"]):
        where = np.nonzero(labels == lab)
        for axis, a in enumerate("zyx"):
            nm = origin[axis] + where[axis].mean() * volume.voxel_size[axis]
            assert nm == pytest.approx(table[f"centroid_{a}_nm"][i], abs=1e-3)


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_a_zarr_label_image_has_the_inputs_translation(tmp_path, monkeypatch, chunked):
    if chunked:
        _chunked(monkeypatch)
    source = _ome_zarr_input(tmp_path / "cut.ome.zarr")
    out = tmp_path / "labels.zarr"
    assert main(["analyze", str(source), "--csv", str(tmp_path / "objects.csv"), "--labels", str(out), "-q"]) == 0
    _check_levels(zarr.open_group(str(out), mode="r"))
    with open_volume(out) as vol:
        assert vol.origin_nm == pytest.approx(ORIGIN_NM) and vol.voxel_size == pytest.approx(SCALE_NM)
        _check_against_csv(vol.read(), vol, read_csv(tmp_path / "objects.csv"))
    from tomoseg.io.output_guard import tomoseg_provenance

    assert tomoseg_provenance(out)["origin_nm"] == pytest.approx(ORIGIN_NM)  # the record says it too


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_every_image_of_the_ome_zarr_has_the_inputs_translation(tmp_path, monkeypatch, chunked):
    """--ome-zarr: the image, labels/mask and labels/objects, each with its pyramid."""
    if chunked:
        _chunked(monkeypatch)
    source = _ome_zarr_input(tmp_path / "cut.ome.zarr")
    out = tmp_path / "objects.ome.zarr"
    assert main(["analyze", str(source), "--csv", str(tmp_path / "objects.csv"), "--ome-zarr", str(out), "-q"]) == 0
    root = zarr.open_group(str(out), mode="r")
    for image in ("", "labels/mask", "labels/objects"):
        _check_levels(root[image] if image else root)
        with open_volume(f"{out}:{image}" if image else out) as vol:
            assert vol.origin_nm == pytest.approx(ORIGIN_NM) and vol.voxel_size == pytest.approx(SCALE_NM)
    with open_volume(f"{out}:labels/objects") as vol:
        _check_against_csv(vol.read(), vol, read_csv(tmp_path / "objects.csv"))


def test_an_nrrd_label_image_has_the_inputs_translation_as_its_space_origin(tmp_path):
    source = _ome_zarr_input(tmp_path / "cut.ome.zarr")
    out = tmp_path / "labels.nrrd"
    assert main(["analyze", str(source), "--csv", str(tmp_path / "objects.csv"), "--labels", str(out), "-q"]) == 0
    header = nrrd.read_header(str(out))
    assert list(header["space origin"]) == pytest.approx(ORIGIN_NM[::-1])  # x, y, z
    assert list(header["space units"]) == ["nm"] * 3
    with open_volume(out) as vol:
        assert origin_of(vol) == pytest.approx(ORIGIN_NM) and vol.voxel_size == pytest.approx(SCALE_NM)
        _check_against_csv(vol.read(), vol, read_csv(tmp_path / "objects.csv"))


def test_an_nrrd_inputs_space_origin_is_a_zarr_label_images_translation(tmp_path):
    source = _nrrd_input(tmp_path / "cut.nrrd")
    with open_volume(source) as vol:
        assert origin_of(vol) == pytest.approx(ORIGIN_NM) and vol.voxel_size == pytest.approx(SCALE_NM)
    out = tmp_path / "labels.zarr"
    assert main(["analyze", str(source), "--csv", str(tmp_path / "objects.csv"), "--labels", str(out), "-q"]) == 0
    _check_levels(zarr.open_group(str(out), mode="r"))
    with open_volume(out) as vol:
        assert vol.origin_nm == pytest.approx(ORIGIN_NM)
        _check_against_csv(vol.read(), vol, read_csv(tmp_path / "objects.csv"))
