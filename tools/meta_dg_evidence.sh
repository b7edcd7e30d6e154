#!/usr/bin/env bash
# Meta-learning vs plain aggregation of the source domains for ANRL and RFMetaFAS on the synthetic
# leave-one-domain-out protocol with the harder domain shift (data.synth.domain_shift, default 2.5 here), several
# seeds; a test and demo aid sized for a shared CPU, not a benchmark. Each run takes the shared CPU lock ($LOCK; set
# LOCK= and wrap the whole script in flock to hold it across runs). Measured on a 2-core CPU with the lock held:
# ANRL meta 7.3 min, ANRL aggregation 4.5 min, RFMetaFAS 4 min per run (docs/faithfulness.md).
#   tools/meta_dg_evidence.sh [OUT] [SEEDS] [EXTRA OVERRIDES...]     (default /tmp/meta-dg-evidence, "0 1 2")
# Table: python bench/synth_table.py --group OUT/*_s*
set -euo pipefail
OUT=${1:-/tmp/meta-dg-evidence}
SEEDS=${2:-"0 1 2"}
shift $(( $# > 2 ? 2 : $# ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OPENFAS=${OPENFAS:-openfas}
SHIFT=${SHIFT:-2.5}
LOCK=${LOCK-flock /tmp/openfas-cpu.lock nice -n 5}
for seed in $SEEDS; do
  for method in anrl rfmeta; do
    for meta in true false; do
      tag=$([ "$meta" = true ] && echo meta || echo agg)
      run="$OUT/${method}_${tag}_s$seed"
      [ -f "$run/metrics.json" ] && continue
      start=$(date +%s)
      $LOCK $OPENFAS train -c "$method/${method}_synth.yaml" \
        data.synth.domain_shift=$SHIFT method.meta=$meta experiment.seed=$seed eval.report=false "$@" \
        --run-dir "$run" --no-progress
      echo "$run: $(( $(date +%s) - start )) s"
    done
  done
done
