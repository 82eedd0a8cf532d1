"""The napari reader on volumes larger than memory: lazy arrays that read only what is drawn (no napari or Qt
needed for the reader itself)."""

import numpy as np
import pytest

from tomoseg.io import volume as volume_module
from tomoseg.io import write_volume
from tomoseg.napari_plugin import reader


@pytest.mark.parametrize("name, chunks", [("scan.h5", (8, 32, 16)), ("scan.tif", (1, 64, 48)),
                                          ("objects_labels.tif", (1, 64, 48))])
def test_large_volumes_open_lazily_in_their_storage_chunks(tmp_path, monkeypatch, name, chunks):
    """Above LAZY_VOXELS a volume opens as a dask array in its storage chunks (whole slices for TIFF): the same
    values, and showing one slice reads one chunk layer, never the volume (deciding image or labels reads about
    8 slices). Small volumes are still read into memory."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (20, 64, 48)).astype(np.uint8)
    if "labels" in name:
        data = (data > 200).astype(np.uint16) * rng.integers(1, 9, data.shape).astype(np.uint16)
    write_volume(tmp_path / name, data, **({"chunks": chunks} if name.endswith(".h5") else {}))
    (small, _, kind), = reader.read(str(tmp_path / name))
    assert isinstance(small, np.ndarray) and kind == ("labels" if "labels" in name else "image")
    monkeypatch.setattr(reader, "LAZY_VOXELS", 1000)
    reads = []
    real = volume_module.Volume.__getitem__
    monkeypatch.setattr(volume_module.Volume, "__getitem__", lambda self, key: reads.append(
        real(self, key).size) or real(self, key))
    (lazy, kw, kind_lazy), = reader.read(str(tmp_path / name))
    assert kind_lazy == kind and type(lazy).__module__.startswith("dask") and lazy.chunksize == chunks
    assert sum(reads) <= data[::2].size  # the image-or-labels check: a few slices
    reads.clear()
    assert np.array_equal(np.asarray(lazy[7]), data[7]) and max(reads) <= int(np.prod(chunks)) * 3
    assert sum(reads) <= 64 * 48 * chunks[0]
    assert np.array_equal(np.asarray(lazy), data)


def test_a_lazy_volume_becomes_a_napari_layer(tmp_path, monkeypatch):
    napari = pytest.importorskip("napari")
    data = np.random.default_rng(2).integers(0, 255, (20, 64, 48)).astype(np.uint8)
    write_volume(tmp_path / "scan.h5", data, chunks=(8, 32, 16), voxel_size=(30.0, 30.0, 30.0))
    monkeypatch.setattr(reader, "LAZY_VOXELS", 1000)
    (lazy, kw, kind), = reader.read(str(tmp_path / "scan.h5"))
    viewer = napari.components.ViewerModel()
    layer = viewer.add_image(lazy, **kw)
    assert layer.data is lazy and tuple(layer.scale) == (30.0, 30.0, 30.0) and layer.data.shape == data.shape


def test_files_tomoseg_cannot_read_as_a_volume_are_left_to_other_readers(tmp_path):
    """The reader claimed every .tif, .npy, .h5 and .zarr by its name and then failed on a 2D or colour TIFF, a
    plain Zarr group or an HDF5 file of several datasets; once a user chose tomoseg for *.tif, ordinary images
    no longer opened (review N7). It now declines what tomoseg cannot read as a volume."""
    import h5py
    import tifffile
    import zarr

    tifffile.imwrite(tmp_path / "photo.tif", np.zeros((16, 16), np.uint8))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = np.zeros((4, 8, 8), np.uint8)
        f["b"] = np.zeros((4, 8, 8), np.uint8)
    for name in ("photo.tif", "rgb.tif", "group.zarr", "two.h5"):
        assert reader.get_reader(str(tmp_path / name)) is None, name
    write_volume(tmp_path / "scan.tif", np.zeros((4, 16, 16), np.uint8))
    assert reader.get_reader(str(tmp_path / "scan.tif")) is reader.read


def test_tomoseg_label_images_open_as_labels_whatever_their_name(tmp_path):
    """N9: a label image named as the user chose (lab.tif, uint16: no 'label' in the name, not uint32) opened as
    an image. Its provenance record (written with it since C8) says what it is; a plain uint16 volume of the same
    name without it stays an image."""
    from tomoseg.cli import main

    mask = np.zeros((12, 40, 40), np.uint8)
    mask[3:7, 5:10, 5:10] = 1
    mask[3:7, 20:25, 20:25] = 1
    write_volume(tmp_path / "m.tif", mask)
    assert main(["analyze", str(tmp_path / "m.tif"), "--out", str(tmp_path / "res"), "--labels",
                 str(tmp_path / "lab.tif"), "-q"]) == 0
    (data, _, kind), = reader.read(str(tmp_path / "lab.tif"))
    assert kind == "labels" and int(np.asarray(data).max()) == 2
    (tmp_path / "other").mkdir()
    write_volume(tmp_path / "other" / "lab.tif", np.asarray(data).astype(np.uint16))
    (_, _, kind), = reader.read(str(tmp_path / "other" / "lab.tif"))
    assert kind == "image"


def test_segments_mask_has_its_own_record_and_opens_as_labels(tmp_path):
    """segment's --mask had no provenance record of its own: named as the user chose (pores.tif) it opened in
    napari as a gray image, and nothing beside it said where it came from. Now its record (the run's, marked
    ``written: mask``) sits beside it: napari opens it as Labels, --overwrite replaces it, and a file the user
    saved over it is no longer taken for tomoseg's."""
    import json

    from tomoseg.cli import main
    from tomoseg.synthetic import make_phantom

    image = make_phantom((24, 64, 64), rng=np.random.default_rng(2)).image
    write_volume(tmp_path / "scan.tif", image)
    args = ["segment", str(tmp_path / "scan.tif"), str(tmp_path / "prob.tif"), "--mask", str(tmp_path / "pores.tif"),
            "-q"]
    assert main(args) == 0
    record = json.loads((tmp_path / "pores.tif.provenance.json").read_text())
    assert record["written"] == "mask" and record["outputs"]["mask"].endswith("pores.tif")
    (data, _, kind), = reader.read(str(tmp_path / "pores.tif"))
    assert kind == "labels" and set(np.unique(np.asarray(data))) <= {0, 1}
    assert main(args + ["--overwrite"]) == 0
    import tifffile

    tifffile.imwrite(tmp_path / "pores.tif", np.zeros(image.shape, np.uint8))  # the user's own now (as Fiji saves)
    before = (tmp_path / "pores.tif").read_bytes()
    assert main(args + ["--overwrite"]) == 1
    assert (tmp_path / "pores.tif").read_bytes() == before


