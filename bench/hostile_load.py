"""Hostile-load check of ``openfas serve``: good clients beside slow clients and decode-heavy images.

Starts the real service (a subprocess on 127.0.0.1), measures good requests alone, then again while
``--slow-headers`` connections trickle their headers, ``--slow-bodies`` connections trickle their bodies and
``--heavy`` clients upload decode-heavy images (4096×4096 16-bit and 8-bit PNGs of a few hundred KB). Prints the
good requests' success rate and p95 in both phases and the server's RSS before and after. Bounded: every phase
runs for ``--seconds``, every socket has a timeout, and the server is stopped at the end (also on Ctrl-C).

    python bench/hostile_load.py runs/<run>/checkpoints/final.safetensors --seconds 20

Goal: 100 % of good requests answered 200, p95 under load <= 2x the unloaded p95, RSS flat.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _face_png() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from deploy_fixtures import faces_scene

    return cv2.imencode(".png", faces_scene(1, 100))[1].tobytes()


def _good_client(url: str, image: bytes, stop: threading.Event, out: list[tuple[int, float]]) -> None:
    with httpx.Client(timeout=30) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status = c.post(url, files={"image": ("a.png", image)}).status_code
            except httpx.HTTPError:
                status = -1
            out.append((status, time.perf_counter() - t0))


def _heavy_client(url: str, images: list[bytes], stop: threading.Event, counts: dict[int, int]) -> None:
    with httpx.Client(timeout=30) as c:
        i = 0
        while not stop.is_set():
            try:
                status = c.post(url, files={"image": ("h.png", images[i % len(images)])}).status_code
            except httpx.HTTPError:
                status = -1
            counts[status] = counts.get(status, 0) + 1
            i += 1


def _slow_client(host: str, port: int, body: bool, stop: threading.Event, closed: list[int]) -> None:
    try:
        s = socket.create_connection((host, port), timeout=5)
        head = b"POST /v1/liveness HTTP/1.1\r\nHost: x\r\n"
        if body:
            head += b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        s.sendall(head)
        while not stop.is_set():
            s.sendall(b"X")  # one byte a second, for as long as the server lets it
            stop.wait(1.0)
    except OSError:
        closed.append(1)  # the server closed it (send on a closed socket fails)


def _p95(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 95)) * 1000 if latencies else float("nan")


def _phase(url: str, image: bytes, clients: int, seconds: float) -> tuple[int, int, float]:
    stop, results = threading.Event(), []  # type: ignore[var-annotated]
    threads = [threading.Thread(target=_good_client, args=(url, image, stop, results)) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    ok = [dt for s, dt in results if s == 200]
    return len(ok), len(results), _p95(ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--clients", type=int, default=2, help="good clients")
    ap.add_argument("--slow-headers", type=int, default=200)
    ap.add_argument("--slow-bodies", type=int, default=50)
    ap.add_argument("--heavy", type=int, default=2, help="clients uploading decode-heavy images")
    ap.add_argument("--timeout", type=float, default=5.0, help="the service's header/body timeouts (seconds)")
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    server = subprocess.Popen([sys.executable, "-m", "openfas.cli", "serve", str(args.model), "--port", str(port),
                               "--max-concurrency", "2", "--header-timeout", str(args.timeout),
                               "--body-timeout", str(args.timeout), "--work-timeout", "5"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/liveness"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("the service did not start within 120 s")
        image = _face_png()
        heavy = [cv2.imencode(".png", np.full((4096, 4096, 3), 30000, np.uint16))[1].tobytes(),
                 cv2.imencode(".png", np.full((4096, 4096, 3), 120, np.uint8))[1].tobytes()]
        print(f"decode-heavy images: {', '.join(f'{len(h) // 1024} KB' for h in heavy)} (4096x4096, 16 / 8 bit)")
        _phase(url, image, args.clients, 3.0)  # warm-up
        rss0 = _rss_mib(server.pid)
        ok0, n0, p95_0 = _phase(url, image, args.clients, args.seconds)
        print(f"unloaded: {ok0}/{n0} good requests answered 200, p95 {p95_0:.1f} ms, RSS {rss0:.1f} MiB")

        stop = threading.Event()
        closed: list[int] = []
        counts: dict[int, int] = {}
        attackers = [threading.Thread(target=_slow_client, args=("127.0.0.1", port, i >= args.slow_headers, stop,
                                                                 closed), daemon=True)
                     for i in range(args.slow_headers + args.slow_bodies)]
        attackers += [threading.Thread(target=_heavy_client, args=(url, heavy, stop, counts), daemon=True)
                      for _ in range(args.heavy)]
        for t in attackers:
            t.start()
        time.sleep(1.0)
        ok1, n1, p95_1 = _phase(url, image, args.clients, args.seconds)
        stop.set()
        for t in attackers:
            t.join(10)
        rss1 = _rss_mib(server.pid)
        print(f"hostile: {ok1}/{n1} good requests answered 200 ({100 * ok1 / max(n1, 1):.1f} %), p95 {p95_1:.1f} ms "
              f"({p95_1 / p95_0:.2f}x unloaded), RSS {rss1:.1f} MiB ({rss1 - rss0:+.1f})")
        print(f"  slow connections closed by the server: {len(closed)} of {args.slow_headers + args.slow_bodies}; "
              f"decode-heavy answers: {dict(sorted(counts.items()))}")
        goal = ok1 == n1 and p95_1 <= 2 * p95_0
        print(f"goal (100 % answered, p95 <= 2x unloaded): {'met' if goal else 'NOT met'}")
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
