#!/usr/bin/env bash
# Seeds and ablations of the first, 1-epoch recipe of recognition/csdn_lfw_dlibinit.yaml on LFW DevTest
# (docs/masked_recognition.md §7).
#   tools/lfw_dlibinit_ablations.sh DATA WEIGHTS OUT
# DATA: the folder of `openfas data lfw … --geometry dlib --teacher dlib-torch`; WEIGHTS: `openfas data dlib-weights`.
set -euo pipefail
D=$1; W=$2; OUT=$3
OPENFAS=${OPENFAS:-openfas}
mkdir -p "$OUT"
for spec in "s0 experiment.seed=0" "s1 experiment.seed=1" "s2 experiment.seed=2" "nokd method.kd_weight=0" \
            "nokl method.kl_weight=0"; do
  set -- $spec; name=$1; shift
  run=$OUT/$name
  [ -f "$run/eval-both_masked/metrics.json" ] && continue
  $OPENFAS train -c recognition/csdn_lfw_dlibinit.yaml data.identities.root="$D/train" \
    data.identities.pairs="$D/test/pairs_one_masked.txt" data.identities.pairs_root="$D/test" \
    method.init_from="$W" method.teacher_table="$D/teacher/dlib_train.safetensors" train.epochs=1 "$@" \
    --run-dir "$run" --no-progress
  for p in clean both_masked; do
    $OPENFAS eval "$run/checkpoints/final.safetensors" --pairs "$D/test/pairs_$p.txt" --root "$D/test" \
      --pairs-format mlfw --out "$run/eval-$p"
  done
done
