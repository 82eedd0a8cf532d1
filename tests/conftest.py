import os
import signal

import numpy as np
import pytest


def pytest_configure(config):
    """Ctrl-C as an interactive run has it. A suite started as a background job of a non-interactive shell
    (``make test &`` in a script) inherits SIGINT ignored, and so does every process it starts: tomoseg then
    rightly leaves Ctrl-C alone, and the tests of Ctrl-C fail for a reason outside tomoseg (they did, in about
    a third of full-suite runs, as "a Ctrl-C missed"). Python's handler is installed here; the processes the
    tests start get the default disposition back at exec, and Python's handler with it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the process environment as it found it. A test's own Dask cluster writes its workers'
    variables (OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_...) into it, and every process a later test starts
    would inherit them."""
    before = dict(os.environ)
    yield
    for key in set(os.environ) - set(before):
        del os.environ[key]
    os.environ.update(before)


@pytest.fixture
def cli_error(capsys):
    """``cli_error(code)``: the one ``tomoseg: error:`` line of a CLI call that failed, after checking its exit
    code (1), that there is exactly one such line, and no traceback."""
    def check(code) -> str:
        err = capsys.readouterr().err
        assert code == 1, err
        lines = [line for line in err.splitlines() if line.startswith("tomoseg: error:")]
        assert len(lines) == 1, err
        assert "Traceback" not in err
        return lines[0]

    return check


@pytest.fixture
def swallowed_sigterm():
    """Within the fixture's test: tomoseg's signal handling is on (the CLI's ``catching_ctrl_c``) and a SIGTERM has
    arrived and been swallowed, as where Python ignores exceptions (a weakref callback, a finalizer); the work
    the test then starts must stop at its next check (``interrupt.raise_if_interrupted``)."""
    from tomoseg import interrupt

    with interrupt.catching_ctrl_c():
        try:
            interrupt._on_signal(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass  # swallowed
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    """``make(levels)``: a seeded, untrained U-Net of ``levels`` levels and 2 base features, saved once per
    session: the small model the CLI and output tests run on."""
    import torch

    import tomoseg

    made = {}

    def make(levels: int) -> str:
        if levels not in made:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
            tomoseg.save_model(tomoseg.UNet3D(levels=levels, base_features=2).eval(), path)
            made[levels] = str(path)
        return made[levels]

    return make


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _caches_in_tmp(tmp_path_factory, monkeypatch):
    """Training phantoms and compiled models are cached: keep the tests' caches out of the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # compiled models
    # CI turns progress bars off (.ci/run); the tests that check them, and those that check -q, set it themselves
    monkeypatch.delenv("TOMOSEG_NO_PROGRESS", raising=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_model_factory):
    """A tiny trained-shape model file (3 base channels) for CLI tests of outputs, not of quality."""
    return tiny_model_factory(3)


@pytest.fixture
def phantom_cwd(tmp_path, monkeypatch):
    """A folder made the working folder, holding a small phantom: img.tif and its labels mask.tif."""
    from tomoseg.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["phantom", "img.tif", "--labels", "mask.tif", "--shape", "24", "64", "64", "--seed", "3", "-q"]) == 0
    return tmp_path


@pytest.fixture
def texts_outside():
    """``texts_outside(fig)``: the figure's drawn texts that reach past its edges (a cut title, a legend wider
    than the column): a list of (text, by how much in pixels at 100 dpi), empty for a figure whose every text is inside."""
    return _texts_outside


def _texts_outside(fig) -> list:
    """The figure's drawn texts (titles, labels, tick labels of shown axes, legends, texts) whose box reaches
    past the figure's edges, with by how much (pixels at 100 dpi)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = [t for lg in fig.legends for t in lg.get_texts()] + [t for t in (fig._suptitle,) if t is not None]
    for ax in fig.axes:
        texts += [ax.title, *ax.texts]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label]
            for axis in (ax.xaxis, ax.yaxis):  # the ticks drawn: those inside the axis' view
                lo, hi = sorted(axis.get_view_interval())
                texts += [t.label1 for t in axis.get_major_ticks() if lo - 1e-9 * abs(hi - lo) <= t.get_loc() <=
                          hi + 1e-9 * abs(hi - lo)]
    out = []
    for t in texts:
        if t.get_visible() and t.get_text():
            b = t.get_window_extent(r)
            over = max(b.y1 - fig.bbox.y1, fig.bbox.y0 - b.y0, b.x1 - fig.bbox.x1, fig.bbox.x0 - b.x0)
            if over > -0.5:  # half a point of white at least between a text and the edge
                out.append((t.get_text(), round(float(over), 2)))
    return out
