"""Live sessions from the backend server: ``GET /live/events`` as Server-Sent Events under a real
``empathic serve`` (gunicorn), the media rules and the session limit applied to it, and the page at
``/live`` in the real browser of the browser tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from media_factory import talking_faces_video
from test_browser_e2e import artifacts_dir, browser_context  # noqa: F401  (Chromium, loopback only)

EMPATHIC = Path(sys.executable).with_name("empathic")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return talking_faces_video(tmp_path_factory.mktemp("live_server")).path


def start_server(env_extra: dict, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DEVICE": "cpu", "PRECISION": "fp32", "MEDIA_CACHE_DIR": str(tmp_path / "media"),
           "MEDIA_TIMEOUT_S": "10", **env_extra}
    process = subprocess.Popen([str(EMPATHIC), "serve", "--port", str(port), "--threads", "4"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            requests.get(f"{url}/health", timeout=1)
            return process, url
        except (requests.ConnectionError, requests.Timeout):
            assert process.poll() is None and time.time() < deadline, process.stdout.read().decode()[-2000:]
            time.sleep(0.3)


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(clip, voice_hub_cache, tmp_path_factory):
    """LIVE=true, the clip's folder as the only media root, one session at a time."""
    process, url = start_server({"LIVE": "true", "MEDIA_ROOTS": str(clip.parent), "LIVE_MAX_SESSIONS": "1",
                                 "ALLOWED_MEDIA_HOSTS": "127.0.0.1"}, tmp_path_factory.mktemp("server"))
    yield url
    stop_server(process)


def wait_until_free(server: str, limit_s: float = 30) -> None:
    """Until the server runs no live session (a client that left is noticed at the next event)."""
    deadline = time.time() + limit_s
    while "empathic_live_sessions_running 0" not in requests.get(f"{server}/metrics", timeout=5).text:
        assert time.time() < deadline, "a live session is still running"
        time.sleep(0.3)


def read_events(response, until: str = "summary", limit_s: float = 120):
    """(event name, data, seconds since the request) for each event, until ``until`` (or the end)."""
    started = time.perf_counter()
    name, data = None, []
    for line in response.iter_lines(decode_unicode=True):
        assert time.perf_counter() - started < limit_s
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and name is not None:
            yield name, json.loads("\n".join(data)), time.perf_counter() - started
            if name == until:
                return
            name, data = None, []


def test_events_of_a_file_stream_arrive_as_it_plays(server, clip):
    wait_until_free(server)
    with requests.get(f"{server}/live/events", params={"source": str(clip), "face": "1", "voice": "1", "pps": "2",
                                                      "window": "5", "hop": "2"}, stream=True, timeout=60) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = list(read_events(response))
    names = [name for name, _, _ in events]
    assert names[0] == "start" and names[-1] == "summary"
    start, summary = events[0][1], events[-1][1]
    assert start["source"] == str(clip) and start["face"] and start["voice"]
    faces = [(data, at) for name, data, at in events if name == "face"]
    assert len(faces) >= 20 and all(len(data["faces"]) == 2 for data, _ in faces)
    # Played at its own rate: the first results come seconds before the last, not all at the end.
    assert faces[-1][1] - faces[0][1] > summary["media_s"] * 0.6
    assert any(name == "voice" and data["speech"] for name, data, _ in events)
    assert summary["ended"] == "end of stream" and summary["face"]["processed"] == len(faces)
    metrics = requests.get(f"{server}/metrics", timeout=5).text
    assert "empathic_live_sessions_total 1" in metrics


def test_a_second_session_waits_for_the_first_and_a_client_leaving_frees_it(server, clip):
    first = requests.get(f"{server}/live/events", params={"source": str(clip), "voice": "0"}, stream=True,
                         timeout=60)
    try:
        assert next(read_events(first, until="start"))[0] == "start"
        busy = requests.get(f"{server}/live/events", params={"source": str(clip)}, timeout=30)
        assert busy.status_code == 429 and "LIVE_MAX_SESSIONS" in busy.json()["error"]
    finally:
        first.close()  # the client goes away mid-session
    wait_until_free(server)  # the server notices at its next event and frees the slot
    again = requests.get(f"{server}/live/events", params={"source": str(clip), "voice": "0"}, stream=True, timeout=60)
    assert again.status_code == 200
    again.close()
    wait_until_free(server)


