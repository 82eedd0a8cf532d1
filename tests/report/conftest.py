import numpy as np
import pytest


@pytest.fixture
def objects_table():
    """A random objects table of ``n`` rows, with the columns the figures read: ``objects_table(rng, n)``."""
    def make(rng, n=40):
        return {"label": np.arange(1, n + 1), "equivalent_radius_vox": rng.uniform(1, 6, n),
                "equivalent_radius_nm": rng.uniform(30, 180, n), "sphericity_voxel": rng.uniform(0.5, 0.7, n),
                "sphericity_mesh": rng.uniform(0.8, 1, n), "mean_gray": rng.uniform(50, 100, n),
                "centroid_z": rng.uniform(0, 40, n), "centroid_y": rng.uniform(0, 64, n),
                "centroid_x": rng.uniform(0, 64, n)}
    return make
