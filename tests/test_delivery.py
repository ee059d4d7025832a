"""A finished prediction reaches Label Studio once, whatever Label Studio does meanwhile: down, then
answering 500, then back (a real HTTP server on loopback standing in for Label Studio's API)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from empathic.labelstudio.job_runner import deliver
from empathic.labelstudio.label_studio_api import LabelStudioApi, LabelStudioApiError
from empathic.labelstudio.media_fetch import LabelStudioAccess

TOKEN = "0123456789abcdef0123456789abcdef01234567"
PREDICTION = {"model_version": "v1", "score": 0.5, "result": []}


class _LabelStudio:
    """GET/POST /api/predictions; the first ``failures`` posts answer 500, and with ``lose_answer``
    the first post that is stored is answered 500 too (stored, but the backend does not know)."""

    def __init__(self, port: int, failures: int = 0, lose_answer: bool = False):
        outer = self
        self.stored: list[dict] = []
        self.posts = 0
        self.failures = failures
        self.lose_answer = lose_answer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                task = int(parse_qs(urlsplit(self.path).query)["task"][0])
                self.answer(200, [p for p in outer.stored if p["task"] == task])

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts += 1
                if outer.posts <= outer.failures:
                    return self.answer(500, {"detail": "Server Error"})
                outer.stored.append(body)
                if outer.lose_answer:
                    outer.lose_answer = False
                    return self.answer(500, {"detail": "stored, then failed"})
                self.answer(201, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _api(port: int) -> LabelStudioApi:
    return LabelStudioApi(LabelStudioAccess(f"http://127.0.0.1:{port}", TOKEN))


def test_a_prediction_waits_for_label_studio_to_come_back_and_is_posted_once(caplog):
    port = _free_port()
    waits: list[float] = []
    server = None

    def sleep(seconds: float) -> None:  # Label Studio comes back after the second wait, failing at first
        nonlocal server
        waits.append(seconds)
        if len(waits) == 2:
            server = _LabelStudio(port, failures=2)
        time.sleep(0.01)

    try:
        assert deliver(_api(port), 7, {**PREDICTION}, "v1", give_up_after_s=120, sleep=sleep) is True
        assert waits == [1.0, 2.0, 4.0, 8.0]  # down twice, then two answers of 500, then stored
        assert server.posts == 3 and [p["task"] for p in server.stored] == [7]
        assert "did not take the prediction" in caplog.text and "HTTP 500" in caplog.text
        # a second delivery of the same work posts nothing
        assert deliver(_api(port), 7, {**PREDICTION}, "v1", give_up_after_s=120, sleep=sleep) is False
        assert len(server.stored) == 1
    finally:
        if server is not None:
            server.close()


def test_a_post_whose_answer_was_lost_is_not_repeated():
    port = _free_port()
    server = _LabelStudio(port, lose_answer=True)
    try:
        assert deliver(_api(port), 9, {**PREDICTION}, "v1", give_up_after_s=60, sleep=lambda s: None) is False
        assert server.posts == 1 and len(server.stored) == 1  # found there on the next look
    finally:
        server.close()


def test_label_studio_down_for_too_long_or_refusing_the_prediction_fails_the_job():
    port = _free_port()
    with pytest.raises(LabelStudioApiError, match="ConnectionError") as error:
        deliver(_api(port), 7, {**PREDICTION}, "v1", give_up_after_s=3, sleep=lambda s: None)
    assert error.value.status is None  # the job fails and RQ runs it again later: nothing is lost
    server = _LabelStudio(port)
    try:
        server.httpd.RequestHandlerClass.do_POST = lambda h: h.answer(400, {"detail": "no such task"})
        with pytest.raises(LabelStudioApiError, match="HTTP 400"):  # not worth waiting for
            deliver(_api(port), 7, {**PREDICTION}, "v1", give_up_after_s=60, sleep=lambda s: pytest.fail("waited"))
    finally:
        server.close()
