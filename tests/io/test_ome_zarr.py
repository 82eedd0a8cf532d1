"""OME-Zarr with pyramids and labels/: checked against the NGFF 0.5 spec (ome-zarr-models)."""

import json

import numpy as np
import pytest
import zarr

pytest.importorskip("ome_zarr_models")  # Python 3.11 to 3.13

from tomoseg.cli import main  # noqa: E402
from tomoseg.errors import TomosegError  # noqa: E402
from tomoseg.io import open_volume, write_volume  # noqa: E402
from tomoseg.io.ome_zarr import (add_pyramid, downsample_mean, downsample_mode, pyramid_shapes, read_pyramid,
                                 validate_ome_zarr, write_ome_zarr)  # noqa: E402

VS = (29.33, 29.33, 29.33)


def test_levels_halve_down_to_one_chunk():
    assert pyramid_shapes((64, 128, 128)) == [(64, 128, 128)]
    assert pyramid_shapes((65, 128, 128)) == [(65, 128, 128), (33, 64, 64)]
    shapes = pyramid_shapes((2048, 2048, 2048))
    assert shapes[-1] == (64, 64, 64) and len(shapes) == 6


def test_mean_and_mode_downsampling(rng):
    img = rng.integers(0, 255, (6, 8, 10)).astype(np.float32)
    expected = img.reshape(3, 2, 4, 2, 5, 2).mean(axis=(1, 3, 5))
    assert np.allclose(downsample_mean(img), expected)
    assert downsample_mean(np.ones((3, 3, 3), np.uint8)).shape == (2, 2, 2)  # odd sizes round up
    lab = np.zeros((4, 4, 4), np.uint32)
    lab[:2, :2, :2] = 5          # a full block: 5
    lab[2:, 2:, 2:] = [[1, 2], [2, 2]]  # 2 wins 6 to 2
    lab[0, 2, 2] = 9              # one voxel of 9 among background: background wins
    lab[2:, :2, :2] = 0
    lab[2, 0, 0] = lab[2, 0, 1] = lab[2, 1, 0] = lab[2, 1, 1] = 4  # 4 against 0, 4 to 4: the object wins
    assert downsample_mode(lab)[:, :, :].tolist() == [[[5, 0], [0, 0]], [[4, 0], [0, 2]]]


@pytest.mark.parametrize("shape", [(6, 8, 10), (7, 9, 5), (1, 1, 1), (2, 3, 1), (33, 64, 17)])
def test_integer_and_binary_fast_paths_equal_the_general_downsampling(rng, shape):
    """uint8/uint16 means are summed in integers and binary masks counted (4 of 8 or more: the object wins a tie);
    both must give exactly what the general float mean (np.rint) and the general mode give."""
    from tomoseg.io.ome_zarr import _blocks, _mode

    for dtype in (np.uint8, np.uint16):
        img = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
        img.flat[::3] = img.flat[::3] // 8 * 8 + 4  # many block sums on a half, where rint rounds to even
        general = np.rint(_blocks(img).mean(axis=-1, dtype=np.float64)).astype(dtype)
        np.testing.assert_array_equal(downsample_mean(img), general)
        mask = (rng.random(shape) < 0.5).astype(dtype)
        np.testing.assert_array_equal(downsample_mode(mask), _mode(mask))  # _mode: the path for any labels
    flags = rng.random(shape) < 0.5
    np.testing.assert_array_equal(downsample_mode(flags), _mode(flags))


def test_label_mode_equals_a_block_by_block_count(rng):
    """The mode of labels, against the rule counted block by block in Python: most votes, then an object over
    background, then the smaller label. Mostly uniform blocks (as in a label image) and some mixed ones."""
    from collections import Counter

    from tomoseg.io.ome_zarr import _blocks

    lab = np.repeat(np.repeat(np.repeat(rng.integers(0, 4, (4, 5, 6)), 2, 0), 2, 1), 2, 2).astype(np.uint32)
    noise = rng.random(lab.shape) < 0.15
    lab[noise] = rng.integers(0, 7, int(noise.sum()))
    lab = lab[:7, :9, :12]  # odd edges
    got = downsample_mode(lab)
    for index in np.ndindex(got.shape):
        votes = Counter(_blocks(lab)[index].tolist())
        want = min(votes, key=lambda v: (-votes[v], v == 0, v))
        assert got[index] == want, (index, votes)


