#!/usr/bin/env bash
# Masked-face recognition on synthetic identities (a test and demo aid, not a benchmark of real faces; ~40 min on
# 2 CPU cores): a CosFace teacher trained on unmasked faces, then, fine-tuned from it on the same data with half the
# faces masked, the CosFace baseline, CSDN and CSDN with region bands (three seeds each), scored on the config's
# masked-vs-unmasked pairs and on 60 new identities (1,920 pairs), printed with `openfas compare`.
#   bench/csdn_synth.sh [OUT]        (default runs/csdn-synth)
set -euo pipefail
OUT=${1:-runs/csdn-synth}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
C="data.identities.synth.cache_dir=$OUT/cache experiment.output_dir=$OUT"
openfas train -c recognition/teacher_synth.yaml $C --run-dir "$OUT/teacher" --no-progress
T=$OUT/teacher/checkpoints/final.safetensors
FT="method.init_from=$T optim.lr=0.01"
for seed in 0 1 2; do
  openfas train -c recognition/cosface_synth.yaml $C $FT experiment.seed=$seed --run-dir "$OUT/cosface_ft_s$seed" --no-progress
  openfas train -c recognition/csdn_synth.yaml $C $FT experiment.seed=$seed method.teacher=$T \
    --run-dir "$OUT/csdn_ft_s$seed" --no-progress
  openfas train -c recognition/csdn_synth.yaml $C $FT experiment.seed=$seed method.teacher=$T model.regions=bands \
    --run-dir "$OUT/csdn_bands_ft_s$seed" --no-progress
done
openfas data synth-ids "$OUT/bigtest" --identities 2 --images 1 --test-identities 60 --test-images 4 \
  --pairs-per-identity 16 --size 64 --seed 7
for r in teacher cosface_ft_s{0,1,2} csdn_ft_s{0,1,2} csdn_bands_ft_s{0,1,2}; do
  openfas eval "$OUT/$r/checkpoints/final.safetensors" --pairs "$OUT/bigtest/test/pairs.txt" --aligned --out "$OUT/big/$r" >/dev/null
done
openfas compare "$OUT"/teacher "$OUT"/cosface_ft_s? "$OUT"/csdn_ft_s? "$OUT"/csdn_bands_ft_s?
openfas compare "$OUT"/big/*
