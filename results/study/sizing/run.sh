#!/usr/bin/env bash
# Learning curves for sizing the study (issue 12): each method alone on a quiet machine, voc-mini at 64 px,
# the study's CPU widths, batch 16, bf16, 160 training images set aside and scored every 100 steps,
# at most 8 minutes of training each. Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data/voc-mini}
COMMON="--data folder --data-root $DATA --image-size 64 --batch-size 16 --amp bf16 --num-val-images 160 --val-every 100 \
  --checkpoint-every 100 --log-every 20 --num-steps 2400 --max-minutes 8 --no-progress"
.venv/bin/colorgan train --method colorgan $COMMON --gen-width 32 --noise-width 128 --disc-width 32 --run-dir runs/sizing/colorgan
.venv/bin/colorgan train --method chromagan $COMMON --trunk-width 32 --head-width 256 --global-dim 128 --class-hidden 1024 \
  --decoder-width 64 --disc-width 32 --lr-g 1e-4 --lr-d 1e-4 --run-dir runs/sizing/chromagan
.venv/bin/colorgan train --method coltran $COMMON --coarse-size 16 --hidden-size 64 --ff-size 128 --num-heads 2 \
  --num-encoder-layers 2 --num-outer-layers 1 --num-inner-layers 1 --upsampler-hidden-size 64 --upsampler-ff-size 128 \
  --upsampler-heads 2 --num-color-upsampler-layers 1 --num-spatial-upsampler-layers 1 --spatial-batch-size 4 \
  --ema-decay 0.99 --lr 1e-3 --run-dir runs/sizing/coltran