@pytest.fixture
def stack(rng):
    """A volume larger than one chunk with a mask and labels."""
    shape = (70, 150, 200)
    image = rng.normal(120, 20, shape).clip(0, 255).astype(np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask[10:20, 30:40, 50:60] = 1
    mask[40:44, 100:130, 20:24] = 1
    objects = (mask * np.where(np.arange(shape[0])[:, None, None] < 30, 1, 2)).astype(np.uint32)
    return image, mask, objects


def test_write_passes_ngff_validation_with_pyramid_and_labels(tmp_path, stack):
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.labels import Labels

    image, mask, objects = stack
    path = write_ome_zarr(tmp_path / "result.ome.zarr", image, labels={"mask": mask, "objects": objects},
                          voxel_size=VS, label_colors={"objects": {1: (1, 2, 3, 255), 2: (4, 5, 6, 255)}},
                          label_properties={"objects": {1: {"equivalent_radius_nm": 50.0},
                                                        2: {"equivalent_radius_nm": 80.0}}})
    group = zarr.open_group(str(path), mode="r")
    model = Image.from_zarr(group)  # the NGFF validator: raises on any deviation from the spec
    ms = model.attributes.ome.multiscales[0]
    assert len(ms.datasets) >= 2
    assert [(a.name, a.unit) for a in ms.axes] == [("z", "nanometer"), ("y", "nanometer"), ("x", "nanometer")]
    scales = [d.coordinateTransformations[0].scale for d in ms.datasets]
    assert scales[0] == pytest.approx(VS) and scales[1] == pytest.approx([2 * v for v in VS])
    labels = Labels.from_zarr(group["labels"])
    assert labels.attributes.ome.labels == ["mask", "objects"]
    for name, data in (("mask", mask), ("objects", objects)):
        levels = read_pyramid(path, f"labels/{name}")
        assert len(levels) == len(ms.datasets)
        assert np.array_equal(levels[0][:], data)
        assert levels[1].shape == tuple((s + 1) // 2 for s in data.shape)
    meta = group["labels/objects"].attrs["ome"]["image-label"]
    assert meta["colors"][1] == {"label-value": 2, "rgba": [4, 5, 6, 255]}
    assert meta["properties"][0]["equivalent_radius_nm"] == 50.0
    assert validate_ome_zarr(path) == {"levels": len(ms.datasets), "labels": ["mask", "objects"],
                                       "axes": [("z", "nanometer"), ("y", "nanometer"), ("x", "nanometer")]}
    vol = open_volume(path)  # tomoseg reads level 0 at scale
    assert vol.voxel_size == pytest.approx(VS) and np.array_equal(vol.read(), image)


def test_readable_by_ome_zarr_py(tmp_path, stack):
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    image, mask, objects = stack
    path = write_ome_zarr(tmp_path / "r.ome.zarr", image, labels={"mask": mask, "objects": objects}, voxel_size=VS)
    nodes = list(reader.Reader(parse_url(str(path)))())
    assert len(nodes[0].data) >= 2 and np.array_equal(np.asarray(nodes[0].data[0]), image)


def test_refuses_to_overwrite_or_replace_foreign_stores(tmp_path, stack):
    image, _, _ = stack
    p = write_ome_zarr(tmp_path / "a.ome.zarr", image[:8, :8, :8])
    with pytest.raises(TomosegError, match="already exists"):
        write_ome_zarr(p, image[:8, :8, :8])
    write_ome_zarr(p, image[:8, :8, :8], overwrite=True)
    foreign = tmp_path / "theirs.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["x"] = 1
    with pytest.raises(TomosegError, match="not written by tomoseg"):
        write_ome_zarr(foreign, image[:8, :8, :8], overwrite=True)


def test_pyramid_added_to_a_single_scale_output(tmp_path, stack):
    image, _, _ = stack
    write_volume(tmp_path / "prob.zarr", image, voxel_size=VS)  # today's single-scale writer
    assert add_pyramid(tmp_path / "prob.zarr") >= 2
    assert validate_ome_zarr(tmp_path / "prob.zarr")["levels"] >= 2
    assert np.array_equal(open_volume(tmp_path / "prob.zarr").read(), image)


def test_cli_analyze_writes_one_ome_zarr_for_viewers(tmp_path, stack):
    image, mask, _ = stack
    write_volume(tmp_path / "mask.tif", mask, voxel_size=VS)
    write_volume(tmp_path / "image.tif", image, voxel_size=VS)
    out = tmp_path / "result.ome.zarr"
    assert main(["analyze", str(tmp_path / "mask.tif"), "--intensity", str(tmp_path / "image.tif"), "--json",
                 "--ome-zarr", str(out), "-q"]) == 0
    summary = validate_ome_zarr(out)
    assert summary["levels"] >= 2 and summary["labels"] == ["mask", "objects"]
    group = zarr.open_group(str(out), mode="r")
    props = group["labels/objects"].attrs["ome"]["image-label"]["properties"]
    assert sorted(p["label-value"] for p in props) == sorted(np.unique(group["labels/objects/0"][:])[1:].tolist())
    assert json.dumps(props)  # plain JSON, no NaN



def test_a_multiscale_level_scale_multiplies_each_datasets(tmp_path):
    """NGFF applies a multiscale's own coordinateTransformations after each dataset's: the voxel size read
    was the dataset's scale alone (1 µm where the image has 30 × 20 × 10 nm voxels)."""
    import zarr

    from tomoseg.io import open_volume

    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=3)
    root.create_array("0", shape=(4, 5, 6), dtype="u1")
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                               "scale": [1.0, 1.0, 1.0]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [0.03, 0.02, 0.01]}]}]}
    assert open_volume(str(tmp_path / "img.ome.zarr")).voxel_size == pytest.approx((30.0, 20.0, 10.0))


