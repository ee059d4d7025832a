"""A cache of analysis results, so that changing labels or thresholds in Label Studio needs no new
inference: the key covers only what shapes the scores (media bytes, model weights, analysis
parameters); labels, thresholds and region options are applied to the cached result afterwards.

Entries are the ``to_cache()`` documents of ``FaceAnalysis`` / ``VoiceAnalysis``, stored as
zlib-compressed JSON. A cache never fails a request: a broken or missing entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..results import CACHE_FORMAT, ModelInfo

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DIGEST_CHUNK_BYTES = 1 * MiB
DEFAULT_MEMORY_BYTES = 256 * MiB
DEFAULT_TTL_S = 7 * 24 * 3600
DEFAULT_MAX_ENTRY_BYTES = 64 * MiB
DEFAULT_PREFIX = "empathic:analysis:"
# A down Redis must cost a request at most this long, not the client's default of many seconds.
REDIS_SOCKET_TIMEOUT_S = 2.0
# While Redis is down, requests skip it for this long instead of each waiting on a timeout.
REDIS_RETRY_AFTER_S = 10.0
# Float digits compress poorly at any level: level 1 is ~5x faster than the default and only ~8%
# larger on an hour of face results (25 MB of JSON -> 9 MB).
COMPRESSION_LEVEL = 1
KINDS = ("face", "voice", "evidence")  # evidence: what person linking reads from the media


def media_digest(path: str | Path) -> str:
    """sha256 of the file's bytes: the same content under another name or URL hits the same entry."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(DIGEST_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(info: ModelInfo) -> dict:
    """What names the weights exactly. The requested revision is left out: it is only a way to
    reach the resolved commit, and "main" today and its sha are the same weights."""
    return {"repo": info.repo, "revision": info.revision, "backbone_repo": info.backbone_repo,
            "backbone_revision": info.backbone_revision, "precision": info.precision}


def cache_key(media_digest: str, kind: str, model: dict, parameters: tuple) -> str:
    """sha256 hex of a canonical JSON of everything that shapes an analysis result."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    identity = {
        "format": CACHE_FORMAT, "kind": kind, "media": media_digest, "model": model,
        # Sorted so that the order options happen to be listed in cannot split the cache.
        "parameters": sorted(([str(k), v] for k, v in parameters), key=lambda pair: pair[0]),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def encode_document(document: dict) -> bytes:
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode("utf-8"), COMPRESSION_LEVEL)


def decode_document(blob: bytes) -> dict:
    """Raises ValueError for anything that is not a compressed JSON object."""
    try:
        document = json.loads(zlib.decompress(blob))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a compressed JSON document ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(f"not a JSON object but {type(document).__name__}")
    return document


class AnalysisCache(ABC):
    """Maps a ``cache_key`` to a ``to_cache()`` document. ``get`` and ``put`` never raise for
    trouble of the store itself; they answer a miss and drop the entry instead."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "errors": 0}

    @abstractmethod
    def get(self, key: str) -> dict | None: ...

    @abstractmethod
    def put(self, key: str, document: dict) -> None: ...

    def stats(self) -> dict:
        """hits, misses, errors and, where the store knows it cheaply, entries."""
        with self._lock:
            return dict(self._counts)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


class MemoryCache(AnalysisCache):
    """In-process LRU, bounded by the bytes it holds (compressed), not by a count of entries:
    one hour of video weighs thousands of times more than a still image."""

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES):
        super().__init__()
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> dict | None:
        with self._lock:
            blob = self._entries.get(key)
            if blob is not None:
                self._entries.move_to_end(key)
        # Decoded outside the lock, and freshly each time: callers may change what they get.
        if blob is None:
            self._count("misses")
            return None
        self._count("hits")
        return decode_document(blob)

    def put(self, key: str, document: dict) -> None:
        blob = encode_document(document)
        if len(blob) > self.max_bytes:
            log.info("analysis of %d compressed bytes exceeds the memory cache (%d bytes); not cached",
                     len(blob), self.max_bytes)
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = blob
            self._bytes += len(blob)
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def stats(self) -> dict:
        with self._lock:
            return {**self._counts, "entries": len(self._entries), "bytes": self._bytes}


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class RedisCache(AnalysisCache):
    """Shared between the server's workers and machines. Entries expire after ``ttl_s`` so that a
    cache nobody prunes cannot fill Redis; results larger than ``max_entry_bytes`` are not stored."""

    def __init__(self, url: str, ttl_s: int = DEFAULT_TTL_S, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
                 prefix: str = DEFAULT_PREFIX, retry_after_s: float = REDIS_RETRY_AFTER_S):
        super().__init__()
        self.url = redact_url(url)
        self.ttl_s = ttl_s
        self.max_entry_bytes = max_entry_bytes
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        # One immediate retry re-opens a pooled connection the server dropped (a restart) without
        # reporting an outage; more, with the client's default backoff, would stall requests.
        self._client = redis.Redis.from_url(
            url, socket_timeout=REDIS_SOCKET_TIMEOUT_S, socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1))
        self._down_since: float | None = None

    def get(self, key: str) -> dict | None:
        name = self.prefix + key
        blob = self._call(lambda: self._client.get(name))
        if blob is None:
            self._count("misses")
            return None
        try:
            document = decode_document(blob)
        except ValueError as error:
            log.warning("corrupt analysis cache entry %s in Redis at %s (%s); deleted", name, self.url, error)
            self._count("errors")
            self._count("misses")
            self._call(lambda: self._client.delete(name))
            return None
        self._count("hits")
        return document

    def put(self, key: str, document: dict) -> None:
        blob = encode_document(document)
        if len(blob) > self.max_entry_bytes:
            log.info("analysis of %d compressed bytes exceeds the Redis entry limit (%d bytes); not cached",
                     len(blob), self.max_entry_bytes)
            return
        name = self.prefix + key
        self._call(lambda: self._client.set(name, blob, ex=self.ttl_s))

    def stats(self) -> dict:
        # Counting Redis's entries would mean a SCAN of the whole keyspace: not known cheaply.
        return {**super().stats(), "entries": None}

    def _call(self, command):
        """The command's answer, or None while Redis is down; reports each outage once."""
        with self._lock:
            down_since = self._down_since
        if down_since is not None and time.monotonic() - down_since < self.retry_after_s:
            return None
        try:
            answer = command()
        except (redis.RedisError, OSError) as error:
            with self._lock:
                starts_outage = self._down_since is None
                self._down_since = time.monotonic()
                self._counts["errors"] += 1
            if starts_outage:
                log.warning("Redis at %s unreachable (%s); serving uncached", self.url, error)
            return None
        with self._lock:
            ends_outage = self._down_since is not None
            self._down_since = None
        if ends_outage:
            log.info("Redis at %s reachable again; caching resumed", self.url)
        return answer


def make_cache(redis_url: str | None, *, memory_max_bytes: int = DEFAULT_MEMORY_BYTES,
               ttl_s: int = DEFAULT_TTL_S, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
               prefix: str = DEFAULT_PREFIX) -> AnalysisCache:
    """Redis when a URL is configured (shared, survives restarts), else this process's memory."""
    if redis_url:
        return RedisCache(redis_url, ttl_s=ttl_s, max_entry_bytes=max_entry_bytes, prefix=prefix)
    return MemoryCache(memory_max_bytes)
