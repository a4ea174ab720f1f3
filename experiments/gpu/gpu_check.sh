#!/usr/bin/env bash
# The GPU check for a machine without a package registry: installs carried wheels (hydra-core, omegaconf,
# antlr4-python3-runtime, albumentations + albucore and their needs) from .whl/ if present, runs from the
# source tree (no pip install -e: the torch pin cannot be met there), and writes experiments/gpu/summary.md
# (or $OUT/summary.md). Plan: under 8 minutes on one H100.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 experiments/gpu/gpu_check.py --out "${OUT:-experiments/gpu}" "$@"
