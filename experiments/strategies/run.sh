#!/usr/bin/env bash
# The study's five strategies at one real budget (50) on the built-in procedural data, one seed
# (about 25 min on 2 CPU cores; synthetic-only training is shared through the pre-training cache).
#   bash experiments/strategies/run.sh [extra overrides, e.g. seed=1 data.real_budget=250]
set -euo pipefail
OUT=${OUT:-logs/strategies}
EXTRA=("$@")
run() {
  local name=$1; shift
  python -m landmark_lab.train "$@" "hydra.run.dir=$OUT/$name" "tags=[strategies]" resume=true \
    trainer.enable_progress_bar=false data.real_budget=50 "${EXTRA[@]}"
}
run 1_real_only              +experiment=real_only
run 2_synth_only             +experiment=synth_only
run 3_synth_only_adapted     +experiment=synth_only_adapted
run 4_data_adapt             +experiment=data_adapt
run 5_mixing_alpha0.5        +experiment=mixing data.synth_share=0.5
run 6_synth_pretrain_ft50    +experiment=synth_pretrain_ft50
python -m landmark_lab.report "$OUT" --runs
