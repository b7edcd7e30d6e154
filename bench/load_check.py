"""Load check of the HTTP service: ``openfas serve`` in a subprocess, N concurrent clients on loopback.

    python bench/load_check.py [MODEL] [--clients 8] [--requests 2000 | --seconds S] [--images DIR_OR_FILES]
                               [--max-concurrency 0] [--max-queue 8] [--detector SPEC] [--server-cpus 0,1]

The service goal's measurement (the bundled model, 8 clients, 2,000 requests of one-face 640×480 JPEGs, one
worker per core), from the repository root with the shared data next to it, on a 2-core machine with nothing
else running (NUAA persons 0008 and 0015: one face in every frame):

    python bench/load_check.py --images ../shared/data/nuaa/ClientRaw/0008 ../shared/data/nuaa/ClientRaw/0015

On a machine with more cores, add ``--server-cpus 0,1``: the server is pinned to two of them, these clients to
the others.

What it does: starts ``openfas serve [MODEL] --max-concurrency … --no-map`` (MODEL default: the bundled model;
the environment is passed on as it is, no thread variables added, so it measures what ``openfas serve`` does by
itself), waits for ``/healthz``, sends up to 200 of the images once to warm it up, then lets ``--clients``
threads POST images (round robin, one connection per request) to ``/v1/liveness`` back to back until
``--requests`` were sent (or for ``--seconds``). Images: ``--images`` (files or folders of JPEG/PNG), else one
synthetic 640×480 JPEG (the faces per response say whether the detector found its face).

Reported:

* requests/s over the run, latency p50/p95/p99 of the successful requests, faces per response;
* errors (any non-200; must be 0 while clients ≤ max-concurrency + max-queue), 503s apart;
* CPU time per request of the server (and of its event loop thread) and of these clients, the throughput that
  CPU time allows on the server's cores with nothing else running (other jobs disturb it much less than
  requests/s), and how many cores the server kept busy (well under its cores on an idle machine would mean its
  workers wait for each other);
* the server's resident memory (``/proc/PID/status`` VmRSS) sampled 40 times across the run, the mean of each
  quarter's samples and the change from the first quarter to the last;
* the service goal checked line by line: ≥ 80 req/s, p95 ≤ 150 ms, memory flat (last quarter within 2 % or
  8 MiB of the first), and the load average before and after (whether anything else ran).

Exit code 1 if a request failed. Linux only (reads /proc).
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
from typing import Any

import cv2
import numpy as np

GOAL_RPS, GOAL_P95_MS = 80.0, 150.0
FLAT_FRACTION, FLAT_MIB = 0.02, 8.0
RSS_SAMPLES = 40


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds a process (or one of its threads) has used (``stat``: utime and stime)."""
    path = Path(f"/proc/{pid}/stat") if tid is None else Path(f"/proc/{pid}/task/{tid}/stat")
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except OSError:  # a thread that has ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _synthetic_frame() -> bytes:
    """A 640×480 JPEG with one synthetic face in the middle (the procedural faces of the synthetic data)."""
    from openfas.data.synth.pad import render_sample

    canvas = np.full((480, 640, 3), 120, np.uint8)
    canvas[120:360, 200:440] = render_sample(0, "live", "synth_a", 0, 240)["rgb"]
    return cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _cpus(spec: str) -> set[int]:
    try:
        cpus = {int(c) for c in spec.split(",") if c.strip()}
    except ValueError:
        raise SystemExit(f"--server-cpus: expected a comma-separated list of CPU numbers, got {spec!r}") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise SystemExit(f"--server-cpus {spec}: not a subset of this process's CPUs {sorted(allowed)}")
    return cpus


def _post(port: int, body: bytes, boundary: str) -> tuple[int, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/liveness", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = conn.getresponse()
    data = resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    faces = len(json.loads(data).get("faces", [])) if resp.status == 200 else 0
    return resp.status, dt, faces


def _start_server(args: argparse.Namespace, port: int, log: Any) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "openfas.cli", "serve", *([args.model] if args.model else []), "--port", str(port),
           "--max-concurrency", str(args.max_concurrency), "--max-queue", str(args.max_queue), "--no-map",
           *(["--detector", args.detector] if args.detector else [])]
    server_cpus = _cpus(args.server_cpus) if args.server_cpus else None
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log,  # a file: a full pipe would block it
                              preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)
    if server_cpus:
        rest = os.sched_getaffinity(0) - server_cpus
        if rest:
            os.sched_setaffinity(0, rest)
    return server


