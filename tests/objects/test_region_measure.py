"""Objects measured all at once (objects/region_measure.py) against the measurements one object at a time:
scikit-image's marching cubes on each object's padded crop, its voxel faces, NumPy's means."""

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.objects import region_measure
from tomoseg.objects.measure import COLUMNS, measure_table, mesh_area_volume, voxel_face_area, wadell_sphericity
from tomoseg.objects.region_measure import measure_crops, measure_region


def _blobs(shape, seed, *, touching=False):
    """Random blobs of many shapes (holes, ambiguous marching-cubes cases), some at the volume's edge; with
    ``touching``, each blob split in two labels where it crosses the middle x (a label image's touching
    objects)."""
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random(shape), 1.2) > 0.55
    labels = ndimage.label(mask, np.ones((3, 3, 3)))[0].astype(np.uint32)
    if touching:
        right = np.indices(shape)[2] > shape[2] // 2
        labels[(labels > 0) & right] += 1000
    return labels


def _one_by_one(labels, gray, prob, vs) -> dict:
    """Each object measured from its own padded crop, as objects were measured before."""
    rows = {c: [] for c in ("label", "volume_vox", "centroid_z", "centroid_y", "centroid_x", "surface_voxel_nm2",
                            "surface_mesh_nm2", "mesh_volume", "mean_gray", "mean_probability",
                            "max_probability", "bbox")}
    for i, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        region = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape))
        obj = labels[region] == i + 1
        padded = np.pad(obj, 1)
        area, volume = mesh_area_volume(padded, vs)
        where = np.nonzero(obj)
        rows["label"].append(i + 1)
        rows["volume_vox"].append(int(obj.sum()))
        for c, r, name in zip(where, region, "zyx"):
            rows[f"centroid_{name}"].append(c.mean() + r.start)
        rows["surface_voxel_nm2"].append(voxel_face_area(padded, vs))
        rows["surface_mesh_nm2"].append(area)
        rows["mesh_volume"].append(volume)
        rows["mean_gray"].append(gray[region][obj].astype(np.float64).mean())  # float32 sums were float32
        p = prob[region][obj].astype(np.float64) / (255.0 if prob.dtype == np.uint8 else 1.0)
        rows["mean_probability"].append(p.mean())
        rows["max_probability"].append(p.max())
        rows["bbox"].append([s.start for s in box] + [s.stop for s in box])
    return {c: np.asarray(v) for c, v in rows.items()}


@pytest.mark.parametrize("seed, touching, prob_type", [(0, False, np.uint8), (1, True, np.float32),
                                                       (2, False, np.float32), (3, True, np.uint8)])
def test_every_object_at_once_equals_each_object_on_its_own(seed, touching, prob_type):
    rng = np.random.default_rng(seed + 10)
    labels = _blobs((23, 31, 37), seed, touching=touching)
    gray = rng.normal(100, 20, labels.shape).astype(np.float32)
    prob = rng.integers(0, 256, labels.shape).astype(np.uint8) if prob_type == np.uint8 else \
        rng.random(labels.shape).astype(np.float32)
    vs = (40.0, 29.33, 25.5)  # anisotropic: the cases' areas are taken on these voxels
    ref = _one_by_one(labels, gray, prob, vs)
    assert len(ref["label"]) > 20
    t = measure_region(labels, tuple(slice(0, n) for n in labels.shape), intensity=gray, probability=prob,
                       voxel_size=vs)
    assert list(t) == COLUMNS
    np.testing.assert_array_equal(t["label"], ref["label"])
    np.testing.assert_array_equal(t["volume_vox"], ref["volume_vox"])
    np.testing.assert_array_equal(np.stack([t[f"bbox_{a}{e}"] for e in "01" for a in "zyx"], axis=1), ref["bbox"])
    np.testing.assert_array_equal(t["surface_voxel_nm2"], ref["surface_voxel_nm2"])  # same sums, same order
    for c in ("centroid_z", "centroid_y", "centroid_x", "surface_mesh_nm2", "mean_probability", "mean_gray"):
        np.testing.assert_allclose(t[c], ref[c], rtol=1e-12, err_msg=c)
    np.testing.assert_array_equal(t["max_probability"], ref["max_probability"])
    np.testing.assert_allclose(t["sphericity_mesh"], wadell_sphericity(ref["mesh_volume"], ref["surface_mesh_nm2"]),
                               rtol=1e-12)
    touches = (ref["bbox"][:, :3] == 0).any(axis=1) | (ref["bbox"][:, 3:] == np.array(labels.shape)).any(axis=1)
    np.testing.assert_array_equal(t["touches_border"], touches.astype(int))
    assert touches.any() and not touches.all()


