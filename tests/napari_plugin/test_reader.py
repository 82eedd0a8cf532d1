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
