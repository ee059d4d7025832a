"""Requests per second and latency of /predict answered from the cache, with 8 and 32 clients, on
`empathic serve` (gunicorn, one process, 8 threads) with the tiny replica models.

A task is predicted once (the analysis is then cached); every client then posts it again and again
for SECONDS. What is measured is the server's own work per request: config parsing, the cache
lookup, region building and the validation of the prediction. Usage:
python bench/bench_load.py [SECONDS]. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="bench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402

from media_factory import two_voice_track  # noqa: E402
from replicas import build_face_replicas, build_voice_replicas  # noqa: E402

CONFIG = (ROOT / "labeling_configs" / "audio_voice.xml").read_text().replace(
    '<TextArea name="transcript" toName="audio" perRegion="true" editable="true"/>', "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(url: str, body: dict, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = session.post(f"{url}/predict", json=body, timeout=60)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and response.json()["results"][0], response.text
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {"clients": clients, "requests": len(latencies), "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1)}


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    cache = Path(os.environ["HF_HUB_CACHE"])
    build_face_replicas(cache)
    build_voice_replicas(cache)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    speech = two_voice_track(work / "speech")
    port = free_port()
    env = {**os.environ, "MEDIA_ROOTS": str(work), "DEVICE": "cpu", "MODEL_VERSION": "bench",
           "MEDIA_CACHE_DIR": str(work / "cache"), "INLINE_BUDGET_S": "60"}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).with_name("empathic")), "serve", "--port", str(port),
                               "--threads", "8", "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                requests.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.5)
        body = {"tasks": [{"id": 1, "data": {"audio": str(speech.path)}}], "label_config": CONFIG, "project": "1.1"}
        requests.post(f"{url}/predict", json=body, timeout=300).raise_for_status()  # computed once, then cached
        results = [measure(url, body, clients, seconds) for clients in (8, 32)]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    print(json.dumps({"server": "empathic serve, 1 gunicorn process, 8 threads, in-process cache",
                      "task": "audio_voice.xml without transcripts, 12 s of speech (2 segments)",
                      "cache_hits": results}))


if __name__ == "__main__":
    main()
