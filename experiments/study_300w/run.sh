#!/usr/bin/env bash
# The study on real faces (experiments/study_300w/README.md): every (strategy, real budget, seed) run of
# +experiment=study_300w as its own process on one core (OMP_NUM_THREADS=1), SLOTS at a time, in the order
# below, so that the 50-image arms and the real-only curve finish first. Re-running skips finished runs
# (resume=true) and continues unfinished ones.
#   bash experiments/study_300w/run.sh        # SLOTS=2 OUT=logs/sweeps/study_300w_ftlr1e-3 (DRY_RUN=1: print)
#   python -m landmark_lab.report logs/sweeps/study_300w_ftlr1e-3 --out experiments/study_300w
# A pre-training is trained once per seed and shared through the pre-training cache: the runs of one seed that
# need it wait for it (file lock) instead of training it twice.
# The runs still to start are a queue file (QUEUE, default $OUT/queue.txt, one "strategy budget seed" per line):
# edit it while the script runs to reorder, add or drop runs; each slot takes the first line when it is free.
# EXTRA adds overrides to every run, e.g. the earlier protocols (experiments/study_300w/README.md): fine-tuning at 3e-4,
#   OUT=logs/sweeps/study_300w_steps1200 EXTRA="schedule.finetune_lr=3e-4 sweep_name=study_300w_steps1200" bash .../run.sh
# and the first grid's 400-step floor (with fine-tuning at 3e-4),
#   OUT=logs/sweeps/study_300w EXTRA="schedule.min_steps=400 schedule.finetune_lr=3e-4 sweep_name=study_300w" bash .../run.sh
# Keep one OUT per set of EXTRA: a finished run in OUT trained with other settings is refused, not reused.
set -euo pipefail
OUT=${OUT:-logs/sweeps/study_300w_ftlr1e-3}
EXPERIMENT=${EXPERIMENT:-study_300w}  # experiments/unlabelled/run.sh runs its own grid through this script
SLOTS=${SLOTS:-2}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
mkdir -p "$OUT/logs"

run_one() {  # strategy budget seed
  local dir="$OUT/$1/n$2/seed$3" strategy=$1 share=()
  # The study's strategies 3 and 4 are one data module at two synthetic shares of the batch (alpha):
  case $1 in
    data_adapt) share=(data.synth_share=1.0) ;;  # 3, data adaptation: label-adapted synthetic faces only
    mixing) strategy=data_adapt; share=(data.synth_share=0.5) ;;  # 4, mixing: adapted synthetic + real batches
  esac
  local cmd=(python -m landmark_lab.train "+experiment=$EXPERIMENT" hydra.mode=RUN strategy="$strategy"
             data.real_budget="$2" seed="$3" ${share[@]+"${share[@]}"} data.num_workers=0 logger=csv
             "hydra.run.dir=$dir" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"})
  if [ -n "${DRY_RUN:-}" ]; then echo "OMP_NUM_THREADS=1 ${cmd[*]}"; return; fi  # DRY_RUN=1: print, do not run
  echo "$(date +%T) start $1 n$2 seed$3"
  OMP_NUM_THREADS=1 "${cmd[@]}" > "$OUT/logs/$1_n$2_seed$3.log" 2>&1 \
    && echo "$(date +%T) done  $1 n$2 seed$3" || echo "$(date +%T) FAILED $1 n$2 seed$3 (see $OUT/logs/)"
}

# strategy budget seed, in priority order: the 50-image arms, the curve at 2 seeds, the third seeds, the five
# strategies at 50 (data adaptation, mixing and combined train a fresh model on the 20,200 synthetic faces (+ the
# real ones), 2400 steps: about 66 minutes a run on one core)
GRID=${GRID:-"
pretrain_finetune 50 0
real_only 50 0
real_only 50 1
pretrain_finetune 50 1
synth_only_adapted 50 0
synth_only_adapted 50 1
synth_only_adapted 50 2
real_only 100 0
real_only 250 0
pretrain_finetune 100 0
pretrain_finetune 250 0
real_only 100 1
real_only 250 1
pretrain_finetune 100 1
pretrain_finetune 250 1
real_only 1000 0
real_only 1000 1
real_only all 0
real_only all 1
pretrain_finetune all 0
pretrain_finetune all 1
real_only 50 2
pretrain_finetune 50 2
real_only 100 2
pretrain_finetune 100 2
real_only 250 2
pretrain_finetune 250 2
real_only 500 0
real_only 500 1
pretrain_finetune 500 0
pretrain_finetune 500 1
pretrain_finetune 1000 0
pretrain_finetune 1000 1
mixing 50 0
data_adapt 50 0
combined 50 0
mixing 50 1
data_adapt 50 1
combined 50 1
mixing 50 2
data_adapt 50 2
combined 50 2
"}
QUEUE=${QUEUE:-$OUT/queue.txt}
if [ -n "${DRY_RUN:-}" ]; then  # print what would run, leaving the queue alone (a running script may be using it)
  if [ -s "$QUEUE" ]; then cat "$QUEUE"; else echo "$GRID"; fi | grep -v '^\s*$' | while read -r job; do run_one $job; done
  exit 0
fi
if [ -s "$QUEUE" ]; then
  echo "continuing the queue in $QUEUE ($(wc -l < "$QUEUE") runs left; delete it to start from the full grid)"
else
  echo "$GRID" | grep -v '^\s*$' > "$QUEUE"
fi
pop() {  # print and remove the queue's first line; fails when the queue is empty
  flock "$QUEUE.lock" bash -c 'line=$(head -n 1 "$0") && [ -n "$line" ] && sed -i 1d "$0" && echo "$line"' "$QUEUE"
}
slot() { local job; while job=$(pop); do run_one $job; done; }
for _ in $(seq "$SLOTS"); do slot & done
wait
echo "$(date +%T) queue empty"
