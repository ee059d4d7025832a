"""Where the server and its workers may take media from (the CLI trusts its user's paths).

The backend runs next to private recordings and anyone who can create a Label Studio task chooses
its media value, so:

- Plain URLs go only to Label Studio's own host (``LABEL_STUDIO_URL``, whatever its address) and to
  the hosts of ``ALLOWED_MEDIA_HOSTS`` (``host``, ``host:port`` or ``*.example.org``); a redirect
  from Label Studio (its presigned cloud URLs) may go to any host. Wherever a request goes, the
  address actually connected to is checked, on every connection and every redirect (so no DNS
  rebinding gets past): loopback, private, link-local, cloud-metadata and other non-public
  addresses are refused, unless the host is Label Studio's or is named exactly (not by a
  ``*.`` pattern) in ``ALLOWED_MEDIA_HOSTS``.
- Local paths and ``file://`` URLs are read only under a folder of ``MEDIA_ROOTS`` (and
  ``LOCAL_FILES_DOCUMENT_ROOT``), judged on the real path: ``..``, symlinks pointing out and
  encoded separators do not escape.
- A download larger than ``MAX_MEDIA_GB`` is refused (from its Content-Length, and counted while
  streaming: the partial file is removed).

Each refusal is a ``MediaRefused`` carrying a short reason code, for the logs and ``/metrics``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Cloud providers' instance metadata services (the classic SSRF target); some are link-local anyway.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"))

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}
TLS_SCHEMES = frozenset({"https", "rtsps", "rtmps"})  # the certificate is checked against the name


class MediaRefused(ValueError):
    """The media value points where the backend may not read; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def address_kind(address: str) -> str | None:
    """None for a public address; else why it is not one (metadata, loopback, private...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"  # shared address space (100.64/10) and the like
    return None


def _port_of(parts) -> int | None:
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None


@dataclass(frozen=True)
class MediaPolicy:
    label_studio_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # host, host:port, *.example.org (lower case)
    media_roots: tuple[Path, ...] = ()
    max_download_bytes: int | None = None
    trust_local_paths: bool = False  # the CLI: its user's own files, wherever they are
    _roots: tuple[str, ...] = field(init=False, repr=False, default=())

    def __post_init__(self):
        hosts = tuple(h.strip().lower() for h in self.allowed_hosts if h and h.strip())
        object.__setattr__(self, "allowed_hosts", hosts)
        object.__setattr__(self, "_roots", tuple(os.path.realpath(r) for r in self.media_roots))

    # Hosts

    def is_label_studio(self, url: str) -> bool:
        if not self.label_studio_url:
            return False
        a, b = urlsplit(url), urlsplit(self.label_studio_url)
        return (a.scheme.lower(), (a.hostname or ""), _port_of(a)) == (b.scheme.lower(), (b.hostname or ""),
                                                                      _port_of(b))

    def _matches(self, host: str, port: int | None, exact_only: bool) -> bool:
        for entry in self.allowed_hosts:
            name, _, wanted_port = entry.partition(":")
            if wanted_port and str(port) != wanted_port:
                continue
            if name == host or (not exact_only and name.startswith("*.") and fnmatch.fnmatchcase(host, name)):
                return True
        return False

    def check_url(self, url: str, from_label_studio: bool = False) -> None:
        """Refuses a URL the backend may not request (before any connection is made)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise MediaRefused("scheme", f"the URL scheme {parts.scheme or '(none)'}:// is not allowed")
        host = (parts.hostname or "").lower()
        if not host:
            raise MediaRefused("host", f"{url} names no host")
        if not from_label_studio:
            self._check_host(url, host, _port_of(parts), parts.port)

    def _check_host(self, url: str, host: str, port: int | None, written_port: int | None) -> None:
        """Refuses a host that is neither Label Studio's nor in ALLOWED_MEDIA_HOSTS."""
        if self.is_label_studio(url) or self._matches(host, port, False):
            return
        raise MediaRefused("host", f"{host}{':' + str(written_port) if written_port else ''} is neither Label "
                                   f"Studio's host nor in ALLOWED_MEDIA_HOSTS")

    def check_address(self, host: str, port: int | None, address: str) -> None:
        """Refuses a connection to a non-public address unless the host is trusted by name."""
        kind = address_kind(address)
        if kind is None:
            return
        host = host.lower().strip("[]")
        ls = urlsplit(self.label_studio_url) if self.label_studio_url else None
        if ls is not None and (ls.hostname or "").lower() == host and _port_of(ls) == port:
            return
        if self._matches(host, port, exact_only=True):
            return
        raise MediaRefused(kind, f"{host} resolves to {address}, a {kind.replace('_', '-')} address; name the "
                                 f"host exactly in ALLOWED_MEDIA_HOSTS to allow it")

    # Local files

    def local_file(self, path: str | os.PathLike) -> Path:
        """The file's real path, if a local path may be read; it must exist."""
        real = self._inside_roots(path)
        if not os.path.isfile(real):
            raise FileNotFoundError(str(path))
        return Path(real)

    def _inside_roots(self, path: str | os.PathLike) -> str:
        """The real path, if it lies under a media root (or local paths are trusted)."""
        real = os.path.realpath(path)
        if not self.trust_local_paths and not any(_inside(real, root) for root in self._roots):
            where = ", ".join(self._roots) if self._roots else "no folder (MEDIA_ROOTS is not set)"
            raise MediaRefused("local_path", f"{path} is outside the media roots: {where}")
        return real

    def under_root(self, root: str | os.PathLike, relative: str) -> Path:
        """``relative`` inside ``root``, judged on the real path (no escape by .. or symlinks)."""
        base = os.path.realpath(root)
        real = os.path.realpath(os.path.join(base, relative.lstrip("/")))
        if not _inside(real, base):
            raise MediaRefused("local_path", f"{relative} escapes the folder {base}")
        return Path(real)

    # Live streams (``GET /live/events``)

    def check_live_source(self, source: str) -> str:
        """The source a live session may open, or MediaRefused. A stream URL must name a host allowed
        as for plain URLs, and every address the host has now must pass the address rules; for
        schemes without TLS the checked address is put in the URL, so the stream goes where it was
        judged to go (no DNS rebinding between this check and FFmpeg's own lookup). A device or file
        must lie under MEDIA_ROOTS (a lab allows its camera with MEDIA_ROOTS=/dev/video0)."""
        if "://" not in source:
            real = self._inside_roots(source)
            if not os.path.exists(real):
                raise FileNotFoundError(source)
            return real
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        if scheme not in LIVE_SCHEMES:
            raise MediaRefused("scheme", f"the stream scheme {scheme}:// is not allowed; use one of "
                                         f"{', '.join(LIVE_SCHEMES)}")
        host = (parts.hostname or "").lower()
        if not host or host == "@":
            raise MediaRefused("host", f"{source} names no host (a listening stream is not allowed)")
        try:
            port = parts.port
        except ValueError:
            raise MediaRefused("host", f"{source} has a bad port") from None
        port = port or DEFAULT_PORTS.get(scheme)
        self._check_host(source, host, port, parts.port)
        try:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, port)})
        except (socket.gaierror, UnicodeError) as exc:
            raise MediaRefused("host", f"{host} cannot be resolved ({exc})") from None
        for address in addresses:
            self.check_address(host, port, address)
        if scheme in TLS_SCHEMES:
            return source
        pinned = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
        netloc = parts.netloc.rsplit("@", 1)
        hostport = netloc[-1].replace(parts.hostname, pinned, 1) if parts.hostname else netloc[-1]
        return parts._replace(netloc="@".join(netloc[:-1] + [hostport])).geturl()

    # Sizes

    def check_size(self, size: int, what: str) -> None:
        if self.max_download_bytes is not None and size > self.max_download_bytes:
            raise MediaRefused("too_large", f"{what} is {size / 1e9:.2f} GB, more than MAX_MEDIA_GB="
                                            f"{self.max_download_bytes / 1e9:g}")

    # The HTTP session

    def session(self) -> requests.Session:
        """A requests session whose every connection checks the address it reached (no proxies
        from the environment: they would hide the real peer)."""
        session = requests.Session()
        session.trust_env = False
        adapter = _GuardedAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _guarded(base: type, policy: MediaPolicy) -> type:
    class Guarded(base):
        def _new_conn(self):
            sock = super()._new_conn()
            try:
                policy.check_address(self.host, self.port, sock.getpeername()[0])
            except MediaRefused:
                sock.close()
                raise
            return sock

    return Guarded


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: MediaPolicy):
        self._policy = policy
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http = type("GuardedHTTPPool", (HTTPConnectionPool,),
                    {"ConnectionCls": _guarded(HTTPConnection, self._policy)})
        https = type("GuardedHTTPSPool", (HTTPSConnectionPool,),
                     {"ConnectionCls": _guarded(HTTPSConnection, self._policy)})
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)
