"""Load check of the HTTP service: N concurrent clients on loopback for a bounded time.

    python bench/load_check.py [CKPT_OR_ONNX] [--clients 4] [--seconds 20 | --requests 2000]
                               [--images DIR_OR_FILES] [--max-concurrency 2] [--max-queue 8] [--detector SPEC]

Starts ``openfas serve`` in a subprocess (a randomly initialised ``pixelnet`` width 8 at 64 px when no model is
given), waits for ``/healthz``, warms it up, reads the server's RSS (``/proc/PID/status`` VmRSS), then lets
``--clients`` threads POST images to ``/v1/liveness`` back to back, for ``--seconds`` or until ``--requests``
requests were sent in all. Images: ``--images`` (e.g. NUAA 640×480 webcam JPEGs, sent round robin) or a 3-face
640×360 PNG. ``--max-concurrency 0`` lets the server size its worker pool to the machine. Reports requests/s,
p50/p95/p99 latency, errors (any non-200, must be 0 while clients ≤ max-concurrency + max-queue), 503s
separately, and the server's RSS after the warm-up and at every quarter of the run (flat = no leak). Exit code 1
if any request failed. Linux only (reads /proc).
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
    from openfas.data.synth.pad import render_sample

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
    ap.add_argument("--requests", type=int, default=0, help="stop after this many requests (0: use --seconds)")
    ap.add_argument("--images", nargs="*", default=[], help="image files or folders to send (default: a scene)")
    ap.add_argument("--max-concurrency", type=int, default=2)
    ap.add_argument("--max-queue", type=int, default=8)
    ap.add_argument("--detector", default=None)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    model = Path(args.model) if args.model else _random_checkpoint(Path(tmp.name))
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "openfas.cli", "serve", str(model), "--port", str(port),
                               "--max-concurrency", str(args.max_concurrency), "--max-queue", str(args.max_queue),
                               "--no-map", *(["--detector", args.detector] if args.detector else [])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        files: list[Path] = []
        for spec in args.images:
            p = Path(spec)
            files += sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png")) \
                if p.is_dir() else [p]
        images = [(f.name, f.read_bytes()) for f in files] or [("a.png", _scene())]
        bodies = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                   f"Content-Type: application/octet-stream\r\n\r\n").encode() + data
                  + f"\r\n--{boundary}--\r\n".encode() for name, data in images]
        for i in range(5):
            status, _ = _post(port, bodies[i % len(bodies)], boundary)
            assert status == 200, f"warm-up request failed with HTTP {status}"
        rss0 = _rss_mib(server.pid)
        rss_marks: list[float] = []
        lat: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        stop = time.perf_counter() + (args.seconds if args.requests <= 0 else 10 ** 9)
        sent = [0]

        def client() -> None:
            while time.perf_counter() < stop:
                with lock:
                    if 0 < args.requests <= sent[0]:
                        return
                    i = sent[0]
                    sent[0] += 1
                    if args.requests > 0 and i > 0 and i % max(1, args.requests // 4) == 0:
                        rss_marks.append(_rss_mib(server.pid))
                try:
                    status, dt = _post(port, bodies[i % len(bodies)], boundary)
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
        p50, p95, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 95, 99)) if lat else (float("nan"),) * 3
        what = f"{len(images)} image file(s) from {args.images}" if files else "640×360 PNG with 3 faces"
        print(f"model {health['model']} ({health['backend']}, detector {health.get('detector')}), {args.clients} "
              f"clients, {wall:.1f} s, server max_concurrency={args.max_concurrency or 'auto'} "
              f"max_queue={args.max_queue}, {what}")
        print(f"requests ok {ok}, {ok / wall:.1f} req/s, latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
        print(f"errors {errors} (503 busy: {statuses.get(503, 0)}; by status: {statuses})")
        marks = " → ".join(f"{r:.1f}" for r in [rss0, *rss_marks, rss1])
        print(f"server RSS {rss0:.1f} MiB after warm-up → {rss1:.1f} MiB after the run ({rss1 - rss0:+.1f} MiB); "
              f"by quarter: {marks} MiB")
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
