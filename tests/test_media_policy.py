"""Where media may come from: the address check itself for every non-public range, and real
servers on loopback addresses only (127.0.0.1 and 127.0.0.2) for redirects and sizes."""

from __future__ import annotations

import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from empathic.labelstudio.media_fetch import LabelStudioAccess, MediaFetcher, MediaFetchError
from empathic.labelstudio.media_policy import MediaPolicy, MediaRefused, address_kind


@pytest.mark.parametrize("address, kind", [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("::ffff:10.0.0.1", "private"), ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("169.254.1.1", "link_local"), ("fe80::1", "link_local"), ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"), ("100.64.0.1", "reserved"),
    ("0.0.0.0", "reserved"), ("224.0.0.1", "reserved"), ("240.0.0.1", "reserved"),
    ("8.8.8.8", None), ("2606:4700::1111", None)])
def test_every_non_public_range_is_named(address, kind):
    assert address_kind(address) == kind


def test_hosts_ports_and_patterns():
    policy = MediaPolicy(label_studio_url="http://ls.internal:8080",
                         allowed_hosts=("*.example.org", "cdn.example.org", "media.lab:8443", "10.0.0.9"))
    policy.check_url("http://ls.internal:8080/data/upload/1/a.mp4")
    policy.check_address("ls.internal", 8080, "10.0.0.2")  # Label Studio's own host, whatever its address
    policy.check_url("https://a.b.example.org/x.mp4")
    policy.check_url("https://media.lab:8443/x.mp4")
    for url, reason in [("https://media.lab/x.mp4", "host"), ("https://example.com/x.mp4", "host"),
                        ("ftp://cdn.example.org/x.mp4", "scheme"), ("http:///x.mp4", "host"),
                        ("http://ls.internal:9999/x.mp4", "host")]:
        with pytest.raises(MediaRefused) as refused:
            policy.check_url(url)
        assert refused.value.reason == reason, url
    policy.check_url("https://bucket.s3.amazonaws.com/x.mp4?sig=1", from_label_studio=True)  # a presigned redirect
    policy.check_address("a.example.org", 443, "93.184.216.34")  # public: fine through a pattern
    with pytest.raises(MediaRefused, match="a.example.org resolves to 10.0.0.5, a private address") as refused:
        policy.check_address("a.example.org", 443, "10.0.0.5")  # a pattern never opens a private address
    assert refused.value.reason == "private"
    policy.check_address("cdn.example.org", 443, "10.0.0.5")  # named exactly: it may
    policy.check_address("10.0.0.9", 80, "10.0.0.9")
    with pytest.raises(MediaRefused) as refused:
        policy.check_address("evil.example.org", 80, "169.254.169.254")
    assert refused.value.reason == "metadata"


class _Server:
    """A server on one loopback address whose handler is given per test; it records every request."""

    def __init__(self, address: str, handle):
        outer = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                handle(self)

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{address}:{self.httpd.server_port}"
        self.host = f"{address}:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(handler, status: int, body: bytes = b"", headers: dict | None = None, length: bool = True):
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def servers():
    started = []

    def start(address, handle):
        server = _Server(address, handle)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _fetcher(tmp_path, allowed, max_bytes=None):
    policy = MediaPolicy(allowed_hosts=tuple(allowed), max_download_bytes=max_bytes)
    return MediaFetcher(LabelStudioAccess(), tmp_path / "cache", timeout_s=5, policy=policy)


def test_a_redirect_to_another_loopback_address_is_refused(servers, tmp_path):
    target = servers("127.0.0.2", lambda h: _send(h, 200, b"secret"))
    hop = servers("127.0.0.1", lambda h: _send(h, 302, headers={"Location": f"{target.url}/private.mp4"}))
    with pytest.raises(MediaFetchError, match=r"127\.0\.0\.2:\d+ is neither Label Studio's host nor in "
                                              r"ALLOWED_MEDIA_HOSTS") as refused:
        _fetcher(tmp_path, [hop.host]).fetch(f"{hop.url}/clip.mp4")
    assert refused.value.refusal == "host" and target.requests == [] and hop.requests == ["/clip.mp4"]
    # not allowed at all: refused before any connection
    with pytest.raises(MediaFetchError) as refused:
        _fetcher(tmp_path, []).fetch(f"{target.url}/private.mp4")
    assert refused.value.refusal == "host" and target.requests == []
    # allowed by a pattern only, a loopback address stays closed (the check is on the connected address)
    with pytest.raises(MediaFetchError, match="a loopback address") as refused:
        _fetcher(tmp_path, ["*.0.0.2"]).fetch(f"{target.url}/private.mp4")
    assert refused.value.refusal == "loopback" and target.requests == []
    assert _fetcher(tmp_path, [target.host]).fetch(f"{target.url}/private.mp4").read_bytes() == b"secret"


