#!/usr/bin/env bash
# Masked-face recognition on real faces (LFW View 1), trained from scratch: dlib teacher → CSDN student with distillation
# from the precomputed teacher table, the CosFace baseline and the two ablations (no KD, no consistency loss), all
# on the same DevTrain identities with masks synthesised on the fly, evaluated on the DevTest pairs in three
# protocols. Usage: bench/lfw_masked_evidence.sh LFW_ROOT OUT [extra train overrides…]
#   LFW_ROOT: LFW in its distributed layout (e.g. data/lfw); OUT: folder for data/ and runs.
# Environment: PREP_ARGS (default "--test-pairs 500 --workers 2"), MODELS (default "csdn cosface csdn_nokd csdn_nokl").
set -euo pipefail
LFW=$1; OUT=$2; shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
D=$OUT/data
[ -f "$D/info.json" ] || openfas data lfw "$LFW" "$D" ${PREP_ARGS:---test-pairs 500 --workers 2}
N=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['train_identities'])" "$D/info.json")
C="data.identities.root=$D/train data.identities.pairs=$D/test/pairs_one_masked.txt data.identities.pairs_root=$D/test
   model.num_classes=$N experiment.output_dir=$OUT"
TABLE="method.teacher_table=$D/teacher/dlib_train.safetensors"
for m in ${MODELS:-csdn cosface csdn_nokd csdn_nokl}; do
  case $m in
    csdn) cfg=recognition/csdn_lfw.yaml; extra="$TABLE" ;;
    csdn_nokd) cfg=recognition/csdn_lfw.yaml; extra="method.kd_weight=0" ;;
    csdn_nokl) cfg=recognition/csdn_lfw.yaml; extra="$TABLE method.kl_weight=0" ;;
    cosface) cfg=recognition/cosface_lfw.yaml; extra="" ;;
  esac
  start=$(date +%s)
  openfas train -c $cfg $C $extra "$@" --run-dir "$OUT/$m" --no-progress
  echo $(( $(date +%s) - start )) > "$OUT/$m/train_seconds.txt"
  for p in clean one_masked both_masked; do
    openfas eval "$OUT/$m/checkpoints/final.safetensors" --pairs "$D/test/pairs_$p.txt" --root "$D/test" \
      --pairs-format mlfw --aligned --out "$OUT/$m/eval-$p" > /dev/null
  done
done
python -c "from openfas.recognition.lfw import results_table as t; import sys; print(t(sys.argv[1], sys.argv[2:]))" \
  "$D" $(for m in ${MODELS:-csdn cosface csdn_nokd csdn_nokl}; do echo "$OUT/$m"; done)
