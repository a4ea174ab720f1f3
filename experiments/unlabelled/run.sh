#!/usr/bin/env bash
# Unlabelled photos on 300-W (experiments/unlabelled/README.md): every (arm, labelled budget, seed) run of
# +experiment=unlabelled_300w as its own process on one core, SLOTS at a time, through study_300w's queue runner
# (resumable; the queue file is $OUT/queue.txt; DRY_RUN=1 prints the commands).
#   bash experiments/unlabelled/run.sh
#   python -m landmark_lab.report logs/sweeps/unlabelled_300w --out experiments/unlabelled \
#     --recorded experiments/study_300w/results.csv
# Arms: self_train (pre-trained + fine-tuned teacher), self_train_real (real-only teacher), self_train_zero
# (synthetic-only teacher, budget 0). A seed's pre-training is shared with study_300w's through the cache.
set -euo pipefail
export EXPERIMENT=unlabelled_300w OUT=${OUT:-logs/sweeps/unlabelled_300w}
export GRID=${GRID:-"
self_train 50 0
self_train 50 1
self_train_zero 0 0
self_train_zero 0 1
self_train_real 50 0
self_train_real 50 1
self_train 250 0
self_train_real 250 0
"}
exec bash "$(dirname "$0")/../study_300w/run.sh"
