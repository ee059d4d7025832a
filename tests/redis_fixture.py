"""A real, throwaway redis-server for tests: no persistence, on a free local port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(tmp_dir: str | Path, port: int | None = None) -> tuple[str, subprocess.Popen]:
    """(url, process) of a redis-server answering PING. ``port`` restarts one where another was."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (on Debian/Ubuntu: apt-get install redis-server); "
                           "the cache tests run against a real Redis")
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = tmp_dir / f"redis-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_dir)],
            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_redis_server(process)
            raise RuntimeError(f"redis-server on port {port} did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.02)
    return f"redis://127.0.0.1:{port}/0", process


def stop_redis_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
