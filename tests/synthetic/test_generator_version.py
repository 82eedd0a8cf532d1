"""The training pool's phantom cache key follows the generator's version (review P4)."""

from tomoseg import synthetic
from tomoseg.synthetic import version
from tomoseg.training import data as training_data

ITEM = {"seed": 3000, "preset": "default", "shape": [32, 64, 64], "randomize": True, "physics": None}


def test_the_cache_key_changes_with_the_generator_version(monkeypatch):
    key = training_data._cache_key(ITEM)
    assert training_data._cache_key(dict(ITEM)) == key  # stable for the same item and generator
    monkeypatch.setattr(version, "GENERATOR_VERSION", version.GENERATOR_VERSION + 1)
    assert training_data._cache_key(ITEM) != key


def test_a_cached_phantom_of_another_generator_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(version, "GENERATOR_VERSION", version.GENERATOR_VERSION - 1)
    old = tmp_path / f"{training_data._cache_key(ITEM)}.npz"
    training_data._save_cached(old, *[__import__("numpy").zeros((32, 64, 64), "uint8")] * 2)
    monkeypatch.undo()
    pairs, counts = training_data.generate_pool([ITEM], cache_dir=tmp_path, workers=1)
    assert counts["generated"] == 1 and counts["cached"] == 0
    assert pairs[0][0].any()  # the phantom itself, not the old file's zeros


def test_the_version_is_exported():
    assert synthetic.GENERATOR_VERSION == version.GENERATOR_VERSION >= 1
