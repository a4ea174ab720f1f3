#!/usr/bin/env bash
# Ablation of the domain-gap components on the built-in procedural data: real-like test NME with and
# without domain augmentation, the post-hoc label adapter and crop imitation.
# One seed; about 50 min on an idle 2-core CPU (synthetic-only training is shared through the
# pre-training cache, so the adapter rows cost a few seconds each). Re-running skips finished runs (resume=true).
#   bash experiments/ablation/run.sh [extra overrides, e.g. seed=1]
set -euo pipefail
OUT=${OUT:-logs/ablation}
run() {
  local name=$1; shift
  python -m landmark_lab.train "$@" "hydra.run.dir=$OUT/$name" "tags=[ablation]" resume=true \
    trainer.enable_progress_bar=false "${EXTRA[@]}"
}
EXTRA=("$@")
# Visual gap, synthetic only (what a model learns from synthetic faces alone):
run A1_synth_only                 +experiment=synth_only augment=basic
run A2_synth_only+domain_aug      +experiment=synth_only augment=domain_adapt
run A2b_synth_only+camera_aug     +experiment=synth_only augment=camera
# Label gap, synthetic only: a label adapter fitted after training on 50 real images.
run A3_synth_only+adapter         +experiment=synth_only_adapted augment=basic
run A4_synth_only+domain_aug+adapter +experiment=synth_only_adapted augment=domain_adapt
# ... and on 700 real images with the whole-shape (mlp) adapter.
run A5_synth_only+mlp_adapter_700 +experiment=synth_only_adapted augment=basic data.real_budget=700 \
                                  posthoc_adapter.name=mlp posthoc_adapter.lr=1e-3 posthoc_adapter.steps=1000
# Framing: photos used as they come (crop.box=image), with and without crop imitation.
run B1_image_crops                +experiment=synth_only_adapted augment=domain_adapt data.transform.crop.box=image
run B2_image_crops+imitation      +experiment=synth_only_adapted augment=domain_adapt data.transform.crop.box=image \
                                  data.crop_imitation.enabled=true
python -m landmark_lab.report "$OUT" --runs
