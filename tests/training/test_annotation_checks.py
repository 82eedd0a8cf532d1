"""What label files mean (training review R1, R8): a napari/ilastik partial annotation with unpainted voxels 0 is
warned about, data.labels maps other conventions, and labels without objects get advice that fits them."""

import warnings

import numpy as np
import pytest

from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.io import write_volume
from tomoseg.training import config_from_dict, prepare_data


def balls(shape=(32, 48, 48), step=12, radius=3.5):
    """Dark balls on a brighter matrix, every ``step`` voxels: image and full labels (0/1)."""
    z, y, x = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    for cz in range(6, shape[0] - 4, step):
        for cy in range(6, shape[1] - 4, step):
            for cx in range(6, shape[2] - 4, step):
                labels[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2] = 1
    image = (150 - 80 * labels + np.random.default_rng(0).normal(0, 5, shape)).astype(np.float32)
    return image, labels


def cfg(tmp_path, label_array, **data):
    image, _ = balls()
    tmp_path.mkdir(exist_ok=True)
    write_volume(str(tmp_path / "scan.tif"), image, voxel_size=(30, 30, 30), overwrite=True)
    write_volume(str(tmp_path / "labels.tif"), label_array, voxel_size=(30, 30, 30), overwrite=True)
    return config_from_dict({
        "output": str(tmp_path / "run"), "model": {"levels": 2, "base_features": 2},
        "data": {"volumes": [{"image": str(tmp_path / "scan.tif"), "labels": str(tmp_path / "labels.tif")}],
                 "hold_out": 0, **data},
        "sampling": {"patch_size": 16}, "augment": {"zoom": [1.0, 1.0]}})


PAINTED = [6, 18]  # the slices a napari user painted, through the balls' centres


def napari_style(background=0, unpainted=0):
    """Objects 1 on the painted slices, their background ``background``, everything else ``unpainted``."""
    _, full = balls()
    out = np.full(full.shape, unpainted, np.uint8)
    for z in PAINTED:
        out[z] = np.where(full[z] == 1, 1, background)
    return out


def test_unpainted_voxels_left_0_are_warned_about(tmp_path):
    with pytest.warns(TomosegWarning) as record:
        prepare_data(cfg(tmp_path, napari_style()))
    message = str(record[0].message)
    assert ("labels.tif: no voxel is marked 'not annotated' (value 255), so every voxel counts as annotated and every "
            "0 as background, but the object voxels lie on 2 of 32 slices, and 100 % of them on one-voxel-thin "
            "layers. If you painted only some slices (napari and ilastik leave unpainted voxels 0), the objects you "
            "did not paint train as background: mark the unpainted voxels 255, or say what the values mean with "
            "data.labels, e.g. {object: 1, background: 2, ignore: 0}") in message


