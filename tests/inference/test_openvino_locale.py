"""OpenVINO sets the process's locale to "C" while it compiles with a cache folder and sets back what it found; two
compiles at once left "C" for good, and Python's default text encoding ASCII for the rest of the process (a
UnicodeDecodeError in a later test reading a report with "µm" in it). tomoseg's compiles run one at a time."""

import locale
import threading

import pytest

pytest.importorskip("openvino")


def test_compiles_on_several_threads_leave_the_locale_as_it_was(tmp_path, monkeypatch, random_model_path):
    import tomoseg
    from tomoseg.inference.backends import OpenVINOBackend

    monkeypatch.setenv("TOMOSEG_CACHE_DIR", str(tmp_path / "cache"))
    model = tomoseg.load_model(random_model_path)
    before = locale.setlocale(locale.LC_CTYPE)
    seen = []
    try:
        for i in range(8):
            backends = [OpenVINOBackend(model) for _ in range(3)]
            threads = [threading.Thread(target=b.prepare, args=((16 + 8 * i, 16 + 8 * k, 16),))
                       for k, b in enumerate(backends)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seen.append(locale.setlocale(locale.LC_CTYPE))
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert set(seen) == {before}, seen
