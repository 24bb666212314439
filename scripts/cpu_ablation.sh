#!/usr/bin/env bash
# The short ablation on this CPU: the rows after batch normalisation, then vgg_small, 10 epochs each, batch 128,
# with fer_best's augmentation and optimiser recipe. The first two rows (paper CNN, + batch
# normalisation) use a constant learning rate, so their first 10 GPU epochs already are 10-epoch
# runs (experiments/gpu_session1). About 25 minutes a row on 2 cores.
# Then: python scripts/ablation_table.py --at-epoch 10 --runs experiments/gpu_session1 --runs experiments/cpu_session3
set -eu
OUT=${OUT:-runs/cpu_abl}
KEEP=${KEEP:-experiments/cpu_session3}
EPOCHS=${EPOCHS:-10}
AUG=flip,shift,zoom,erase
RECIPE=(--optimizer adamw --lr 2e-3 --weight-decay 0.05 --schedule cosine --warmup-epochs 1 --label-smoothing 0.1)
run() {  # run NAME ARGS...: train, then keep the small records (not the weights) in $KEEP
  local name=$1; shift
  python -m fer.train --arch "${ARCH:-paper_bn}" --epochs "$EPOCHS" --batch-size 128 --seed 0 --out "$OUT/$name" "$@"
  mkdir -p "$KEEP/$name"
  cp "$OUT/$name"/{history.csv,hparams.json} "$KEEP/$name/"
  if [[ -f "$OUT/$name/model.json" ]]; then cp "$OUT/$name/model.json" "$KEEP/$name/"; fi
}
run abl2_aug_fast --lr 1e-3 --augment "$AUG"
run abl3_adamw --augment "$AUG" "${RECIPE[@]}"
run abl4_hist_adamw --augment "$AUG" --illumination hist "${RECIPE[@]}"
ARCH=vgg_small run abl5_vgg_small --augment "$AUG" --illumination hist "${RECIPE[@]}"
