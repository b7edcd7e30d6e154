"""Meta-learning against plain aggregation of the source domains, for ANRL and RFMetaFAS, on the synthetic
leave-one-domain-out protocol (train on synth_a/b/c, test on synth_d).

    python bench/meta_vs_aggregation.py --out runs/meta-dg --seeds 0,1,2

For each method (``anrl/anrl_synth.yaml``, ``rfmeta/rfmeta_synth.yaml`` as packaged), each seed and each arm
(``method.meta=true``: the paper's meta-learning; ``false``: the same network and losses trained on the pooled
source domains) one run is trained with ``data.synth.domain_shift`` (default 2.5: domain cameras further apart
than the default, so the held-out domain is not solved by every model). Runs already finished in OUT are reused.
At the end ``bench/synth_table.py --group`` prints the held-out-domain table (frame AUC with a video-bootstrap
interval, EER, HTER / ACER at the config's threshold, mean ± sd over seeds).

The synthetic set is a test and demo aid: the table says whether the two arms differ on it, not how either does
on real attacks. Results and run times: docs/results.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/meta-dg"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="anrl,rfmeta")
    p.add_argument("--domain-shift", type=float, default=2.5)
    p.add_argument("overrides", nargs="*", help="extra dotted overrides for every run")
    a = p.parse_args()
    openfas = str(Path(sys.executable).with_name("openfas"))
    runs = []
    for seed in a.seeds.split(","):
        for method in a.methods.split(","):
            for meta, arm in (("true", "meta"), ("false", "agg")):
                run = a.out / f"{method}_{arm}_s{seed}"
                runs.append(run)
                if (run / "metrics.json").is_file():
                    continue
                cmd = [openfas, "train", "-c", f"{method}/{method}_synth.yaml",
                       f"data.synth.domain_shift={a.domain_shift}", f"method.meta={meta}",
                       f"experiment.seed={seed}", "eval.report=false", *a.overrides,
                       "--run-dir", str(run), "--no-progress"]
                print("$", " ".join(cmd), flush=True)
                start = time.perf_counter()
                subprocess.run(cmd, check=True)
                print(f"{run.name}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    subprocess.run([sys.executable, str(HERE / "synth_table.py"), "--group", *map(str, runs)], check=True)


if __name__ == "__main__":
    main()
