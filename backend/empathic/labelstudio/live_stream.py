"""Live sessions served as Server-Sent Events: ``GET /live/events?source=...`` (and the page at ``/live``).

Off unless ``LIVE=true``; the source must pass the media rules (``MediaPolicy.check_live_source``); at
most ``LIVE_MAX_SESSIONS`` run at once (more get a 429). The session runs in a thread of its own and
its events go to the client through a bounded buffer: a client that reads too slowly loses events
(counted in ``/metrics``), it never slows the session down. The session stops when the client goes,
when the stream ends, or after ``LIVE_MAX_S``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..faces.detect import make_detector
from ..live.session import LiveOptions, LiveSession
from ..live.source import LiveSource, source_kind
from ..media import MediaError
from ..segments.sliding import SlidingOptions
from .media_policy import MediaRefused

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
EVENT_BUFFER = 256  # events waiting for a slow client; more are dropped
MAX_PPS = 30.0


class LiveRefused(Exception):
    """A request for a live session that is not served; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class LiveRequest:
    source: str
    face: bool | None  # None: when the stream has video (sound, for voice)
    voice: bool | None
    pps: float
    window_s: float
    hop_s: float


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise LiveRefused(400, f"{name} must be 1 or 0, got {value!r}")


def _number(params: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise LiveRefused(400, f"{name} must be a number, got {text!r}") from None
    if not low < value <= high:
        raise LiveRefused(400, f"{name} must be in ({low:g}, {high:g}], got {text}")
    return value


def parse_request(params: Mapping[str, str], settings) -> LiveRequest:
    source = (params.get("source") or "").strip()
    if not source:
        raise LiveRefused(400, "source is required: a stream URL, a device or a file under MEDIA_ROOTS")
    return LiveRequest(source=source, face=_flag(params, "face"), voice=_flag(params, "voice"),
                       pps=_number(params, "pps", settings.live_pps, 0, MAX_PPS),
                       window_s=_number(params, "window", settings.live_window_s, 0, 30),
                       hop_s=_number(params, "hop", settings.live_hop_s, 0, 60))


def sse(event: dict) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


class LiveStreams:
    """The live sessions of one server process."""

    def __init__(self, service):
        self.service = service
        self.settings = service.settings
        self._slots = threading.BoundedSemaphore(self.settings.live_max_sessions)

    def open(self, params: Mapping[str, str]) -> "LiveFeed":
        """Checks the request and opens the stream now (so a refusal is a plain HTTP error), then
        returns the event stream to send."""
        settings = self.settings
        if not settings.live_enabled:
            raise LiveRefused(403, "live sessions are off on this server (set LIVE=true to allow them)", "live_off")
        wanted = parse_request(params, settings)
        try:
            source_path = settings.media_policy().check_live_source(wanted.source)
        except MediaRefused as refused:
            self.service.count_refusal(refused.reason)
            raise LiveRefused(403, f"{wanted.source}: {refused}", refused.reason) from None
        except FileNotFoundError:
            raise LiveRefused(404, f"{wanted.source}: no such file or device") from None
        try:
            sliding = SlidingOptions(window_s=wanted.window_s, hop_s=wanted.hop_s)
        except ValueError as exc:
            raise LiveRefused(400, str(exc)) from None
        if not self._slots.acquire(blocking=False):
            raise LiveRefused(429, f"{settings.live_max_sessions} live session(s) already run on this server "
                                   f"(LIVE_MAX_SESSIONS)", "live_busy")
        try:
            # A file under the media roots plays at its own rate, as from a camera.
            source = LiveSource(source_path, video=wanted.face is not False, audio=wanted.voice is not False,
                                realtime=source_kind(source_path) == "file", open_timeout_s=settings.media_timeout_s,
                                read_timeout_s=settings.media_timeout_s)
        except MediaError as exc:
            self._slots.release()
            raise LiveRefused(400, str(exc).replace(source_path, wanted.source)) from None
        events: queue.Queue = queue.Queue(maxsize=EVENT_BUFFER)

        def deliver(event: dict) -> None:
            try:
                events.put_nowait(event)
            except queue.Full:
                self.service.count("live_events_dropped")

        try:
            session = self._session(wanted, source, sliding, deliver)
        except BaseException:
            source.close()
            self._slots.release()
            raise
        return self._stream(wanted, source, session, events)

    def _session(self, wanted: LiveRequest, source: LiveSource, sliding: SlidingOptions,
                 deliver) -> LiveSession:
        settings = self.settings
        face = source.info.has_video if wanted.face is None else wanted.face
        voice = source.info.has_audio if wanted.voice is None else wanted.voice
        if not (face or voice):
            raise LiveRefused(400, f"{wanted.source}: nothing to analyse (face=0 and voice=0)")
        face_options = settings.face_options(wanted.pps)
        face_model, voice_model = self.service.live_models(face, voice)
        return LiveSession(LiveOptions(faces=face_options if face else None, voices=sliding if voice else None),
                           face_model, voice_model,
                           make_detector(face_options.detector, face_options.detection) if face else None,
                           on_event=deliver)

    def _stream(self, wanted: LiveRequest, source: LiveSource, session: LiveSession,
                events: queue.Queue) -> "LiveFeed":
        finished = threading.Event()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result = session.run(source)
                summary = {"type": "summary", **result.summary.to_dict()}
                summary["source"] = wanted.source  # never the checked address it was opened at
                events.put(summary)
            except BaseException as error:  # the client hears it as an error event
                failure.append(error)
                log.exception("live session on %s failed", wanted.source)
            finally:
                finished.set()

        limit = threading.Timer(self.settings.live_max_s, source.stop.set)
        thread = threading.Thread(target=work, name="empathic-live-session", daemon=True)
        self.service.count("live_sessions")
        self.service.count("live_sessions_running", 1)
        closed = threading.Lock()

        def close() -> None:
            """The end of the stream, or the client went away: once, however it is reached."""
            if not closed.acquire(blocking=False):
                return
            source.stop.set()
            limit.cancel()
            if thread.is_alive():
                thread.join(timeout=self.settings.media_timeout_s + 5)
            source.close()
            self._slots.release()
            self.service.count("live_sessions_running", -1)

        def generate() -> Iterator[str]:
            try:
                limit.start()
                thread.start()
                quiet_since = time.monotonic()
                while True:
                    try:
                        event = events.get(timeout=0.5)
                    except queue.Empty:
                        if finished.is_set():
                            break
                        if time.monotonic() - quiet_since > HEARTBEAT_S:
                            yield ": keep-alive\n\n"
                            quiet_since = time.monotonic()
                        continue
                    if event.get("type") == "start":
                        event = {**event, "source": wanted.source}
                    yield sse(event)
                    quiet_since = time.monotonic()
                    if event.get("type") == "summary":
                        break
                if failure:
                    first = str(failure[0]).strip().splitlines()[0] if str(failure[0]).strip() else ""
                    yield sse({"type": "error", "error": f"{type(failure[0]).__name__}: {first}".rstrip(": ")})
            finally:
                close()

        return LiveFeed(generate(), close)


class LiveFeed:
    """The response body: the events, and a ``close`` the WSGI server calls even when the body was
    never read (so a session slot is never lost)."""

    def __init__(self, chunks: Iterator[str], close):
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()
        self._close()