def test_a_level_named_by_the_user_keeps_its_voxel_size(tmp_path):
    """x.ome.zarr:1 read level 1 with no voxel size, although the metadata give it (second sweep S37)."""
    import zarr

    from tomoseg.io import open_volume

    root = zarr.open_group(str(tmp_path / "ms.ome.zarr"), mode="w", zarr_format=3)
    root.create_array("0", shape=(8, 16, 16), dtype="u1")
    root.create_array("1", shape=(4, 8, 8), dtype="u1")
    axes = [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [30.0 * 2 ** k] * 3}]}
        for k in (0, 1)]}]}
    assert open_volume(str(tmp_path / "ms.ome.zarr")).voxel_size == (30.0, 30.0, 30.0)
    level = open_volume(f"{tmp_path / 'ms.ome.zarr'}:1")
    assert level.shape == (4, 8, 8) and level.voxel_size == (60.0, 60.0, 60.0)


def test_add_pyramid_keeps_the_stores_units_and_metadata_and_refuses_other_tools_stores(tmp_path):
    """add_pyramid rewrote any NGFF image's axes as nanometer (a 0.5 µm voxel read as 0.5 nm), dropped its other
    metadata and stamped tomoseg's marker on another tool's store (review V5)."""
    img = np.arange(4 * 6 * 8, dtype=np.uint8).reshape(4, 6, 8)
    ome = {"version": "0.5", "multiscales": [{
        "name": "scan", "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.25, 0.25]}]}]}],
        "omero": {"channels": [{"label": "xray"}]}}
    for name, mine in (("theirs.ome.zarr", False), ("mine.ome.zarr", True)):
        root = zarr.open_group(str(tmp_path / name), mode="w", zarr_format=3)
        root.create_array("0", data=img, chunks=(2, 3, 4), dimension_names=["z", "y", "x"])
        root.attrs.update({"ome": ome, **({"tomoseg": {"written_by": "tomoseg"}} if mine else {})})
    with pytest.raises(TomosegError, match="was not written by tomoseg"):
        add_pyramid(tmp_path / "theirs.ome.zarr", chunks=(2, 3, 4))
    theirs = zarr.open_group(str(tmp_path / "theirs.ome.zarr"), mode="r")
    assert dict(theirs.attrs) == {"ome": ome} and list(theirs.array_keys()) == ["0"]

    assert add_pyramid(tmp_path / "mine.ome.zarr", chunks=(1, 2, 2)) == 3
    attrs = dict(zarr.open_group(str(tmp_path / "mine.ome.zarr"), mode="r").attrs)
    assert attrs["ome"]["omero"] == ome["omero"]
    assert attrs["ome"]["multiscales"][0]["axes"] == ome["multiscales"][0]["axes"]
    assert [d["coordinateTransformations"] for d in attrs["ome"]["multiscales"][0]["datasets"]] == [
        [{"type": "scale", "scale": [0.5, 0.25, 0.25]}],
        [{"type": "scale", "scale": [1.0, 0.5, 0.5]}, {"type": "translation", "translation": [0.25, 0.125, 0.125]}],
        [{"type": "scale", "scale": [2.0, 1.0, 1.0]}, {"type": "translation", "translation": [0.75, 0.375, 0.375]}]]
    assert open_volume(str(tmp_path / "mine.ome.zarr")).voxel_size == (500.0, 250.0, 250.0)
    assert validate_ome_zarr(tmp_path / "mine.ome.zarr")["levels"] == 3


def test_image_label_has_no_version_of_its_own(tmp_path, stack):
    """NGFF 0.5 keeps the version in ome.version only: image-label carried "version": "0.5" too, which strict 0.5
    readers reject (review W4). The label images stay valid NGFF 0.5 (ome-zarr-models)."""
    from ome_zarr_models.v05.image_label import ImageLabel

    image, mask, objects = stack
    path = write_ome_zarr(tmp_path / "r.ome.zarr", image, labels={"mask": mask, "objects": objects}, voxel_size=VS,
                          label_colors={"objects": {1: (1, 2, 3, 255)}})
    group = zarr.open_group(str(path), mode="r")
    for name in ("mask", "objects"):
        ome = group[f"labels/{name}"].attrs["ome"]
        assert "version" not in ome["image-label"] and ome["version"] == "0.5"
        assert ome["image-label"]["source"] == {"image": "../../"}
        ImageLabel.from_zarr(group[f"labels/{name}"])
    validate_ome_zarr(path)


def test_downscaling_type_says_what_the_store_holds(tmp_path, stack):
    """Every multiscale said "2x2x2 block mean (image) or mode (labels)", also on a single level that was never
    downscaled (review W5): the type is now the method used, mean or mode, with its description in "metadata",
    and absent where there is one level."""
    from ome_zarr_models.v05.image_label import ImageLabel

    image, mask, objects = stack
    path = write_ome_zarr(tmp_path / "r.ome.zarr", image, labels={"mask": mask, "objects": objects}, voxel_size=VS)
    group = zarr.open_group(str(path), mode="r")
    ms = group.attrs["ome"]["multiscales"][0]
    assert ms["type"] == "mean" and ms["metadata"]["method"] == "tomoseg.io.ome_zarr.downsample_mean"
    for name in ("mask", "objects"):
        ome = group[f"labels/{name}"].attrs["ome"]
        assert ome["multiscales"][0]["type"] == "mode"
        assert ome["multiscales"][0]["metadata"]["method"] == "tomoseg.io.ome_zarr.downsample_mode"
        ImageLabel.from_zarr(group[f"labels/{name}"])  # each label image valid NGFF 0.5 on its own
    validate_ome_zarr(path)

    small = write_ome_zarr(tmp_path / "s.ome.zarr", image[:8, :8, :8], labels={"mask": mask[:8, :8, :8]})
    group = zarr.open_group(str(small), mode="r")
    for node in (group, group["labels/mask"]):
        assert len(node.attrs["ome"]["multiscales"][0]["datasets"]) == 1
        assert not {"type", "metadata"} & set(node.attrs["ome"]["multiscales"][0])
    validate_ome_zarr(small)

    write_volume(tmp_path / "m.zarr", mask, voxel_size=VS)  # segment --mask m.ome.zarr: its pyramid of modes
    assert add_pyramid(tmp_path / "m.zarr", method="mode") >= 2
    ms = zarr.open_group(str(tmp_path / "m.zarr"), mode="r").attrs["ome"]["multiscales"][0]
    assert ms["type"] == "mode" and "mode" in ms["metadata"]["description"]
    write_volume(tmp_path / "one.zarr", mask[:8, :8, :8], voxel_size=VS)  # analyze --labels lab.zarr of one chunk
    assert add_pyramid(tmp_path / "one.zarr", method="mode") == 1
    ms = zarr.open_group(str(tmp_path / "one.zarr"), mode="r").attrs["ome"]["multiscales"][0]
    assert not {"type", "metadata"} & set(ms)
    validate_ome_zarr(tmp_path / "one.zarr")