@pytest.mark.parametrize("case", ["full", "sparse with 255"])
def test_full_labels_and_marked_sparse_labels_are_not_warned_about(tmp_path, case):
    labels = balls()[1] if case == "full" else napari_style(background=0, unpainted=255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_data(cfg(tmp_path, labels))


def test_data_labels_reads_the_napari_convention(tmp_path):
    """{object: 1, background: 2, ignore: 0} (napari, ilastik) trains as the same labels written 0/1/255."""
    ours = prepare_data(cfg(tmp_path / "a", napari_style(background=0, unpainted=255)))[0][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no partial-annotation warning: the unpainted voxels are ignored
        theirs = prepare_data(cfg(tmp_path / "b", napari_style(background=2, unpainted=0),
                                  labels={"object": 1, "background": 2, "ignore": 0}))[0][0]
    assert theirs.shape == ours.shape and theirs.shape[0] < 32  # the annotated region only, as with 255
    assert np.array_equal(theirs.labels, ours.labels) and theirs.origin == ours.origin
    assert set(np.unique(theirs.labels).tolist()) == {0, 1, 255}


def test_data_labels_refuses_values_it_does_not_name(tmp_path):
    labels = napari_style(background=2, unpainted=0)
    labels[0, 0, 0] = 7
    with pytest.raises(TomosegError, match=r"labels.tif: labels hold values \[7\] that data.labels "):
        prepare_data(cfg(tmp_path, labels, labels={"object": 1, "background": 2, "ignore": 0}))


@pytest.mark.parametrize("labels, message", [
    ({"object": 1}, "data.labels: missing ['background']"),
    ({"object": 1, "background": 1}, "object, background and ignore need different values"),
    ({"object": 1, "background": 2, "unpainted": 0}, "data.labels: unknown key(s) ['unpainted']"),
    ({"object": 300, "background": 2}, "data.labels.object 300 must be a whole number 0..255"),
])
def test_bad_label_mappings_are_refused(tmp_path, labels, message):
    with pytest.raises(TomosegError) as err:
        cfg(tmp_path, napari_style(), labels=labels)
    assert message in str(err.value)


def test_a_napari_file_without_a_mapping_is_pointed_to_data_labels(tmp_path):
    with pytest.raises(TomosegError) as err:
        prepare_data(cfg(tmp_path, napari_style(background=2, unpainted=0)))
    assert ("labels hold values [2]; use 0 (background), 1 (object), 255 (not annotated), or if unpainted voxels "
            "are 0 and background another value (napari, ilastik), say so in data.labels, e.g. {object: 1, "
            "background: 2, ignore: 0}") in str(err.value)


def _without_objects(kind):
    out = np.full((32, 48, 48), 255, np.uint8)
    if kind == "background only":
        out[PAINTED] = 0
    elif kind == "fiji mask":
        out[:] = 0
        out[balls()[1] == 1] = 255
    return out


@pytest.mark.parametrize("kind, message", [
    ("nothing annotated", "no voxel is annotated: every voxel is marked 'not annotated'. Annotate some objects"),
    ("background only", "the annotation holds background only, no object voxel. Annotate some objects: the label "
                        "values are 0 (background), 1 (object), 255 (not annotated)"),
    ("fiji mask", "If this is a binary mask with objects as 255 (as Fiji writes them), write objects as 1 "
                  "(labels // 255 with numpy)"),
])
def test_labels_without_objects_get_advice_that_fits_them(tmp_path, kind, message):
    """R8: labels // 255 is advised only for a mask whose 255 voxels are the minority (objects); an empty or a
    background-only annotation would turn every unannotated voxel into an object that way."""
    with pytest.raises(TomosegError) as err:
        prepare_data(cfg(tmp_path, _without_objects(kind)))
    assert message in str(err.value)
    assert ("// 255" in str(err.value)) == (kind == "fiji mask")


def _one_layer(depth=64):
    """A fully labelled scan whose few objects lie on 8 of its 64 slices: balls centred on slice 20."""
    z, y, x = np.indices((depth, 48, 48))
    labels = np.zeros((depth, 48, 48), np.uint8)
    for cy in (10, 24, 38):
        for cx in (10, 24, 38):
            labels[(z - 20) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 3.5 ** 2] = 1
    return labels


def _scan(tmp_path, labels):
    image = (150 - 80 * labels + np.random.default_rng(0).normal(0, 5, labels.shape)).astype(np.float32)
    write_volume(str(tmp_path / "scan.tif"), image, voxel_size=(30, 30, 30))
    write_volume(str(tmp_path / "labels.tif"), labels, voxel_size=(30, 30, 30))
    return config_from_dict({
        "output": str(tmp_path / "run"), "model": {"levels": 2, "base_features": 2},
        "data": {"volumes": [{"image": str(tmp_path / "scan.tif"), "labels": str(tmp_path / "labels.tif")}],
                 "hold_out": 0}, "sampling": {"patch_size": 16}, "augment": {"zoom": [1.0, 1.0]}})


def test_a_fully_labelled_scan_with_objects_on_few_slices_is_not_warned_about(tmp_path):
    """The objects lie on 7 of 64 slices, under a fifth, but whole: they taper to their ends."""
    labels = _one_layer()
    assert np.count_nonzero(labels.any(axis=(1, 2))) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_data(_scan(tmp_path, labels))


def test_objects_painted_on_a_few_slices_through_them_are_warned_about(tmp_path):
    """Slices 20..23 painted (through the balls' centres) with the objects 3D there, the rest left 0: the objects
    are 4 slices thick, not flat, but cut off at slice 20 where they are widest."""
    labels = _one_layer()
    labels[:20] = 0
    labels[24:] = 0
    with pytest.warns(TomosegWarning, match=r"the object voxels lie on 4 of 64 slices, and 100 % of them in objects "
                                            r"widest on the first or last slice they reach"):
        prepare_data(_scan(tmp_path, labels))
