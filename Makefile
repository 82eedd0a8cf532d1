# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv (if needed), installs tomoseg with PyTorch 2.13.0 (CPU build), and runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tomoseg-installed
DEMO := demo-output

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,openvino,test-napari]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m tomoseg.demo $(DEMO)

clean-demo:
	rm -rf $(DEMO)