def test_a_phantoms_labels_open_as_labels_whatever_their_name(tmp_path):
    """The phantom's record says which output each file is ("written": labels, instances, ...): its labels and
    object ids open as Labels layers even under names without "label" in them; its gray image as an image."""
    from tomoseg.cli import main
    from tomoseg.napari_plugin.reader import read

    assert main(["phantom", str(tmp_path / "scan.tif"), "--labels", str(tmp_path / "pores.tif"), "--instances",
                 str(tmp_path / "ids.zarr"), "--shape", "24", "64", "64", "--seed", "2", "-q"]) == 0
    kinds = {name: read(tmp_path / name)[0][2] for name in ("scan.tif", "pores.tif", "ids.zarr")}
    assert kinds == {"scan.tif": "image", "pores.tif": "labels", "ids.zarr": "labels"}


def test_every_volume_format_is_claimed_by_the_manifest_and_the_reader(tmp_path):
    """The napari manifest listed .zarr, .tif, .h5, .hdf5, .nxs, .nrrd and .npy, so napari never offered tomoseg
    for .nx (nxtomomill), .zarr.zip, .vol or .nhdr files that tomoseg reads. Its patterns now cover every
    extension of ``tomoseg.io.EXTENSIONS``, and the reader takes each such file that holds a volume."""
    import fnmatch
    from pathlib import Path

    import nrrd
    import yaml
    import zarr

    from tomoseg.io import EXTENSIONS

    manifest = yaml.safe_load((Path(reader.__file__).parent / "napari.yaml").read_text())
    patterns = manifest["contributions"]["readers"][0]["filename_patterns"]
    for ext in EXTENSIONS:
        assert any(fnmatch.fnmatch(f"scan{ext}", pattern) for pattern in patterns), ext
    data = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16)
    for name in ("scan.nx", "scan.hdf", "scan.vol", "scan.zarr3"):
        write_volume(tmp_path / name, data.astype(np.float32) if name.endswith(".vol") else data)
    nrrd.write(str(tmp_path / "scan.nhdr"), data, index_order="C")  # a detached header (tomoseg writes .nrrd)
    store = zarr.storage.ZipStore(tmp_path / "scan.zarr.zip", mode="w")
    zarr.create_array(store, shape=data.shape, dtype=data.dtype)[:] = data
    store.close()
    for name in ("scan.nx", "scan.hdf", "scan.nhdr", "scan.vol", "scan.zarr3", "scan.zarr.zip"):
        assert reader.get_reader(str(tmp_path / name)) is reader.read, name
        (array, _, kind), = reader.read(str(tmp_path / name))
        assert kind == "image" and np.array_equal(np.asarray(array), data), name