def _wait_healthy(server: subprocess.Popen, port: int, log: Any) -> dict:
    deadline = time.time() + 120
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return json.loads(conn.getresponse().read())
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise SystemExit(f"server did not start: {log.read().decode(errors='replace')[-2000:]}") from None
            time.sleep(0.2)
        finally:
            conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="checkpoint, .onnx or bundled model name (default: the bundled model)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=2000, help="stop after this many requests (0: use --seconds)")
    ap.add_argument("--seconds", type=float, default=20.0, help="run length when --requests is 0")
    ap.add_argument("--images", nargs="*", default=[], help="image files or folders to send (default: a synthetic "
                                                            "one-face 640×480 JPEG)")
    ap.add_argument("--max-concurrency", type=int, default=0, help="server workers (0: one per core it may use)")
    ap.add_argument("--max-queue", type=int, default=8)
    ap.add_argument("--detector", default=None)
    ap.add_argument("--server-cpus", default=None, help="pin the server to these CPUs, e.g. 0,1 (clients: the rest)")
    args = ap.parse_args()
    if args.clients < 1 or args.requests < 0 or (args.requests == 0 and args.seconds <= 0):
        raise SystemExit("--clients must be >= 1, and --requests > 0 or --seconds > 0")

    files: list[Path] = []
    for spec in args.images:
        p = Path(spec)
        if not p.exists():
            raise SystemExit(f"--images: {p} does not exist")
        files += sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png")) \
            if p.is_dir() else [p]
    if args.images and not files:
        raise SystemExit(f"--images: no JPEG/PNG files in {args.images}")
    images = [(f.name, f.read_bytes()) for f in files] or [("synthetic.jpg", _synthetic_frame())]
    sizes = {(im.shape[1], im.shape[0]) for im in
             (cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for _, d in images[:50]) if im is not None}
    boundary = uuid.uuid4().hex
    bodies = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
               f"Content-Type: application/octet-stream\r\n\r\n").encode() + data
              + f"\r\n--{boundary}--\r\n".encode() for name, data in images]

    port = _free_port()
    load_before = os.getloadavg()[0]
    log = tempfile.TemporaryFile()
    server = _start_server(args, port, log)
    try:
        health = _wait_healthy(server, port, log)
        for body in bodies[:200]:  # warm-up: every worker, the detector and the model have run
            status, _, _ = _post(port, body, boundary)
            if status != 200:
                raise SystemExit(f"warm-up request failed with HTTP {status}")
        rss_warm = _rss_mib(server.pid)
        total = args.requests
        every = max(1, total // RSS_SAMPLES) if total else 0
        rss: list[tuple[float, float]] = []  # (fraction of the run, MiB)
        lat: list[float] = []
        faces: list[int] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        sent = [0]
        cpu_server0, cpu_client0 = _cpu_s(server.pid), _cpu_s(os.getpid())
        cpu_loop0 = _cpu_s(server.pid, server.pid)  # the main thread runs the event loop (HTTP, multipart, JSON)
        t0 = time.perf_counter()
        stop = t0 + (args.seconds if total == 0 else 10 ** 9)

        def client() -> None:
            while True:
                with lock:
                    i = sent[0]
                    if (total and i >= total) or time.perf_counter() >= stop:
                        return
                    sent[0] += 1
                    if total and i % every == 0:
                        rss.append((i / total, _rss_mib(server.pid)))
                try:
                    status, dt, n_faces = _post(port, bodies[i % len(bodies)], boundary)
                except (OSError, http.client.HTTPException, json.JSONDecodeError):
                    status, dt, n_faces = -1, 0.0, 0
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        lat.append(dt)
                        faces.append(n_faces)

        sampler_stop = threading.Event()

        def sampler() -> None:  # --seconds runs: sample by time instead of by request
            while not sampler_stop.wait(args.seconds / RSS_SAMPLES):
                rss.append(((time.perf_counter() - t0) / args.seconds, _rss_mib(server.pid)))

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        if total == 0:
            threads.append(threading.Thread(target=sampler))
        for t in threads:
            t.start()
        for t in threads[:args.clients]:
            t.join()
        wall = time.perf_counter() - t0
        sampler_stop.set()
        for t in threads[args.clients:]:
            t.join()
        rss.append((1.0, _rss_mib(server.pid)))
        cpu_server, cpu_client = _cpu_s(server.pid) - cpu_server0, _cpu_s(os.getpid()) - cpu_client0
        cpu_loop = _cpu_s(server.pid, server.pid) - cpu_loop0
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    ok = statuses.get(200, 0)
    errors = sum(v for k, v in statuses.items() if k != 200)
    rps = ok / wall
    p50, p95, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 95, 99)) if lat else (float("nan"),) * 3
    quarters = [[m for f, m in rss if q / 4 <= f < (q + 1) / 4 or (q == 3 and f >= 1.0)] for q in range(4)]
    qmeans = [float(np.mean(q)) if q else float("nan") for q in quarters]
    growth = qmeans[3] - qmeans[0]
    flat = abs(growth) <= max(FLAT_MIB, FLAT_FRACTION * qmeans[0])
    what = f"{len(images)} image(s) from {' '.join(args.images)}" if files else "one synthetic JPEG"
    cpus = args.server_cpus or ",".join(map(str, sorted(os.sched_getaffinity(0))))
    print(f"model {health['model_file']['name']} ({health['model']}, {health['backend']}), detector "
          f"{health['detector']}; server: max_concurrency {health['limits']['max_concurrency']}, max_queue "
          f"{health['limits']['max_queue']}, CPUs {cpus}")
    print(f"{args.clients} clients, {ok + errors} requests in {wall:.1f} s; {what}, sizes "
          f"{', '.join(f'{w}×{h}' for w, h in sorted(sizes))}; load average {load_before:.2f} before, "
          f"{load_after:.2f} after, on {os.cpu_count()} cores")
    print(f"requests ok {ok}, {rps:.1f} req/s, latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms; faces "
          f"per response {np.mean(faces) if faces else float('nan'):.2f}")
    n_cpus = len(_cpus(args.server_cpus)) if args.server_cpus else len(os.sched_getaffinity(0))
    per_req = (1000 * cpu_server / max(ok + errors, 1), 1000 * cpu_client / max(ok + errors, 1))
    shared = "" if args.server_cpus else " + these clients', which share its cores"
    print(f"CPU time per request: server {per_req[0]:.1f} ms (event loop {1000 * cpu_loop / max(ok + errors, 1):.1f} "
          f"ms, the other threads the rest), clients {per_req[1]:.1f} ms → at most "
          f"{1000 * n_cpus / (per_req[0] + (0 if args.server_cpus else per_req[1])):.0f} req/s on {n_cpus} cores "
          f"with nothing else running (the server's{shared} CPU time spread over them); the server kept "
          f"{cpu_server / wall:.2f} of its {n_cpus} cores busy")
    print(f"errors {errors} (503 busy: {statuses.get(503, 0)}; by status: {statuses})")
    print(f"server RSS {rss_warm:.1f} MiB after warm-up; mean by quarter of the run: "
          + " → ".join(f"{m:.1f}" for m in qmeans)
          + f" MiB ({len(rss)} samples, max {max(m for _, m in rss):.1f}); last quarter − first {growth:+.1f} MiB")
    print(f"goal: {rps:.1f} req/s {'≥' if rps >= GOAL_RPS else '<'} {GOAL_RPS:g} "
          f"[{'met' if rps >= GOAL_RPS else 'NOT met'}]; p95 {p95:.1f} ms {'≤' if p95 <= GOAL_P95_MS else '>'} "
          f"{GOAL_P95_MS:g} [{'met' if p95 <= GOAL_P95_MS else 'NOT met'}]; memory "
          f"{'flat' if flat else 'NOT flat'} (|{growth:+.1f}| MiB vs {max(FLAT_MIB, FLAT_FRACTION * qmeans[0]):.1f})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
