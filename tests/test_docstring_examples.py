"""The examples in tomoseg's docstrings (``>>>``) run and give what they show: a user copying one gets that
result, and an example left behind by a change fails here, not in a reader's hands. CI ran none of them before
(``pytest`` collects tests/ only)."""

import doctest
import importlib
from pathlib import Path

import pytest

import tomoseg

SRC = Path(tomoseg.__file__).parent
MODULES = sorted(
    "tomoseg." + ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in SRC.rglob("*.py") if ">>> " in p.read_text(encoding="utf-8"))


def test_the_examples_are_found():
    assert len(MODULES) >= 20 and "tomoseg.inference.tiling" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (run pytest " \
                               f"--doctest-modules {module.__file__} to see them)"
