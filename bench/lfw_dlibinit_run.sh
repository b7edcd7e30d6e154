#!/usr/bin/env bash
# One fine-tuning run from dlib's weights on LFW, scored on one split (docs/masked_recognition.md).
#   bench/lfw_dlibinit_run.sh CONFIG DATA WEIGHTS SPLIT RUN [overrides...]
# CONFIG: recognition/csdn_lfw_dlibinit.yaml or recognition/cosface_lfw_dlibinit.yaml; DATA: the folder of
# `openfas data lfw … --geometry dlib --teacher dlib-torch [--val-people N]`; WEIGHTS: `openfas data dlib-weights`;
# SPLIT: val (schedule selection; needs --val-people) or test (DevTest, scored once per chosen run).
# Trains on DATA/train (the end-of-training verification is SPLIT's one-masked list), then `openfas eval` on
# SPLIT's clean and both-masked lists. RUN_PREFIX (e.g. "nice -n 5", or a flock command) wraps the whole
# run (training and its two evaluations) once, so a shared lock is taken once per run and released after it.
# A run whose evals exist is skipped. EVAL_FLAGS (e.g. "--flip") is passed to the two `openfas eval` calls; for the
# same mirror averaging in the training-end verification add the override data.identities.flip=true.
set -euo pipefail
if [ -n "${RUN_PREFIX:-}" ]; then
  PRE=$RUN_PREFIX; RUN_PREFIX=
  exec $PRE "$0" "$@"
fi
CFG=$1; D=$2; W=$3; SPLIT=$4; RUN=$5; shift 5
OPENFAS=${OPENFAS:-openfas}
[ -f "$RUN/eval-both_masked/metrics.json" ] && exit 0
if [ ! -f "$RUN/checkpoints/final.safetensors" ]; then
  # train_seconds.txt: the training command's own wall time (inside RUN_PREFIX, so without the lock wait)
  mkdir -p "$RUN"
  /usr/bin/time -f %e -o "$RUN/train_seconds.txt" $OPENFAS train -c "$CFG" data.identities.root="$D/train" \
    data.identities.pairs="$D/$SPLIT/pairs_one_masked.txt" data.identities.pairs_root="$D/$SPLIT" \
    method.init_from="$W" method.teacher_table="$D/teacher/dlib_train.safetensors" \
    model.num_classes="$(find "$D/train" -mindepth 1 -maxdepth 1 -type d | wc -l)" "$@" --run-dir "$RUN" --no-progress
fi
for p in clean both_masked; do
  $OPENFAS eval "$RUN/checkpoints/final.safetensors" --pairs "$D/$SPLIT/pairs_$p.txt" --root "$D/$SPLIT" \
    --pairs-format mlfw --aligned ${EVAL_FLAGS:-} --out "$RUN/eval-$p"
done
