#!/usr/bin/env bash
# The deploy family's stride-16 SimCC networks trained on a lent GPU (README.md beside this file): the GPU recipe's
# set-up (batch 64, bf16, crop cache, EMA) with the CPU family's model settings (128 px, `basic` augmentation, SimCC
# head at stride 16, lr 4e-3), every model side by side for the steps the call's budget allows (at most MAX_STEPS).
# Runs where the GPU recipe does (experiments/recipe/gpu/README.md says how to pack the data and carry the wheels):
#   DATA=.devdata/300w RUN_OUT=/tmp/deploy_gpu bash experiments/deploy/gpu/run.sh [driver options]
# The models come back as OUT/models/NAME.ckpt (weights + hyper-parameters); `evaluate` and `bench` read them here.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SIMCC="data.transform.crop.size=128 augment=basic model.head.name=simcc ~model.head.stride ~model.head.sigma
~model.head.decode ~model.head.channels ~model.head.coord_weight ~model.head.map_weight ~model.head.foreground_weight
+model.head.stride=16 +model.head.grid=8 schedule.lr=4e-3"
SIMCC=$(echo $SIMCC)  # one line
MODELS=${MODELS:-"repghostnet_050 repghostnet_100 mobilenetv3_large_100 efficientnet_lite0"}
variants=()
for m in $MODELS; do variants+=(--variant "$m" "model.backbone.name=$m $SIMCC"); done
exec bash experiments/recipe/gpu/run.sh --seeds 0 --keep-models --max-steps "${MAX_STEPS:-14400}" "${variants[@]}" "$@"