def test_an_object_gives_the_same_numbers_from_any_block_that_holds_it(monkeypatch):
    """Whole volume, chunk blocks with their inner objects, each object's crop, and small batches of the
    marching cubes: bit for bit (analyze measures a volume's objects these ways, and its CSV is compared byte for
    byte between them)."""
    labels = _blobs((40, 36, 44), 7, touching=True)
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 65535, labels.shape).astype(np.uint16)
    vs, shape = (29.33, 29.33, 29.33), labels.shape
    whole = measure_table(labels, intensity=gray, voxel_size=vs)
    boxes = {i + 1: b for i, b in enumerate(ndimage.find_objects(labels)) if b is not None}
    crops = measure_table(None, voxel_size=vs, shape=shape, bboxes=boxes,
                          read=lambda region: (labels[region], gray[region], None))
    parts = []
    for z0 in range(0, 40, 20):  # blocks of 20 slices and their margin: the objects with room inside
        region = (slice(max(z0 - 1, 0), min(z0 + 21, 40)), slice(0, 36), slice(0, 44))
        inner = [lab for lab, b in boxes.items() if z0 <= b[0].start < z0 + 20
                 and (b[0].start > region[0].start or region[0].start == 0)
                 and (b[0].stop < region[0].stop or region[0].stop == 40)]
        parts.append(measure_table(labels[region], intensity=gray[region], voxel_size=vs, shape=shape,
                                   bboxes={lab: boxes[lab] for lab in inner}, region=region))
    order = np.argsort(np.concatenate([p["label"] for p in parts]))
    blocks = {c: np.concatenate([p[c] for p in parts])[order] for c in COLUMNS}
    monkeypatch.setattr(region_measure, "BATCH_VOXELS", 50)  # many batches of objects
    batched = measure_table(labels, intensity=gray, voxel_size=vs)
    rows = np.isin(whole["label"], blocks["label"])
    assert rows.sum() > 0.7 * len(rows)
    for c in COLUMNS:
        np.testing.assert_array_equal(crops[c], whole[c], err_msg=c)
        np.testing.assert_array_equal(batched[c], whole[c], err_msg=c)
        np.testing.assert_array_equal(blocks[c], whole[c][rows], err_msg=c)


def test_crops_without_their_object_have_no_row_and_labels_may_share_a_crop():
    labels = np.zeros((9, 9, 9), np.uint32)
    labels[2:4, 2:4, 2:4] = 5
    labels[4:7, 4:7, 4:7] = 9   # touches object 5 by a corner: a label image's neighbours
    region = (slice(1, 8),) * 3
    crop = labels[region]
    t = measure_crops([(9, region, crop, None, None), (5, region, crop, None, None), (7, region, crop, None, None)],
                      voxel_size=(1.0, 1.0, 1.0), shape=labels.shape)
    assert t["label"].tolist() == [5, 9] and t["volume_vox"].tolist() == [8, 27]
    assert t["surface_voxel_nm2"].tolist() == [24.0, 54.0]  # the touching corner hides no face
    whole = measure_table(labels, voxel_size=(1.0, 1.0, 1.0))
    for c in COLUMNS:
        np.testing.assert_array_equal(t[c], whole[c], err_msg=c)


def test_each_of_the_256_cube_cases_is_the_library_s_own_triangles():
    """A single cube of each case, measured whole: the case's area and volume are scikit-image's."""
    from skimage import measure as skm

    triangles, det, normal = region_measure.cube_cases()
    assert len(triangles) == 256 and not len(triangles[0]) and not len(triangles[255])
    vs = (2.0, 3.0, 5.0)
    areas = region_measure.case_areas(vs)
    for case in (1, 3, 6, 24, 60, 105, 150, 254):  # corners, edges, faces, and the ambiguous 105 and 150
        cube = np.zeros((2, 2, 2), np.float32)
        for j, corner in enumerate(region_measure.CORNERS):
            cube[corner] = case >> j & 1
        verts, faces, _, _ = skm.marching_cubes(cube, level=0.5, spacing=vs)
        assert areas[case] == pytest.approx(skm.mesh_surface_area(verts, faces), rel=1e-12)