@pytest.mark.parametrize("source, status, message", [
    ("/etc/passwd", 403, "/etc/passwd is outside the media roots"),
    ("rtsp://192.0.2.1/stream", 403, "192.0.2.1 is neither Label Studio's host nor in ALLOWED_MEDIA_HOSTS"),
    ("udp://@:5004", 403, "names no host"),
    ("gopher://127.0.0.1/x", 403, "the stream scheme gopher:// is not allowed"),
    ("", 400, "source is required"),
])
def test_sources_outside_the_media_rules_are_refused_before_any_connection(server, source, status, message):
    response = requests.get(f"{server}/live/events", params={"source": source}, timeout=10)
    assert response.status_code == status and message in response.json()["error"], response.text


def test_bad_numbers_are_named(server, clip):
    response = requests.get(f"{server}/live/events", params={"source": str(clip), "pps": "fast"}, timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "pps must be a number, got 'fast'"
    response = requests.get(f"{server}/live/events", params={"source": str(clip), "window": "40"}, timeout=10)
    assert response.status_code == 400 and "window must be in (0, 30]" in response.json()["error"]


def test_a_network_stream_from_an_allowed_host(server, clip):
    """ffmpeg serves the clip over HTTP on loopback; 127.0.0.1 is named exactly in ALLOWED_MEDIA_HOSTS."""
    wait_until_free(server)
    port = free_port()
    sender = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip), "-t", "4",
                               "-c", "copy", "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/cam.ts"])
    try:
        time.sleep(0.5)
        with requests.get(f"{server}/live/events", params={"source": f"http://127.0.0.1:{port}/cam.ts", "voice": "0"},
                          stream=True, timeout=60) as response:
            assert response.status_code == 200, response.text
            events = list(read_events(response))
    finally:
        sender.kill()
        sender.wait(timeout=60)
    assert events[0][1]["source"] == f"http://127.0.0.1:{port}/cam.ts"
    assert sum(1 for name, _, _ in events if name == "face") >= 4
    assert events[-1][1]["ended"] == "end of stream"


def test_live_is_off_unless_enabled(clip, voice_hub_cache, tmp_path):
    process, url = start_server({"MEDIA_ROOTS": str(clip.parent)}, tmp_path)
    try:
        for path in ("/live", "/live/events"):
            response = requests.get(f"{url}{path}", params={"source": str(clip)}, timeout=10)
            assert response.status_code == 403 and "set LIVE=true" in response.json()["error"]
    finally:
        stop_server(process)


def test_the_page_follows_a_session_in_the_browser(server, clip, browser_context):
    wait_until_free(server)
    page = browser_context.new_page()
    try:
        page.goto(f"{server}/live")
        page.fill("#source", str(clip))
        page.fill("#hop", "2")
        page.click("#go")
        page.wait_for_selector(".card[data-key='face 1'] .row")
        page.wait_for_selector(".card[data-key='face 2'] .row")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Ended')", timeout=90_000)
        status = page.text_content("#status")
        assert "end of stream" in status and "skipped" in status, status
        for key in ("face 1", "face 2", "voice"):
            rows = page.query_selector_all(f".card[data-key='{key}'] .row")
            assert len(rows) == 3, key  # the three leading emotions, with their bars
        options = [o.text_content() for o in page.query_selector_all("#chart-of option")]
        assert options[:2] == ["face 1", "face 2"] and "voice" in options
        inked = page.evaluate("""() => {
            const c = document.getElementById('chart'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert inked > 500  # axes, four lines and their legend are drawn
        page.screenshot(path=str(artifacts_dir() / "live_page.png"))
        assert not browser_context.refused, browser_context.refused  # nothing but loopback was asked for
    finally:
        page.close()
