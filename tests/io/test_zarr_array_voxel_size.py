"""A plain Zarr array (no OME-NGFF group) gives its voxel size as an HDF5 dataset does: ``element_size_um``
(ilastik's, BigDataViewer's), ``voxel_size_nm`` (tomoseg's), or ``voxel_size`` with ``units``; one number is an
isotropic size, said in a note. Only ``voxel_size_nm`` was read: the others gave "voxel size unknown"."""

import numpy as np
import pytest
import zarr

from tomoseg.io import open_volume


@pytest.mark.parametrize("attrs, expected, said", [
    ({"element_size_um": [0.06, 0.03, 0.03]}, (60.0, 30.0, 30.0), None),
    ({"voxel_size_nm": [29.33, 29.33, 29.33]}, (29.33, 29.33, 29.33), None),
    ({"voxel_size": [1.5, 0.65, 0.65], "units": "micrometer"}, (1500.0, 650.0, 650.0), None),
    ({"voxel_size": 0.65, "unit": "um"}, (650.0, 650.0, 650.0), "one number (0.65), taken as an isotropic"),
    ({"element_size_um": [1.0, 2.0]}, None, "holds 2 values, not 1 or 3"),
    ({"voxel_size": [1.0, 1.0, 1.0]}, None, None),  # no unit: not a size
])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_plain_zarr_array_reads_the_voxel_size_attributes(tmp_path, attrs, expected, said, zarr_format):
    path = tmp_path / "scan.zarr"
    array = zarr.create_array(str(path), shape=(4, 8, 8), chunks=(4, 8, 8), dtype=np.uint8, zarr_format=zarr_format)
    array[:] = 7
    array.attrs.update(attrs)
    with open_volume(path) as vol:
        assert vol.voxel_size == (pytest.approx(expected) if expected else None)
        if said:
            assert any(said in n for n in vol.notes), vol.notes
