"""Deployment speed: PyTorch eager vs ONNX Runtime (CPU) at batch 1 and 32, measured side by side.

    python bench/bench_deploy.py [--model cdcn] [--size 64] [--threads 1] [--repeats 5]

Three engines run the same randomly initialised model (BatchNorm statistics perturbed so that folding is not
trivial) on the same input, interleaved round by round so that machine noise hits all of them alike:

* ``eager``        – the model as trained (CDC as written in the model, BatchNorm separate), ``torch.inference_mode``;
* ``eager-folded`` – ``openfas.ops.fuse_model`` applied (the graph that is exported), still PyTorch;
* ``onnxruntime``  – the ``openfas export`` graph (folded, dynamic batch) in ONNX Runtime's CPU provider.

``torch.set_num_threads(T)`` and ORT's ``intra_op_num_threads = T`` (inter-op 1, sequential execution) use the
same ``T`` (``--threads``, default 1 on a shared machine). Reported: median latency per batch, throughput
(images/s), and the ratios eager / onnxruntime and eager / eager-folded (> 1 = the second is faster). Outputs of
the three engines are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import openfas
from openfas.config import load_config
from openfas.deploy.export import export_model_onnx
from openfas.methods import get_method
from openfas.ops import fuse_model


def build(model_name: str, size: int) -> tuple[torch.nn.Module, object, dict]:
    cfg = load_config(None, [f"model.name={model_name}", f"data.image_size={size}", "data.map_size=32"])
    method_cls = get_method(cfg.method.name)
    method = method_cls(cfg, method_cls.Params.model_validate(cfg.method.kwargs()))
    torch.manual_seed(0)
    model = method.build_model().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    d = cfg.data
    meta = {"openfas_version": openfas.__version__, "model": cfg.model.name, "model_kwargs": cfg.model.kwargs(),
            "method": cfg.method.name, "threshold": 0.5,
            "preprocess": {"image_size": d.image_size, "map_size": d.map_size, "mean": d.mean, "std": d.std,
                           "modalities": list(d.modalities), "channel_order": "RGB"}}
    return model, method, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cdcn")
    ap.add_argument("--size", type=int, default=64, help="input side (the papers use 256; kept small for make bench)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per batch size (median reported)")
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    model, method, meta = build(args.model, args.size)
    folded = fuse_model(model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        report = export_model_onnx(model, method, meta, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def eager(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return method.score(model, {"image": x})["score"].numpy()

    def eager_folded(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return method.score(folded, {"image": x})["score"].numpy()

    def onnxrt(x: torch.Tensor) -> np.ndarray:
        return sess.run(["score"], {"image": x.numpy()})[0]

    engines = {"eager": eager, "eager-folded": eager_folded, "onnxruntime": onnxrt}
    print(f"model {args.model} @ {args.size}px, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params; "
          f"torch {torch.__version__} threads={torch.get_num_threads()}, onnxruntime {ort.__version__} "
          f"intra_op_threads={args.threads}; export check: {report}")
    rows = []
    for b in [int(v) for v in args.batches.split(",")]:
        x = torch.randn(b, 3, args.size, args.size, generator=torch.Generator().manual_seed(b))
        ref = eager(x)
        for name, fn in engines.items():  # agreement + warm-up
            np.testing.assert_allclose(fn(x), ref, atol=1e-4, err_msg=name)
            fn(x)
        times: dict[str, list[float]] = {k: [] for k in engines}
        for r in range(args.repeats):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))
            for name in order:
                t0 = time.perf_counter()
                engines[name](x)
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        for name in engines:
            rows.append((b, name, med[name] * 1000, b / med[name]))
        print(f"batch {b:>3}: " + "  ".join(f"{k} {med[k] * 1000:8.2f} ms ({b / med[k]:7.1f} img/s)" for k in engines)
              + f"  | ratio eager/onnxruntime {med['eager'] / med['onnxruntime']:.2f}x, "
                f"eager/eager-folded {med['eager'] / med['eager-folded']:.2f}x")


if __name__ == "__main__":
    main()
