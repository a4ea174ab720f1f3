#!/usr/bin/env bash
# The unlabelled-photos protocol's lever at GPU scale (README.md beside this file): a longer synthetic pre-training
# than the CPU's 800 steps of 32, then the same fine-tuning on 50 labelled images and one student round on the rest
# of the pool as unlabelled photos (+experiment=unlabelled_300w strategy=self_train), both seeds side by side on one
# GPU, through the GPU recipe's driver (wheels, summary, archive: experiments/recipe/gpu/README.md).
# DATA is a copy packed by experiments/recipe/gpu/pack_300w.py with --whole-train and --synthetic (the pool stays
# whole photos: it is pseudo-labelled from the whole photo), e.g.
#   python experiments/recipe/gpu/pack_300w.py --root ../shared/data/300w --dest /tmp/devdata/300w --crop 128 \
#     --quality 90 --whole-train 320 --synthetic ../shared/data          # 33 MiB of JPEG
#   DATA=.devdata/300w RUN_OUT=/tmp/unlabelled_gpu bash experiments/unlabelled/gpu/run.sh   # there
# PRE (pre-training steps, default 3000), FT (fine-tuning, 1200) and STUDENT (1200) set the chain; ARMS the strategies
# (default self_train; self_train_zero trains on pseudo-labels alone, budget 0). Driver options after the command
# (--seeds, --deadline, --cpu-smoke).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DATA=${DATA:-.devdata/300w}
SYNTH=$(cd "$DATA" && pwd)/synthetic
if [ ! -d "$SYNTH" ]; then
  echo "error: $SYNTH not found: pack the data with pack_300w.py --whole-train 320 --synthetic ../shared/data" >&2
  exit 2
fi
# the GPU recipe's set-up (bf16, crop cache, channels-last), the CPU protocol's model (128 px, recipe_300w's heatmap
# head), augmentation and batch (32: these networks are launch-bound there, and crops per step did not replace steps
# in experiments/deploy/gpu/, so only the pre-training's steps change)
GPU="hydra.mode=RUN trainer=gpu data.cache=crops model.channels_last=true"
# the packed synthetic faces replace the three synthetic folders; the procedural faces are generated there
PACKED="~data.synthetic.sources.dgfaces ~data.synthetic.sources.dgfaces_v1 ~data.synthetic.sources.facesynthetics
+data.synthetic.sources.packed.kind=folder +data.synthetic.sources.packed.root=$SYNTH
+data.synthetic.sources.packed.convention=3d data.synthetic.sources.procedural.workers=4"
STEPS="schedule.synthetic_steps=${PRE:-3000} schedule.finetune_steps=${FT:-1200} schedule.self_train_steps=${STUDENT:-1200}
schedule.val_every=300"
COMMON=$(echo $GPU $PACKED $STEPS ${EXTRA:-})  # one line; EXTRA: more overrides (a CPU check's small sizes)
variants=()
for arm in ${ARMS:-self_train}; do
  budget=50; [ "$arm" = self_train_zero ] && budget=0
  variants+=(--variant "${arm}_n${budget}" "strategy=$arm data.real_budget=$budget $COMMON")
done
DATA=$DATA exec bash experiments/recipe/gpu/run.sh --experiment unlabelled_300w --steps-from-overrides "${variants[@]}" "$@"
