"""Turning a task's media value into a local file: local paths, Label Studio URLs, cloud URIs.

Label Studio stores media references in several shapes: uploads, Local Files storage, cloud URIs that
only Label Studio can presign, and plain URLs. The SDK's ``get_local_path`` knows the same shapes,
but it keeps every download forever and holds each file in memory while downloading it. Hour-long
videos need a streamed download into a cache of bounded size, so this module replaces it.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import posixpath
import re
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urljoin, urlsplit

import jwt
import requests

from .media_policy import MediaPolicy, MediaRefused

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHE_BYTES = 20 * 1024**3
CHUNK_BYTES = 1024 * 1024
MAX_REDIRECTS = 10
# Label Studio's access tokens live 5 minutes; assumed when one carries no iat/exp.
DEFAULT_ACCESS_LIFETIME_S = 300.0
REFRESH_MARGIN_S = 30.0
# A download that is alive writes to its part file all the time; an older one was left by a crash.
ABANDONED_PART_S = 3600.0
CLOUD_SCHEMES = ("s3://", "gs://", "azure-blob://")
_CACHE_NAME = re.compile(r"^[0-9a-f]{16}__")


class MediaFetchError(RuntimeError):
    """A media value could not be turned into a local file; the message names the URL and why.
    ``refusal`` is the reason code where the media policy refused it (see media_policy)."""

    def __init__(self, message: str, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class LabelStudioAccess:
    """Where Label Studio is and how to sign in (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY).

    api_key: a personal access token (a refresh JWT) or a legacy token.
    """

    url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # An exported but empty variable means "not configured", not "the empty host".
        url = (self.url or "").strip().rstrip("/") or None
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"LABEL_STUDIO_URL must start with http:// or https://, got {url!r}")
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "api_key", (self.api_key or "").strip() or None)


class TokenProvider:
    """The Authorization header for Label Studio requests.

    A legacy token is sent as ``Token <key>``. A personal access token cannot be sent itself (Label
    Studio answers 401): it is exchanged at ``/api/token/refresh/`` for a short-lived access JWT,
    which is reused until shortly before it expires.
    """

    def __init__(self, access: LabelStudioAccess, timeout_s: float = 30.0) -> None:
        self._access = access
        self._timeout_s = timeout_s
        self._kind = _token_kind(access.api_key)
        self._lock = threading.Lock()
        self._bearer: str | None = None
        self._renew_at = 0.0

    def headers(self) -> dict[str, str]:
        key = self._access.api_key
        if key is None:
            return {}
        if self._kind == "legacy":
            return {"Authorization": f"Token {key}"}
        if self._kind == "access":
            return {"Authorization": f"Bearer {key}"}
        # Held across the exchange so that concurrent requests wait for one exchange, not start many.
        with self._lock:
            if self._bearer is None or time.monotonic() >= self._renew_at:
                self._bearer, lifetime_s = self._exchange(key)
                self._renew_at = time.monotonic() + lifetime_s - REFRESH_MARGIN_S
            return {"Authorization": f"Bearer {self._bearer}"}

    def _exchange(self, refresh: str) -> tuple[str, float]:
        if self._access.url is None:
            raise MediaFetchError("a personal access token needs LABEL_STUDIO_URL to be exchanged")
        url = f"{self._access.url}/api/token/refresh/"
        what = f"cannot exchange the personal access token at {url}"
        try:
            response = requests.post(url, json={"refresh": refresh}, timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise MediaFetchError(f"{what}: {_describe(exc, self._timeout_s)}") from exc
        if not response.ok:
            raise MediaFetchError(f"{what}: {_http_reason(response, at_label_studio=True, has_key=True)}")
        try:
            access = response.json()["access"]
            claims = _claims(access)
        except (ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            raise MediaFetchError(f"{what}: the answer holds no access token") from exc
        logger.debug("exchanged the personal access token for an access token")
        return access, _lifetime_s(claims)


class MediaFetcher:
    """Turns task media values into local files, downloading into a size-bounded LRU cache.

    local_files_root: Label Studio's LOCAL_FILES_DOCUMENT_ROOT as mounted on this machine; Local
    Files media found under it are read in place instead of downloaded.
    policy: where media may come from (media_policy); by default Label Studio only, no local paths.
    """

    def __init__(
        self,
        access: LabelStudioAccess,
        cache_dir: Path,
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
        local_files_root: Path | None = None,
        timeout_s: float = 30.0,
        policy: MediaPolicy | None = None,
    ) -> None:
        self.access = access
        self.policy = policy or MediaPolicy(label_studio_url=access.url)
        self._session = self.policy.session()
        self.cache_dir = Path(cache_dir)
        self.max_cache_bytes = max_cache_bytes
        self.local_files_root = Path(local_files_root) if local_files_root is not None else None
        self.timeout_s = timeout_s
        self.tokens = TokenProvider(access, timeout_s)
        self._url_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._url_locks_guard = threading.Lock()
        self._trim_lock = threading.Lock()

    def fetch(self, value: str, task_id: int | None = None) -> Path:
        """The local file for a task's media value; task_id is needed for cloud storage URIs."""
        value = value.strip()
        try:
            return self._fetch(value, task_id)
        except MediaRefused as refused:
            raise MediaFetchError(f"cannot fetch {value}: {refused}", refusal=refused.reason) from None

    def _fetch(self, value: str, task_id: int | None) -> Path:
        served = self._label_studio_media(value)
        if served is not None:
            kind, key = served
            if kind == "local-files":
                local = self._local_files_path(value, key)
                if local is not None:
                    return local
                return self._cached(self._local_files_remote(value, key))
            return self._cached(self._upload_remote(value, key))
        lowered = value.lower()
        if lowered.startswith(CLOUD_SCHEMES):
            return self._cached(self._presigned_remote(value, task_id))
        if lowered.startswith(("http://", "https://")):
            self.policy.check_url(value)
            return self._cached(_Remote(value, (value,), value, _basename(urlsplit(value).path)))
        return self._local_path(value)

    def _local_path(self, value: str) -> Path:
        if value.lower().startswith("file://"):
            path = unquote(urlsplit(value).path)
        elif "://" in value:
            raise MediaFetchError(f"cannot fetch {value}: unsupported URL scheme {value.split('://', 1)[0]}://",
                                  refusal="scheme")
        elif os.path.isabs(value):
            path = value
        else:
            raise MediaFetchError(f"cannot fetch {value}: not an absolute path, a URL or Label Studio media")
        try:
            return self.policy.local_file(path)
        except FileNotFoundError:
            raise MediaFetchError(f"cannot fetch {value}: no such file") from None

    # Resolving values

    def _label_studio_media(self, value: str) -> tuple[str, str] | None:
        """("upload", storage key) or ("local-files", path under the root) for what Label Studio serves."""
        path = value
        if self.access.url is not None and value.startswith(self.access.url + "/"):
            path = value[len(self.access.url) :]
        if path.startswith(("upload/", "/upload/", "/data/upload/")):
            return "upload", unquote(path.removeprefix("/").removeprefix("data/"))
        route = urlsplit(path).path.rstrip("/")
        if route == "/storage-data/uploaded" and (key := _query_value(path, "filepath")):
            return "upload", key.lstrip("/")
        if route == "/data/local-files":
            relative = _query_value(path, "d")
            if not relative:
                raise MediaFetchError(f"cannot fetch {value}: the Local Files URL has no ?d= path")
            return "local-files", relative
        return None

    def _local_files_path(self, value: str, relative: str) -> Path | None:
        if self.local_files_root is None:
            return None
        # Judged on the real path: neither .. nor a symlink pointing out of the root escapes it.
        path = self.policy.under_root(self.local_files_root, relative)
        return path if path.is_file() else None

    def _local_files_remote(self, value: str, relative: str) -> _Remote:
        base = self._require_url(value)
        url = f"{base}/data/local-files/?d={quote(relative, safe='/')}"
        return _Remote(f"{value} from {base}", (url,), url, _basename(relative))

    def _upload_remote(self, value: str, key: str) -> _Remote:
        base = self._require_url(value)
        quoted = quote(key, safe="/")
        # Label Studio 1.23 serves uploads through the storage proxy whatever the storage backend;
        # /data/upload/ is the older route, still there for file-system storage.
        proxy = f"{base}/storage-data/uploaded/?filepath={quoted}"
        legacy = f"{base}/data/{quoted}"
        return _Remote(f"{value} from {base}", (proxy, legacy), legacy, _basename(key))

    def _presigned_remote(self, uri: str, task_id: int | None) -> _Remote:
        if task_id is None:
            raise MediaFetchError(
                f"cannot fetch {uri}: cloud storage media need the task id (Label Studio presigns per task)"
            )
        base = self._require_url(uri)
        encoded = base64.urlsafe_b64encode(uri.encode()).decode()
        url = f"{base}/tasks/{task_id}/presign/?fileuri={encoded}"
        # Keyed by the URI, not the presign URL, so the same object in two tasks is downloaded once.
        return _Remote(f"{uri} via {base}", (url,), uri, _basename(urlsplit(uri).path))

    def _require_url(self, value: str) -> str:
        if self.access.url is None:
            raise MediaFetchError(f"cannot fetch {value}: LABEL_STUDIO_URL is needed to download it")
        return self.access.url

    # Downloading and caching

    def _cached(self, remote: _Remote) -> Path:
        digest = hashlib.sha256(remote.key.encode()).hexdigest()[:16]
        path = self.cache_dir / f"{digest}__{_safe_name(remote.name)}"
        with self._url_lock(remote.key):
            if path.is_file():
                _touch(path)
                return path
            self._download(remote, path)
        self._trim(keep=path)
        return path

    def _url_lock(self, key: str) -> threading.Lock:
        # Weak values: a lock lives while a thread holds or waits on it, so the map does not grow.
        with self._url_locks_guard:
            lock = self._url_locks.get(key)
            if lock is None:
                lock = self._url_locks[key] = threading.Lock()
            return lock

    def _download(self, remote: _Remote, dest: Path) -> None:
        failures: list[_StatusFailure] = []
        for url in remote.urls:
            try:
                self._stream(url, dest)
                return
            except _StatusFailure as failure:
                failures.append(failure)
                logger.info("HTTP %s for %s", failure.status, url.split("?", 1)[0])
            except requests.RequestException as exc:
                reason = _describe(exc, self.timeout_s)
                raise MediaFetchError(f"cannot fetch {remote.label}: {reason}") from exc
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    freed = self._make_room(keep=dest)
                    raise MediaFetchError(
                        f"cannot fetch {remote.label}: the media cache at {self.cache_dir} is full ({exc.strerror}); "
                        f"{freed} least recently used file(s) removed, the task is tried again on the next "
                        f"retrieve") from None
                raise MediaFetchError(f"cannot fetch {remote.label}: writing {dest} failed: {exc}") from exc
        # "Unauthorized" from one route says more than "Not Found" from the other.
        worst = next((f for f in failures if f.status in (401, 403)), failures[-1])
        raise MediaFetchError(f"cannot fetch {remote.label}: {worst.reason}")

    def _stream(self, url: str, dest: Path) -> None:
        with self._open(url) as response:
            what = f"the download of {dest.name.split('__', 1)[-1]}"
            length = response.headers.get("Content-Length", "")
            if length.isdigit():
                self.policy.check_size(int(length), what)
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A hidden part file in the same folder: readers never see a partial file, and the
            # rename is atomic because it stays on one file system.
            fd, part = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
            try:
                written = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        written += len(chunk)
                        self.policy.check_size(written, what)  # a missing or lying Content-Length
                        out.write(chunk)
                os.replace(part, dest)
            except BaseException:
                _unlink(part)
                raise
        _touch(dest)
        logger.info("downloaded %s (%d bytes)", dest.name, dest.stat().st_size)

    def _open(self, url: str) -> requests.Response:
        # Redirects are followed by hand: the token goes to Label Studio only, never to the
        # presigned cloud URL it redirects to, and each hop is checked against the media policy.
        from_label_studio = False
        for _ in range(MAX_REDIRECTS + 1):
            self.policy.check_url(url, from_label_studio=from_label_studio)
            at_label_studio = self._is_label_studio(url)
            headers = self.tokens.headers() if at_label_studio else {}
            response = self._session.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=self.timeout_s
            )
            if response.is_redirect:
                response.close()
                url = urljoin(url, response.headers["Location"])
                from_label_studio = at_label_studio
                continue
            if not response.ok:
                response.close()
                reason = _http_reason(response, at_label_studio, has_key=self.access.api_key is not None)
                raise _StatusFailure(response.status_code, reason)
            return response
        raise _StatusFailure(0, f"more than {MAX_REDIRECTS} redirects")

    def _is_label_studio(self, url: str) -> bool:
        return self.access.url is not None and _origin(url) == _origin(self.access.url)

    def _make_room(self, keep: Path) -> int:
        """The disk under the cache is full: evict the older half of the cached files (by last
        use), so that other tasks' media fit again. How many were removed."""
        with self._trim_lock:
            entries = sorted((e.stat(follow_symlinks=False).st_mtime_ns, e.path) for e in os.scandir(self.cache_dir)
                             if e.is_file(follow_symlinks=False) and _CACHE_NAME.match(e.name) and e.path != str(keep))
            doomed = entries[: (len(entries) + 1) // 2]
            for _, path in doomed:
                _unlink(path)
            logger.warning("media cache at %s full: removed %d least recently used file(s)", self.cache_dir,
                           len(doomed))
            return len(doomed)

    def _trim(self, keep: Path) -> None:
        with self._trim_lock:
            now = time.time()
            entries = []
            for entry in os.scandir(self.cache_dir):
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                if entry.name.endswith(".part"):
                    if now - stat.st_mtime > ABANDONED_PART_S:
                        _unlink(entry.path)
                # Only files this cache named are evicted: cache_dir may be shared with other files.
                elif _CACHE_NAME.match(entry.name):
                    entries.append((stat.st_mtime_ns, entry.path, stat.st_size))
            total = sum(size for _, _, size in entries)
            for _, path, size in sorted(entries):
                if total <= self.max_cache_bytes:
                    break
                if path != str(keep):
                    _unlink(path)
                    total -= size
                    logger.info("evicted %s from the media cache", os.path.basename(path))


@dataclass(frozen=True)
class _Remote:
    label: str  # names the media in error messages
    urls: tuple[str, ...]  # tried in order; a later one only after an HTTP error status
    key: str  # the cache identity, the same whichever URL answers
    name: str  # the file name to keep: PyAV sometimes needs the extension


class _StatusFailure(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _token_kind(key: str | None) -> str:
    """'legacy', 'access' (an access JWT, sent as is) or 'refresh' (exchanged first)."""
    if key is None:
        return "legacy"
    try:
        claims = _claims(key)
    except jwt.PyJWTError:
        return "legacy"
    return "access" if claims.get("token_type") == "access" else "refresh"


def _claims(token: str) -> dict:
    # Label Studio checks the signature; the claims are only read to pick the header and expiry.
    return jwt.decode(token, options={"verify_signature": False})


def _lifetime_s(claims: dict) -> float:
    # exp - iat rather than exp - now: this machine's clock may disagree with Label Studio's.
    if "exp" in claims and "iat" in claims:
        return float(claims["exp"]) - float(claims["iat"])
    if "exp" in claims:
        return float(claims["exp"]) - time.time()
    return DEFAULT_ACCESS_LIFETIME_S


def _http_reason(response: requests.Response, at_label_studio: bool, has_key: bool) -> str:
    reason = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    if at_label_studio and response.status_code in (401, 403):
        reason += " (check LABEL_STUDIO_API_KEY)" if has_key else " (LABEL_STUDIO_API_KEY is not set)"
    return reason


def _describe(exc: requests.RequestException, timeout_s: float) -> str:
    text = " ".join(str(exc).split())
    # A read timeout inside iter_content arrives as a ConnectionError, hence the text check.
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {text}"
    if isinstance(exc, requests.ConnectionError):
        if "refused" in text.lower():
            return "connection refused"
        if any(s in text for s in ("resolve", "Name or service not known", "nodename nor servname")):
            return "host name not found"
    return f"{type(exc).__name__}: {text}"


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(scheme)


def _query_value(url: str, name: str) -> str | None:
    # The last value wins, as in Django's request.GET.get.
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get(name)
    return values[-1] if values else None


def _basename(path: str) -> str:
    return posixpath.basename(unquote(path))


def _safe_name(name: str) -> str:
    stem, ext = os.path.splitext(name)
    stem = re.sub(r"[^\w.-]+", "_", stem, flags=re.ASCII)[:80] or "media"
    ext = re.sub(r"\W+", "", ext, flags=re.ASCII)[:12]
    return f"{stem}.{ext}" if ext else stem


def _touch(path: Path) -> None:
    # An explicit nanosecond time: the kernel's coarse file clock can give two quick touches the
    # same mtime, which would blur the LRU order.
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
