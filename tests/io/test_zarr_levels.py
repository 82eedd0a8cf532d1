"""OME-Zarr levels named the ways napari users and shell completion name them (readers review IN8), and Zarr
groups whose arrays are nested (IN11)."""

import numpy as np
import pytest
import zarr

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.io import open_volume

SCALE = [2.0, 0.25, 0.5]  # micrometer, level 0


@pytest.fixture
def vol():
    return np.arange(8 * 12 * 16, dtype=np.uint16).reshape(8, 12, 16)


@pytest.fixture(params=[2, 3], ids=["ngff0.4-zarr2", "ngff0.5-zarr3"])
def store(request, tmp_path, vol):
    path = tmp_path / "o.ome.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=request.param)
    data = vol
    for i in range(2):
        g.create_array(str(i), data=data, chunks=(4, 8, 8))
        data = data[::2, ::2, ::2]
    ms = {"axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
          "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [s * 2 ** i
                                                                                                 for s in SCALE]}]}
                       for i in range(2)]}
    if request.param == 2:
        g.attrs["multiscales"] = [{"version": "0.4", **ms}]
    else:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


@pytest.mark.parametrize("spec, level", [("{s}/0", 0), ("{s}/1", 1), ("{s}/1/", 1), ("{s}:1/", 1), ("{s}/:1", 1),
                                         ("{s}:1", 1)])
def test_in8_a_level_named_as_a_path_keeps_its_voxel_size(store, vol, spec, level):
    with open_volume(spec.format(s=store)) as v:
        assert np.array_equal(v.read(), vol[::2 ** level, ::2 ** level, ::2 ** level])
        assert v.voxel_size == pytest.approx(tuple(s * 1e3 * 2 ** level for s in SCALE))


def test_in8_info_reports_the_level_voxel_size(store, capsys):
    assert main(["info", f"{store}/1"]) == 0
    out = capsys.readouterr().out
    assert "4000 × 500 × 1000 nm" in out and "level 1 from the OME-NGFF multiscales of o.ome.zarr" in out


def test_in8_an_array_in_a_plain_group_has_no_voxel_size(tmp_path, vol):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("a", data=vol)
    with open_volume(tmp_path / "g.zarr" / "a") as v:
        assert v.voxel_size is None


def test_in11_a_group_of_nested_arrays_lists_them(tmp_path, vol):
    g = zarr.open_group(str(tmp_path / "n.zarr"), mode="w")
    g.create_group("recon").create_array("vol", data=vol)
    with pytest.raises(TomosegError, match=r"it holds the arrays recon/vol; name one as .*n\.zarr:NAME "
                                           r"\(e\.g\. .*n\.zarr:recon/vol\)"):
        open_volume(tmp_path / "n.zarr")
    with open_volume(f"{tmp_path / 'n.zarr'}:recon/vol") as v:
        assert np.array_equal(v.read(), vol)


def test_u7_a_labels_image_named_after_the_colon_keeps_its_voxel_size(tmp_path):
    """store:labels/objects (the NGFF path of a label image) said 'Zarr metadata cannot be used (AttributeError:
    'Group' object has no attribute 'shape'); the store may be damaged', and store:labels/objects/0 read without
    a voxel size, though store/labels/objects/0 had one (review U7)."""
    labels = np.zeros((8, 12, 16), np.uint32)
    labels[2:5, 3:7, 4:9] = 1
    path = tmp_path / "r.ome.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", data=labels.astype(np.uint8))
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    level = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": SCALE}]}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": level}]}
    lab = g.create_group("labels")
    lab.attrs["ome"] = {"version": "0.5", "labels": ["objects"]}
    obj = lab.create_group("objects")
    obj.create_array("0", data=labels)
    obj.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": level}],
                        "image-label": {"source": {"image": "../../"}}}
    for spec in (f"{path}:labels/objects", f"{path}:labels/objects/0", f"{path}/labels/objects"):
        with open_volume(spec) as v:
            assert np.array_equal(v.read(), labels)
            assert v.voxel_size == pytest.approx((2000.0, 250.0, 500.0)), spec
    with pytest.raises(TomosegError, match=r"r.ome.zarr:labels: is a Zarr group without OME-NGFF metadata; it "
                                           r"holds the arrays labels/objects/0; name one as .*:labels/objects/0\)"):
        open_volume(f"{path}:labels")
    with pytest.raises(TomosegError, match=r"has no array 'labels/objects/3'; it holds labels/objects/0"):
        open_volume(f"{path}:labels/objects/3")
