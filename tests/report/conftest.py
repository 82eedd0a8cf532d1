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


@pytest.fixture
def save_through(monkeypatch):
    """``save_through(keep)``: every figure of :mod:`tomoseg.report` saved through ``keep(fig, path, *args,
    **kwargs)`` instead of ``save_figure`` for the rest of the test; returns the real ``save_figure`` (for
    ``keep`` to call). The figures are drawn in several modules (``figures`` imports them all), each calling the
    ``save_figure`` it imported: each module that holds one is patched."""
    import importlib
    import pkgutil

    import tomoseg.report
    from tomoseg.report.style import save_figure

    def patch(keep):
        for info in pkgutil.iter_modules(tomoseg.report.__path__):
            module = importlib.import_module(f"tomoseg.report.{info.name}")
            if hasattr(module, "save_figure"):
                monkeypatch.setattr(module, "save_figure", keep)
        return save_figure

    return patch
