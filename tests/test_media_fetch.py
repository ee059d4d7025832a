"""Media fetching against real HTTP servers that imitate Label Studio 1.23 and a cloud bucket."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pytest

from empathic.labelstudio.media_fetch import LabelStudioAccess, MediaFetcher, MediaFetchError, TokenProvider
from empathic.labelstudio.media_policy import MediaPolicy

SECRET = "a-test-signing-key-that-is-long-enough-for-hs256"
LEGACY = "0123456789abcdef0123456789abcdef01234567"
CLIP = bytes(range(256)) * 400
CLOUD_URI = "s3://bucket/videos/clip.mp4"


def mint(token_type: str, lifetime_s: int = 300, secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {"token_type": token_type, "iat": now, "exp": now + lifetime_s, "user_id": 1}
    return jwt.encode(claims, secret, algorithm="HS256")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def serve_file(self, key: str) -> None:
        body = self.server.files.get(key)
        if body is None:
            return self.reply(404, b'{"detail": "Not found."}')
        with self.server.lock:
            self.server.hits[key] += 1
        time.sleep(self.server.delay_s)
        self.reply(200, body, {"Content-Type": "video/mp4"})


class LabelStudioHandler(_Handler):
    """The routes the fetcher uses, with Label Studio 1.23's auth rules."""

    def do_POST(self):
        if self.path != "/api/token/refresh/":
            return self.reply(404)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.refreshes += 1
        try:
            claims = jwt.decode(body["refresh"], SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return self.reply(401, b'{"detail": "Token is invalid or expired"}')
        if claims.get("token_type") != "refresh":
            return self.reply(401, b'{"detail": "Token has wrong type"}')
        access = mint("access", self.server.access_lifetime_s)
        self.reply(200, json.dumps({"access": access}).encode(), {"Content-Type": "application/json"})

    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        self.server.auth_seen.append(header.split(" ", 1)[0])
        if header == f"Token {LEGACY}":
            return True
        if header.startswith("Bearer "):
            try:
                return jwt.decode(header[7:], SECRET, algorithms=["HS256"])["token_type"] == "access"
            except jwt.PyJWTError:
                return False
        return False

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self.authorized():
            return self.reply(401, b'{"detail": "Authentication credentials were not provided."}')
        if url.path.startswith("/data/upload/"):
            return self.serve_file(unquote(url.path.removeprefix("/data/")))
        if url.path == "/storage-data/uploaded/" and self.server.storage_proxy:
            return self.serve_file(query["filepath"][0])
        if url.path == "/data/local-files/":
            return self.serve_file("local:" + query["d"][0])
        if re.fullmatch(r"/tasks/7/presign/", url.path):
            uri = base64.urlsafe_b64decode(query["fileuri"][0]).decode()
            location = f"{self.server.cloud_url}/{uri.split('://', 1)[1]}?X-Amz-Signature=abc"
            return self.reply(302, headers={"Location": location})
        self.reply(404)


class CloudHandler(_Handler):
    """A bucket behind presigned URLs; it records every Authorization header it is sent."""

    def do_GET(self):
        url = urlsplit(self.path)
        self.server.auth_seen.append(self.headers.get("Authorization"))
        if "X-Amz-Signature" not in url.query and not url.path.startswith("/public/"):
            return self.reply(403)
        self.serve_file(url.path)


def _serve(handler: type[_Handler], files: dict[str, bytes], **state):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.url = f"http://127.0.0.1:{server.server_port}"
    server.files = files
    server.hits = Counter()
    server.auth_seen = []
    server.lock = threading.Lock()
    server.delay_s = 0.0
    server.__dict__.update(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def cloud():
    files = {"/bucket/videos/clip.mp4": CLIP, "/public/open.mp4": CLIP[:1000]}
    server = _serve(CloudHandler, files)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def label_studio(cloud):
    files = {
        "upload/1/clip.mp4": CLIP,
        "upload/1/a.mp4": b"a" * 1000,
        "upload/1/b.mp4": b"b" * 1000,
        "upload/1/c.mp4": b"c" * 1000,
        "upload/1/my clip.mp4": CLIP[:500],
        "local:videos/remote.mp4": CLIP[:700],
    }
    server = _serve(
        LabelStudioHandler, files, cloud_url=cloud.url, refreshes=0, access_lifetime_s=300, storage_proxy=True
    )
    yield server
    server.shutdown()
    server.server_close()


def fetcher(label_studio, tmp_path: Path, api_key: str | None = LEGACY, allowed=(), **options) -> MediaFetcher:
    policy = MediaPolicy(label_studio_url=label_studio.url, allowed_hosts=tuple(allowed),
                         media_roots=(tmp_path / "media",))
    return MediaFetcher(LabelStudioAccess(label_studio.url, api_key), tmp_path / "cache", policy=policy, **options)


def host_of(server) -> str:
    return server.url.removeprefix("http://")


def test_personal_access_token_is_exchanged_once_and_reused(label_studio, tmp_path):
    media = fetcher(label_studio, tmp_path, api_key=mint("refresh", 86400))
    assert media.fetch("/data/upload/1/clip.mp4").read_bytes() == CLIP
    assert media.fetch("upload/1/a.mp4").read_bytes() == b"a" * 1000
    assert label_studio.refreshes == 1
    assert set(label_studio.auth_seen) == {"Bearer"}


def test_access_token_is_renewed_before_it_expires(label_studio):
    label_studio.access_lifetime_s = 30  # inside the 30 s margin: stale as soon as it arrives
    tokens = TokenProvider(LabelStudioAccess(label_studio.url, mint("refresh")))
    tokens.headers()
    tokens.headers()
    assert label_studio.refreshes == 2


def test_concurrent_requests_share_one_exchange(label_studio):
    tokens = TokenProvider(LabelStudioAccess(label_studio.url, mint("refresh")))
    seen = []

    def ask():
        seen.append(tokens.headers()["Authorization"])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert label_studio.refreshes == 1
    assert len(set(seen)) == 1 and seen[0].startswith("Bearer ")


def test_legacy_token_is_sent_as_token(label_studio, tmp_path):
    assert fetcher(label_studio, tmp_path).fetch("/upload/1/clip.mp4").read_bytes() == CLIP
    assert set(label_studio.auth_seen) == {"Token"}
    assert label_studio.refreshes == 0


def test_cache_hit_does_not_download_again(label_studio, tmp_path):
    media = fetcher(label_studio, tmp_path)
    first = media.fetch("/data/upload/1/clip.mp4")
    assert media.fetch("upload/1/clip.mp4") == first
    assert label_studio.hits["upload/1/clip.mp4"] == 1
    assert re.fullmatch(r"[0-9a-f]{16}__clip\.mp4", first.name)
    assert first.parent == tmp_path / "cache"
    assert not list(first.parent.glob(".*"))  # no part files left behind


def test_upload_falls_back_to_the_data_upload_route(label_studio, tmp_path):
    label_studio.storage_proxy = False
    path = fetcher(label_studio, tmp_path).fetch("/data/upload/1/my%20clip.mp4")
    assert path.read_bytes() == CLIP[:500]
    assert path.name.endswith("__my_clip.mp4")


def test_least_recently_used_files_are_evicted(label_studio, tmp_path):
    media = fetcher(label_studio, tmp_path, max_cache_bytes=2500)
    a = media.fetch("upload/1/a.mp4")
    b = media.fetch("upload/1/b.mp4")
    media.fetch("upload/1/a.mp4")  # a is now more recent than b
    c = media.fetch("upload/1/c.mp4")
    assert a.exists() and c.exists() and not b.exists()
    assert label_studio.hits["upload/1/a.mp4"] == 1


def test_a_file_larger_than_the_cache_is_kept(label_studio, tmp_path):
    media = fetcher(label_studio, tmp_path, max_cache_bytes=10)
    a = media.fetch("upload/1/a.mp4")
    clip = media.fetch("upload/1/clip.mp4")
    assert clip.read_bytes() == CLIP and not a.exists()


def test_cloud_uri_is_presigned_without_leaking_the_token(label_studio, cloud, tmp_path):
    # Label Studio's redirect to a loopback address that is not allowed is refused (the bucket
    # here is a second server on 127.0.0.1); named exactly in ALLOWED_MEDIA_HOSTS, it is fetched.
    with pytest.raises(MediaFetchError, match=r"127\.0\.0\.1 resolves to 127\.0\.0\.1, a loopback address") as refused:
        fetcher(label_studio, tmp_path, api_key=mint("refresh")).fetch(CLOUD_URI, task_id=7)
    assert refused.value.refusal == "loopback" and cloud.auth_seen == []
    path = fetcher(label_studio, tmp_path, api_key=mint("refresh"), allowed=[host_of(cloud)]).fetch(CLOUD_URI, task_id=7)
    assert path.read_bytes() == CLIP
    assert path.name.endswith("__clip.mp4")
    assert label_studio.auth_seen == ["Bearer", "Bearer"]
    assert cloud.auth_seen == [None]


def test_cloud_uri_needs_a_task_id(label_studio, tmp_path):
    with pytest.raises(MediaFetchError, match=r"s3://bucket/videos/clip\.mp4: .*task id"):
        fetcher(label_studio, tmp_path).fetch(CLOUD_URI)


def test_token_goes_to_label_studio_urls_only(label_studio, cloud, tmp_path):
    media = fetcher(label_studio, tmp_path, allowed=[host_of(cloud)])
    assert media.fetch(f"{cloud.url}/public/open.mp4").read_bytes() == CLIP[:1000]
    assert cloud.auth_seen == [None]
    assert media.fetch(f"{label_studio.url}/data/upload/1/clip.mp4").read_bytes() == CLIP


def test_rejected_token_names_the_url_and_the_setting(label_studio, tmp_path):
    with pytest.raises(MediaFetchError) as error:
        fetcher(label_studio, tmp_path, api_key="not-the-token").fetch("/data/upload/1/clip.mp4")
    message = str(error.value)
    assert f"/data/upload/1/clip.mp4 from {label_studio.url}" in message
    assert "HTTP 401" in message and "LABEL_STUDIO_API_KEY" in message and "\n" not in message


def test_rejected_personal_access_token_names_the_exchange(label_studio, tmp_path):
    media = fetcher(label_studio, tmp_path, api_key=mint("refresh", secret="another-key-" + SECRET))
    with pytest.raises(MediaFetchError, match=r"/api/token/refresh/: HTTP 401 .*LABEL_STUDIO_API_KEY"):
        media.fetch("/data/upload/1/clip.mp4")


def test_missing_file_says_not_found(label_studio, tmp_path):
    with pytest.raises(MediaFetchError, match=r"upload/1/gone\.mp4 from .*HTTP 404 Not Found"):
        fetcher(label_studio, tmp_path).fetch("upload/1/gone.mp4")


def test_unreachable_label_studio_is_one_line(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    media = MediaFetcher(LabelStudioAccess(url, LEGACY), tmp_path / "cache", timeout_s=2)
    with pytest.raises(MediaFetchError) as error:
        media.fetch("/data/upload/1/clip.mp4")
    assert str(error.value) == f"cannot fetch /data/upload/1/clip.mp4 from {url}: connection refused"


def test_slow_server_times_out(label_studio, tmp_path):
    label_studio.delay_s = 0.6
    with pytest.raises(MediaFetchError, match=r"no answer within 0\.2 s"):
        fetcher(label_studio, tmp_path, timeout_s=0.2).fetch("upload/1/a.mp4")


def test_local_files_are_read_in_place_under_the_root(label_studio, tmp_path):
    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "here.mp4").write_bytes(b"local")
    (tmp_path / "secret.txt").write_text("no")
    media = fetcher(label_studio, tmp_path, local_files_root=root)
    assert media.fetch("/data/local-files/?d=videos/here.mp4") == root / "videos" / "here.mp4"
    assert media.fetch("/data/local-files/?d=videos/remote.mp4").read_bytes() == CLIP[:700]
    assert label_studio.hits == Counter({"local:videos/remote.mp4": 1})
    with pytest.raises(MediaFetchError, match="escapes the folder") as error:
        media.fetch("/data/local-files/?d=../secret.txt")
    assert error.value.refusal == "local_path"
    (root / "videos" / "out").symlink_to(tmp_path)  # a symlink pointing out of the root
    with pytest.raises(MediaFetchError, match="escapes the folder"):
        media.fetch("/data/local-files/?d=videos/out/secret.txt")


def test_local_paths_are_read_only_under_the_media_roots(tmp_path):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    video = root / "clip.mp4"
    video.write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    (root / "sub" / "out").symlink_to(tmp_path)
    media = MediaFetcher(LabelStudioAccess(), tmp_path / "cache", policy=MediaPolicy(media_roots=(root,)))
    assert media.fetch(str(video)) == video
    assert media.fetch(video.as_uri()) == video
    assert not (tmp_path / "cache").exists()
    with pytest.raises(MediaFetchError, match="no such file"):
        media.fetch(str(root / "missing.mp4"))
    with pytest.raises(MediaFetchError, match=r"unsupported URL scheme ftp://"):
        media.fetch("ftp://example.org/clip.mp4")
    for escape in (str(tmp_path / "secret.txt"), f"{root}/../secret.txt", f"{root}/sub/out/secret.txt",
                   f"file://{root}/%2E%2E%2Fsecret.txt", f"file://{root}%2F..%2Fsecret.txt", "/etc/passwd"):
        with pytest.raises(MediaFetchError, match="is outside the media roots") as error:
            media.fetch(escape)
        assert error.value.refusal == "local_path", escape
    strict = MediaFetcher(LabelStudioAccess(), tmp_path / "cache")  # no MEDIA_ROOTS: no local path at all
    with pytest.raises(MediaFetchError, match=r"outside the media roots: no folder \(MEDIA_ROOTS is not set\)"):
        strict.fetch(str(video))


def test_label_studio_paths_need_its_url(tmp_path):
    media = MediaFetcher(LabelStudioAccess(url="", api_key=LEGACY), tmp_path / "cache")
    with pytest.raises(MediaFetchError, match="LABEL_STUDIO_URL is needed"):
        media.fetch("/data/upload/1/clip.mp4")


def test_concurrent_fetches_of_one_url_download_once(label_studio, tmp_path):
    label_studio.delay_s = 0.3
    media = fetcher(label_studio, tmp_path)
    start = threading.Barrier(4)
    paths = []

    def fetch():
        start.wait()
        paths.append(media.fetch("upload/1/clip.mp4"))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(paths) == 4 and len(set(paths)) == 1
    assert paths[0].read_bytes() == CLIP
    assert label_studio.hits["upload/1/clip.mp4"] == 1


FULL_DISK_SCRIPT = """
import json, os, resource, signal, sys
from pathlib import Path
from empathic.labelstudio.media_fetch import LabelStudioAccess, MediaFetcher, MediaFetchError
from empathic.labelstudio.media_policy import MediaPolicy
url, token, cache = sys.argv[1], sys.argv[2], Path(sys.argv[3])
# The file system refuses writes past 50 kB from here on: a full disk, as far as the fetcher can tell
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
media = MediaFetcher(LabelStudioAccess(url, token), cache, policy=MediaPolicy(label_studio_url=url))
answers = {}
try:
    media.fetch("upload/1/clip.mp4")
except MediaFetchError as error:
    answers["big"] = str(error)
answers["small"] = media.fetch("upload/1/a.mp4").stat().st_size
answers["left"] = sorted(p.name for p in cache.iterdir())
print(json.dumps(answers))
"""


def test_a_full_disk_fails_that_task_trims_the_cache_and_spares_the_others(label_studio, tmp_path):
    import subprocess
    import sys

    cache = tmp_path / "cache"
    cache.mkdir()
    for age, name in enumerate(("0000000000000001__old1.mp4", "0000000000000002__old2.mp4",
                                "0000000000000003__old3.mp4", "0000000000000004__new.mp4")):
        (cache / name).write_bytes(b"x" * 100)
        os.utime(cache / name, ns=(age * 10**9, age * 10**9))
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, label_studio.url, LEGACY, str(cache)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert "upload/1/clip.mp4" in answers["big"] and "is full (File too large)" in answers["big"]
    assert "2 least recently used file(s) removed" in answers["big"] and "\n" not in answers["big"]
    assert answers["small"] == 1000  # the next task's media still fits
    left = answers["left"]
    assert "0000000000000003__old3.mp4" in left and "0000000000000004__new.mp4" in left
    assert not any(name.startswith(("0000000000000001", "0000000000000002")) for name in left)
    assert not any(name.endswith(".part") for name in left)  # the partial download is gone
