#!/usr/bin/env bash
# Wall time of the 50-image strategy table (6 strategies x 3 seeds) on the built-in data, one run at a time (each
# run on every core) vs packed (hydra/launcher=pack: N_JOBS runs at once, one thread each). Each mode starts from
# an empty pre-training cache, so both train the same pre-trainings. The schedule is scaled down (STEPS) so the
# comparison fits a session; the figures are written to $OUT/times.txt.
#   bash experiments/packing/run.sh            # OUT=logs/packing N_JOBS=2
set -euo pipefail
OUT=${OUT:-logs/packing}
N_JOBS=${N_JOBS:-2}
read -r -a STEPS <<< "${STEPS:-schedule.synthetic_steps=60 schedule.real_steps=60 schedule.finetune_steps=30 schedule.val_every=30 posthoc_adapter.steps=50}"
GRID=(-m "+experiment=real_only,synth_only_adapted,data_adapt,mixing,synth_pretrain_ft50,combined" seed=0,1,2
      data.real_budget=50 logger=none trainer.enable_progress_bar=false "${STEPS[@]}")
mkdir -p "$OUT"
# the built-in faces are generated once, outside the timed runs
python -m landmark_lab.train +experiment=real_only trainer.fast_dev_run=true logger=none \
    hydra.run.dir="$OUT/warmup" overwrite=true > "$OUT/warmup.log" 2>&1

timed() {  # name, then the overrides of that mode
  local name=$1 t0 t1; shift
  rm -rf "$OUT/$name" "$OUT/cache_$name"
  t0=$(date +%s.%N)
  python -m landmark_lab.train "${GRID[@]}" hydra.sweep.dir="$OUT/$name" \
      pretrain_cache.dir="$OUT/cache_$name" "$@" > "$OUT/$name.log" 2>&1
  t1=$(date +%s.%N)
  echo "$name: $(ls "$OUT/$name"/*/metrics.json | wc -l) runs in $(python -c "print(round($t1 - $t0))") s" | tee -a "$OUT/times.txt"
}

: > "$OUT/times.txt"
timed serial                                              # torch's default threads: every core for one run
timed packed hydra/launcher=pack hydra.launcher.n_jobs="$N_JOBS" threads=1 data.num_workers=0
