#!/usr/bin/env bash
# The recipe's ablation on real faces: train on AFW + HELEN train (1207 photos, 2414 with mirrors), test on LFPW
# train (805 photos no run trains on). Each row is run for seeds 0 and 1; every run is one process on one core
# (OMP_NUM_THREADS=1). Re-running skips finished runs (resume=true). On 2 cores, one seed per core:
#   SEEDS=0 bash experiments/recipe/run.sh & SEEDS=1 bash experiments/recipe/run.sh; wait
#   bash experiments/recipe/run.sh [ROW ...]       # default: every row, both seeds; OUT=logs/recipe
#   python experiments/recipe/table.py             # evaluation variants, table and plot -> experiments/recipe/
# Rows (the 64-px rows are the cheap factorial; the 128-px rows are the recipe and its baseline):
set -euo pipefail
OUT=${OUT:-logs/recipe}
SEEDS=${SEEDS:-"0 1"}
PROTO=(data=300w "data.train_split=[afw,helen/trainset]" "data.split=[lfpw/trainset]" logger=csv
       trainer.enable_progress_bar=false data.num_workers=0 resume=true "tags=[recipe_ablation]")
declare -A ROWS=(
  [r64_regression_basic]="+experiment=real_only"
  [r64_regression_basic_noadapter]="+experiment=real_only model.adapter.name=none"
  [r64_integral_basic]="+experiment=real_only model.head.name=integral model.adapter.name=none"
  [r64_heatmap_basic]="+experiment=recipe_300w data.transform.crop.size=64 augment=basic schedule.real_steps=1200 schedule.max_steps=1200 schedule.val_every=150"
  [r64_heatmap_real]="+experiment=recipe_300w augment=real data.transform.crop.size=64 schedule.real_steps=1200 schedule.max_steps=1200 schedule.val_every=150"
  [r64_heatmap_real_mlpadapter]="+experiment=recipe_300w augment=real data.transform.crop.size=64 schedule.real_steps=1200 schedule.max_steps=1200 schedule.val_every=150 model.adapter.name=mlp"
  [r64_heatmap_real_pretrain]="+experiment=recipe_300w augment=real strategy=pretrain_finetune data.transform.crop.size=64 schedule.synthetic_steps=1200 schedule.finetune_steps=1200 schedule.max_steps=1200 schedule.finetune_lr=1e-3 schedule.val_every=150"
  [r128_integral_basic_1500]="+experiment=real_only data.transform.crop.size=128 model.head.name=integral schedule.real_steps=1500 schedule.max_steps=1500"
  [r128_recipe]="+experiment=recipe_300w augment=real schedule.real_steps=2400 schedule.max_steps=2400"
  [r128_recipe_basic]="+experiment=recipe_300w augment=basic schedule.real_steps=2400 schedule.max_steps=2400"
  [r128_recipe_3600]="+experiment=recipe_300w augment=real schedule.real_steps=3600 schedule.max_steps=3600"
  [r128_recipe_basic_3600]="+experiment=recipe_300w augment=basic schedule.real_steps=3600 schedule.max_steps=3600"
)
ORDER=(r128_recipe r64_regression_basic r64_integral_basic r64_heatmap_basic r64_heatmap_real r64_heatmap_real_mlpadapter
       r64_heatmap_real_pretrain r64_regression_basic_noadapter r128_integral_basic_1500 r128_recipe_3600 r128_recipe_basic r128_recipe_basic_3600)
[ $# -gt 0 ] && ORDER=("$@")
for row in "${ORDER[@]}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row $row; rows: ${!ROWS[*]}" >&2; exit 2; }
  for seed in $SEEDS; do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 python -m landmark_lab.train ${ROWS[$row]} "${PROTO[@]}" seed="$seed" \
      "hydra.run.dir=$OUT/$row/seed$seed"
  done
done
