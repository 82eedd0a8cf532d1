"""Headless Qt for the napari plugin tests (offscreen platform, no display needed)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
