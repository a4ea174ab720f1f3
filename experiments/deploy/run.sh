#!/usr/bin/env bash
# Accuracy against one-thread latency (experiments/deploy/README.md): train a family of small models on the recipe's
# protocol (train AFW + HELEN train, test LFPW train), evaluate dlib's predictor on the same test faces, then time
# every model and dlib in one bench run and write results.csv + pareto.png here. Resumable (resume=true);
# DRY_RUN=1 prints the commands. Each training run is about as long as the recipe's (3600 steps) on one core.
#   bash experiments/deploy/run.sh            # OUT=logs/deploy, FAMILY as below
set -euo pipefail
OUT=${OUT:-logs/deploy}
# "backbone px head [tag overrides...]": a tag names the run folder's variant (…_heatmap_s8), the overrides make it
FAMILY=${FAMILY:-"
mobilenetv3_small_100 96 heatmap
mobilenetv3_large_100 96 heatmap
mobilenetv3_large_100 128 heatmap
lcnet_100 128 heatmap
efficientnet_lite0 128 heatmap
repghostnet_050 128 heatmap
resnet18 128 heatmap
mobilenetv3_small_100 96 regression
repghostnet_050 128 regression
mobilenetv3_small_100 96 heatmap s8 model.head.stride=8
mobilenetv3_small_100 96 simcc g3 +model.head.grid=3
repghostnet_050 128 simcc
repghostnet_050 128 simcc s16 +model.head.stride=16 +model.head.grid=8
repghostnet_050 128 simcc steps7200 schedule.real_steps=7200 schedule.max_steps=7200
repghostnet_050 128 simcc s16steps7200 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200
repghostnet_050 128 simcc s16steps14400 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=14400 schedule.max_steps=14400
repghostnet_050 128 simcc s16steps7200lr2 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=2e-3
repghostnet_050 128 simcc s16lr2 +model.head.stride=16 +model.head.grid=8 schedule.lr=2e-3
repghostnet_050 128 simcc s16lr4 +model.head.stride=16 +model.head.grid=8 schedule.lr=4e-3
repghostnet_050 128 simcc s16lr8 +model.head.stride=16 +model.head.grid=8 schedule.lr=8e-3
repghostnet_050 128 simcc s16steps7200lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3
repghostnet_050 128 simcc s16steps14400lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=14400 schedule.max_steps=14400 schedule.lr=4e-3
repghostnet_100 128 simcc s16steps7200lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3
repghostnet_150 128 simcc s16steps7200lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3
repghostnet_050 128 simcc s16lr16 +model.head.stride=16 +model.head.grid=8 schedule.lr=1.6e-2
repghostnet_050 128 simcc s16steps7200lr8 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=8e-3
repghostnet_050 144 simcc s16from128 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=3000 schedule.max_steps=3000 schedule.lr=1e-3 seed=1 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr4seed1/checkpoints/train/best.ckpt
repghostnet_050 128 simcc s16steps7200lr8shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=8e-3 data.real.mirror_shift=1.0
repghostnet_050 128 simcc s16steps14400lr8shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=14400 schedule.max_steps=14400 schedule.lr=8e-3 data.real.mirror_shift=1.0
repghostnet_100 128 simcc s16steps7200lr8shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=8e-3 data.real.mirror_shift=1.0
repghostnet_050 112 simcc s16from128shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=3000 schedule.max_steps=3000 schedule.lr=1e-3 seed=0 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1/checkpoints/train/best.ckpt
repghostnet_050 128 simcc s16steps14400lr8shift1seed1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=14400 schedule.max_steps=14400 schedule.lr=8e-3 data.real.mirror_shift=1.0 seed=1
repghostnet_050 112 simcc s16steps14400lr8shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=14400 schedule.max_steps=14400 schedule.lr=8e-3 data.real.mirror_shift=1.0
repghostnet_050 120 simcc s16from128shift1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=3000 schedule.max_steps=3000 schedule.lr=1e-3 seed=0 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1/checkpoints/train/best.ckpt
repghostnet_050 120 simcc s16from128shift1seed1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=3000 schedule.max_steps=3000 schedule.lr=1e-3 seed=1 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1seed1/checkpoints/train/best.ckpt
repghostnet_050 120 simcc s16from128shift1steps7200lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3 seed=0 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1/checkpoints/train/best.ckpt
repghostnet_050 112 simcc s16from128shift1steps7200lr4 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3 seed=0 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1/checkpoints/train/best.ckpt
repghostnet_050 120 simcc s16from128shift1steps7200lr4seed1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3 seed=1 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1seed1/checkpoints/train/best.ckpt
repghostnet_050 112 simcc s16from128shift1steps7200lr4seed1 +model.head.stride=16 +model.head.grid=8 schedule.real_steps=7200 schedule.max_steps=7200 schedule.lr=4e-3 seed=1 data.real.mirror_shift=1.0 init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr8shift1seed1/checkpoints/train/best.ckpt
"}
run() { if [ -n "${DRY_RUN:-}" ]; then echo "$*"; else "$@"; fi; }
# the recipe's head settings are the heatmap head's: another head drops them
HEATMAP_KEYS="stride sigma decode channels coord_weight map_weight foreground_weight"
# train_line PREFIX SUFFIX "backbone px head [tag overrides...]" [ARGS...]: one model of a FAMILY-style line into
# $OUT/PREFIX<backbone>_<px>_<head>[_<tag>]SUFFIX, ARGS (a strategy and its teacher) before the model's settings
train_line() {
  local prefix=$1 suffix=$2 backbone px head tag overrides drop=() extra=()
  read -r backbone px head tag overrides <<< "$3"
  shift 3
  if [ "$head" != heatmap ]; then for k in $HEATMAP_KEYS; do drop+=("~model.head.$k"); done; fi
  read -r -a extra <<< "${overrides:-}"
  extra=("${extra[@]//\{OUT\}/$OUT}")  # {OUT} in a line: this OUT (a run of the family, e.g. init_from's start)
  OMP_NUM_THREADS=1 run python -m landmark_lab.train +experiment=recipe_300w hydra.mode=RUN "$@" \
    "model.backbone.name=$backbone" "data.transform.crop.size=$px" "model.head.name=$head" ${drop[@]+"${drop[@]}"} \
    ${extra[@]+"${extra[@]}"} data.num_workers=0 logger=csv resume=true \
    "hydra.run.dir=$OUT/$prefix${backbone}_${px}_${head}${tag:+_$tag}$suffix"
}
while read -r line; do
  if [ -n "$line" ]; then train_line "" "" "$line"; fi
done <<< "$FAMILY"
# distillation (strategy=distill): a fast model taught by a more accurate one of the family. Each DISTILL line is
# "teacher backbone px head [tag overrides...]" (the student as a FAMILY line): the teacher is a run folder's name
# under OUT; DISTILL= (empty) skips them
DISTILL=${DISTILL-"
mobilenetv3_large_100_96_heatmap mobilenetv3_small_100 96 heatmap
repghostnet_050_128_heatmap repghostnet_050 128 regression
repghostnet_050_128_heatmap mobilenetv3_small_100 96 simcc g3 +model.head.grid=3
repghostnet_050_128_heatmap repghostnet_050 128 simcc
repghostnet_150_128_simcc_s16steps7200lr4 repghostnet_050 128 simcc s16flipinit +model.head.stride=16 +model.head.grid=8 schedule.real_steps=3000 schedule.max_steps=3000 schedule.lr=1e-3 seed=1 distill.flip=true init_from={OUT}/repghostnet_050_128_simcc_s16steps14400lr4seed1/checkpoints/train/best.ckpt
"}
while read -r teacher student; do
  if [ -z "$teacher" ]; then continue; fi
  train_line distill_ "_from_$teacher" "$student" strategy=distill "distill.teacher=$OUT/$teacher/checkpoints/train/best.ckpt"
done <<< "$DISTILL"
# dlib with its own detector on the same test faces (its NME for the chart's point)
run python -m landmark_lab.evaluate peer=dlib data=300w "data.split=[lfpw/trainset]" eval.box=detector \
  "hydra.run.dir=$OUT/dlib" overwrite=true
# every latency from this one run, on an otherwise idle machine
run python -m landmark_lab.bench "bench.pareto.runs=[$OUT]" "bench.pareto.dlib_metrics=$OUT/dlib" \
  "bench.pareto.out=$(dirname "$0")" "hydra.run.dir=$OUT/bench"
