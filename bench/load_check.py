"""Load check of the HTTP service: N concurrent clients on loopback for a bounded time.

    python bench/load_check.py [CKPT_OR_ONNX] [--clients 4] [--seconds 20] [--max-concurrency 2] [--max-queue 8]

Starts ``openfas serve`` in a subprocess (a randomly initialised ``pixelnet`` width 8 at 64 px when no model is
given), waits for ``/healthz``, warms it up, reads the server's RSS (``/proc/PID/status`` VmRSS), then lets
``--clients`` threads POST a 3-face 640×360 PNG to ``/v1/liveness`` back to back for ``--seconds``. Reports
requests/s, p50/p99 latency, errors (any non-200, must be 0 while clients ≤ max-concurrency + max-queue), 503s
separately, and the server's RSS growth between the warm-up and the end. Exit code 1 if any request failed.
Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scene() -> bytes:
    from openfas.data.synth import render_sample

    canvas = np.full((360, 640, 3), 120, np.uint8)
    for i in range(3):
        canvas[100:260, 40 + i * 200: 200 + i * 200] = render_sample(i, "live", "synth_a", 0, 160)["rgb"]
    return cv2.imencode(".png", canvas)[1].tobytes()


def _random_checkpoint(folder: Path) -> Path:
    import torch

    import openfas
    from openfas.config import load_config
    from openfas.io.checkpoint import save_checkpoint
    from openfas.methods import get_method

    cfg = load_config(None, ["model.width=8", "data.image_size=64", "data.map_size=16"])
    method_cls = get_method(cfg.method.name)
    model = method_cls(cfg, method_cls.Params.model_validate(cfg.method.kwargs())).build_model()
    torch.nn.init.constant_(model.head[1].bias, 0.05)  # non-zero scores
    d = cfg.data
    meta = {"openfas_version": openfas.__version__, "model": cfg.model.name, "model_kwargs": cfg.model.kwargs(),
            "method": cfg.method.name, "config": cfg.to_dict(), "threshold": 0.1,
            "preprocess": {"image_size": d.image_size, "map_size": d.map_size, "mean": d.mean, "std": d.std,
                           "modalities": list(d.modalities), "channel_order": "RGB", "crop": {}}}
    return save_checkpoint(folder / "random.safetensors", model_state=model.state_dict(), meta=meta)


def _post(port: int, body: bytes, boundary: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/liveness", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="checkpoint or .onnx (default: a random tiny pixelnet)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-concurrency", type=int, default=2)
    ap.add_argument("--max-queue", type=int, default=8)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    model = Path(args.model) if args.model else _random_checkpoint(Path(tmp.name))
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "openfas.cli", "serve", str(model), "--port", str(port),
                               "--max-concurrency", str(args.max_concurrency), "--max-queue", str(args.max_queue),
                               "--no-map"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                health = json.loads(conn.getresponse().read())
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    print("server did not start:", server.stderr.read().decode()[-2000:] if server.stderr else "")
                    return 2
                time.sleep(0.2)
        boundary = uuid.uuid4().hex
        image = _scene()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
        for _ in range(5):
            status, _ = _post(port, body, boundary)
            assert status == 200, f"warm-up request failed with HTTP {status}"
        rss0 = _rss_mib(server.pid)
        lat: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def client() -> None:
            while time.perf_counter() < stop:
                try:
                    status, dt = _post(port, body, boundary)
                except OSError:
                    status, dt = -1, 0.0
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        lat.append(dt)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss1 = _rss_mib(server.pid)
        ok = statuses.get(200, 0)
        errors = sum(v for k, v in statuses.items() if k != 200)
        p50, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 99)) if lat else (float("nan"),) * 2
        print(f"model {health['model']} ({health['backend']}), {args.clients} clients, {wall:.1f} s, "
              f"server max_concurrency={args.max_concurrency} max_queue={args.max_queue}, 640×360 PNG with 3 faces")
        print(f"requests ok {ok}, {ok / wall:.1f} req/s, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"errors {errors} (503 busy: {statuses.get(503, 0)}; by status: {statuses})")
        print(f"server RSS {rss0:.1f} MiB after warm-up → {rss1:.1f} MiB after the run ({rss1 - rss0:+.1f} MiB)")
        return 1 if errors else 0
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
