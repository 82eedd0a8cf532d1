# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv (if needed), installs tomoseg with PyTorch 2.13.0, and runs.
# PyTorch comes from pip's index: on Linux that is the CUDA build (a GPU workstation wants it; about 3 GB).
# A CPU-only machine can take the small CPU build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tomoseg-installed
DEMO := demo-output

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,openvino,test-napari]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m tomoseg.demo $(DEMO)

clean-demo:
	rm -rf $(DEMO)
