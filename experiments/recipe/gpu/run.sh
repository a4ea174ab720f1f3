#!/usr/bin/env bash
# The GPU recipe on a lent GPU machine without a package registry (README.md beside this file): installs the
# carried wheels (.whl/: hydra-core, omegaconf, antlr4, albumentations, albucore and their needs), runs from the
# source tree, and writes the summary and the archive of run records to $RUN_OUT.
#   DATA=.devdata/300w RUN_OUT=/tmp/recipe_gpu bash experiments/recipe/gpu/run.sh [driver options]
# (RUN_OUT holds the crop cache and the checkpoints too: keep it out of a folder that is copied back whole)
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then  # NO_WHEELS=1: this machine's packages (a CPU check)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
nvidia-smi -L 2>/dev/null || true
python3 -c "import torch, lightning, timm, albumentations, hydra, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'lightning', lightning.__version__, 'timm', timm.__version__, 'albumentations', albumentations.__version__, 'opencv', cv2.__version__)"
python3 experiments/recipe/gpu/run_recipe_gpu.py --data "${DATA:-.devdata/300w}" --out "${RUN_OUT:-logs/recipe_gpu}" "$@"