def test_redirect_loops_and_error_statuses_are_one_line(servers, tmp_path):
    def loop(handler):
        _send(handler, 302, headers={"Location": handler.path + "x"})

    looping = servers("127.0.0.1", loop)
    with pytest.raises(MediaFetchError, match="more than 10 redirects"):
        _fetcher(tmp_path, [looping.host]).fetch(f"{looping.url}/a.mp4")
    for status in (401, 403, 404, 500):
        answering = servers("127.0.0.1", lambda h, s=status: _send(h, s, b"no"))
        with pytest.raises(MediaFetchError, match=f"HTTP {status}") as error:
            _fetcher(tmp_path, [answering.host]).fetch(f"{answering.url}/a.mp4")
        assert "\n" not in str(error.value)


def test_downloads_over_the_limit_are_refused_and_leave_nothing(servers, tmp_path):
    announced = servers("127.0.0.1", lambda h: _send(h, 200, b"x" * 5000))
    with pytest.raises(MediaFetchError, match=r"is 0\.00 GB, more than MAX_MEDIA_GB=1e-06") as refused:
        _fetcher(tmp_path, [announced.host], max_bytes=1000).fetch(f"{announced.url}/big.mp4")
    assert refused.value.refusal == "too_large"

    def unannounced(handler):  # no Content-Length: counted while streaming
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(50):
            handler.wfile.write(b"y" * 100)

    streaming = servers("127.0.0.1", unannounced)
    with pytest.raises(MediaFetchError) as refused:
        _fetcher(tmp_path, [streaming.host], max_bytes=1000).fetch(f"{streaming.url}/big.mp4")
    assert refused.value.refusal == "too_large"
    assert list((tmp_path / "cache").iterdir()) == []  # the partial file is gone
    assert _fetcher(tmp_path, [streaming.host], max_bytes=10_000).fetch(f"{streaming.url}/ok.mp4").stat().st_size == 5000


def _resolving(monkeypatch, table: dict[str, list[str]]) -> None:
    """Name resolution from a table (no DNS server is reachable from the tests)."""
    import socket

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_live_stream_hosts_follow_the_media_rules_and_are_pinned(monkeypatch):
    _resolving(monkeypatch, {"cam.example.org": ["93.184.216.34"], "rebound.example.org": ["10.0.0.5"],
                             "ls.internal": ["10.0.0.2"], "camera.lab": ["192.168.1.20"]})
    policy = MediaPolicy(label_studio_url="http://ls.internal:8080",
                         allowed_hosts=("*.example.org", "camera.lab"))
    # Allowed by pattern, public address: the checked address goes into the URL (user and port kept).
    assert policy.check_live_source("rtsp://user:pw@cam.example.org:8554/live?x=1") == \
        "rtsp://user:pw@93.184.216.34:8554/live?x=1"
    assert policy.check_live_source("srt://cam.example.org:9000?mode=caller") == "srt://93.184.216.34:9000?mode=caller"
    # TLS checks the certificate against the name: the name stays.
    assert policy.check_live_source("https://cam.example.org/live.m3u8") == "https://cam.example.org/live.m3u8"
    # A pattern never allows a private address; a host named exactly may have one.
    with pytest.raises(MediaRefused, match="rebound.example.org resolves to 10.0.0.5, a private address"):
        policy.check_live_source("rtsp://rebound.example.org/live")
    assert policy.check_live_source("rtsp://camera.lab/stream") == "rtsp://192.168.1.20/stream"
    with pytest.raises(MediaRefused, match="other.lab is neither Label Studio's host nor in ALLOWED_MEDIA_HOSTS"):
        policy.check_live_source("rtsp://other.lab/stream")
    with pytest.raises(MediaRefused, match="the stream scheme file:// is not allowed"):
        policy.check_live_source("file:///etc/passwd")
    with pytest.raises(MediaRefused, match="names no host"):
        policy.check_live_source("udp://@:1234")


def test_live_devices_and_files_must_lie_under_the_media_roots(tmp_path):
    recording = tmp_path / "session.mp4"
    recording.write_bytes(b"x")
    policy = MediaPolicy(media_roots=(tmp_path,))
    assert policy.check_live_source(str(recording)) == str(recording.resolve())
    with pytest.raises(MediaRefused, match="/dev/video0 is outside the media roots"):
        policy.check_live_source("/dev/video0")
    with pytest.raises(FileNotFoundError):
        policy.check_live_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "escape").symlink_to("/etc/passwd")
    with pytest.raises(MediaRefused, match="outside the media roots"):
        policy.check_live_source(str(tmp_path / "escape"))
    assert MediaPolicy(media_roots=(Path("/dev/null"),)).check_live_source("/dev/null") == "/dev/null"
