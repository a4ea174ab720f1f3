# landmark_lab developer shortcuts. `make help` lists them.
PY ?= python

.PHONY: help install install-predict bad-inputs install-dev train sweep report analyze ablation recipe recipe-ablation study-check study-300w bench test test-slow ci lint format clean

SWEEP_DIR ?= logs/sweeps/budget_sweep_procedural

help:  ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## install the package (editable) and its pinned dependencies
	$(PY) -m pip install -e .

install-predict:  ## also dlib (detector and peer), onnx and onnxruntime
	$(PY) -m pip install -e ".[predict]"

bad-inputs:  ## run every command with bad input and rewrite experiments/bad_inputs/README.md
	$(PY) experiments/bad_inputs/probe.py

install-dev:  ## install with test and lint tools
	$(PY) -m pip install -e ".[dev]"

train:  ## the main job: synthetic pre-training + fine-tuning on 50 real images (built-in data)
	$(PY) -m landmark_lab.train +experiment=synth_pretrain_ft50

sweep:  ## the budget sweep on the built-in data (resumable; see README for its cost), then its report
	$(PY) -m landmark_lab.train +experiment=budget_sweep
	$(PY) -m landmark_lab.train +experiment=budget_sweep_synth
	$(PY) -m landmark_lab.train +experiment=budget_sweep_combined
	$(PY) -m landmark_lab.report $(SWEEP_DIR)

report:  ## table, plots and headline of a sweep folder (SWEEP_DIR=...)
	$(PY) -m landmark_lab.report $(SWEEP_DIR)

analyze:  ## domain-gap figures (framing, augmentations, label ambiguity, conventions) into analysis/
	$(PY) -m landmark_lab.analyze all out_dir=analysis

recipe:  ## the real-face recipe on ../shared/data (AFW + HELEN train -> LFPW train), under 60 min on 2 cores
	$(PY) -m landmark_lab.train +experiment=recipe_300w

recipe-ablation:  ## the recipe's ablation (2 seeds per row; hours on 2 cores), then its table and plot
	bash experiments/recipe/run.sh
	$(PY) experiments/recipe/table.py

ablation:  ## the domain-gap ablation on the built-in data (about 35 min), then its table
	bash experiments/ablation/run.sh

study-check:  ## DGFaces + Face Synthetics pre-training + 50 real 300-W vs 50 real alone (needs ../shared/data)
	$(PY) -m landmark_lab.train +experiment=study_check_300w
	$(PY) -m landmark_lab.report logs/sweeps/study_check_300w

study-300w:  ## the study on 300-W with the recipe's model (budget curve, 50-image arms; hours on 2 cores), then its report
	bash experiments/study_300w/run.sh
	$(PY) -m landmark_lab.report logs/sweeps/study_300w_ftlr1e-3 --out experiments/study_300w

bench:  ## throughput, latency (eager, ONNX Runtime, dlib) and pre-training-cache figures on this machine
	$(PY) -m landmark_lab.bench

test:  ## the fast tier (about 3 minutes on 2 cores): run it before every commit
	$(PY) -m pytest -q

test-slow:  ## the slow tier (long trainings, DDP, GPU-check tiny mode, pinned resnet18 figures)
	$(PY) -m pytest -q -m slow

ci:  ## what CI runs: install, ruff, import layers, both tiers
	bash .ci/run

lint:  ## ruff checks and the import layers (lint-imports)
	$(PY) -m ruff check landmark_lab tests experiments
	lint-imports

format:  ## ruff formatting fixes
	$(PY) -m ruff check --fix landmark_lab tests experiments

clean:  ## remove caches and run folders (generated faces are regenerated on next use)
	rm -rf .cache logs .pytest_cache .ruff_cache
