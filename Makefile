# landmark_lab developer shortcuts. `make help` lists them.
PY ?= python

.PHONY: help install install-dev train test test-fast lint format clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## install the package and its pinned dependencies
	$(PY) -m pip install -e .

install-dev:  ## install with test and lint tools
	$(PY) -m pip install -e ".[dev]"

train:  ## the main job: synthetic pre-training + fine-tuning on 50 real images (built-in data)
	$(PY) -m landmark_lab.train +experiment=synth_pretrain_ft50

test:  ## the whole test suite (what CI runs)
	$(PY) -m pytest -q

test-fast:  ## unit tests only, no end-to-end training
	$(PY) -m pytest -q -m "not slow"

lint:  ## ruff checks
	$(PY) -m ruff check landmark_lab tests

format:  ## ruff formatting fixes
	$(PY) -m ruff check --fix landmark_lab tests

clean:  ## remove caches and run folders (generated faces are regenerated on next use)
	rm -rf .cache logs .pytest_cache .ruff_cache
