"""The warning for a scan whose voxels differ from the model's training voxels (review U4): its direction was
z's alone, its object range in nm the finest axis's, and voxels elongated along one axis went unnamed."""

from tomoseg.inference.domain import voxel_size_warning

MODEL = [29.33] * 3
RADIUS = (1.0, 8.0)


def test_the_direction_is_each_axis_s():
    message = voxel_size_warning((20.0, 60.0, 60.0), MODEL, "scan", RADIUS)
    assert "is 2.05x larger along y, x and 1.47x smaller along z than the model's training scans'" in message
    assert "2.05x smaller" not in message
    assert "is 2.05x larger than the model's" in voxel_size_warning((60.0, 30.0, 30.0), MODEL, "scan", RADIUS)
    assert "is 2.93x smaller than the model's" in voxel_size_warning((29.33, 10.0, 10.0), MODEL, "scan", RADIUS)


def test_the_object_range_is_given_per_axis_on_anisotropic_voxels():
    message = voxel_size_warning((60.0, 30.0, 30.0), MODEL, "scan", RADIUS)
    assert "(here 60-480 nm along z, 30-240 nm along y, x)" in message
    assert "(here 6.5-52 µm)" in voxel_size_warning((6500.0,) * 3, MODEL, "scan", RADIUS)  # as before


def test_elongated_voxels_are_named_and_warned_of_within_the_size_ratio():
    message = voxel_size_warning((40.0, 20.0, 20.0), MODEL, "scan", RADIUS)  # each axis within 1.5x of 29.33
    assert message is not None
    assert ("Its voxels are 2x longer along z than along y, x (the model's are cubic): to the network, round "
            "objects look squashed along z.") in message
    assert "Its voxels" not in voxel_size_warning((10.0,) * 3, MODEL, "scan", RADIUS)
    assert voxel_size_warning((60.0, 30.0, 30.0), [60.0, 30.0, 30.0], "scan", RADIUS) is None  # the model's own
    assert voxel_size_warning((33.0, 29.0, 27.0), MODEL, "scan", RADIUS) is None


def test_a_lab_scan_s_ratio_in_whole_numbers():
    """The look review: concrete at 50 µm voxels was "1.7e+03x larger than the model's training scans'"."""
    message = voxel_size_warning((50000.0,) * 3, MODEL, "concrete.tif", RADIUS)
    assert "voxel size 50000 × 50000 × 50000 nm is 1,705x larger than the model's training scans'" in message
    assert "e+0" not in message
    assert "is 222x larger" in voxel_size_warning((6500.0,) * 3, MODEL, "scan", RADIUS)
