# `make test` sets everything up on a fresh machine (a virtualenv in .venv with the package and its test
# extra) and runs the whole test suite. `make classify IMAGES=...` runs the main job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test classify clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

WEIGHTS ?= ../shared/fixtures/models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224_frozen.pb
IMAGES ?= ../shared/fixtures/images
LABELS ?= ../shared/fixtures/labels/imagenet_labels.txt
classify: $(STAMP)
	$(VENV)/bin/mobilenet-np classify --weights $(WEIGHTS) --labels $(LABELS) $(IMAGES)

clean:
	rm -rf $(VENV) build *.egg-info
