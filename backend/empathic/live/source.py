"""Reading a live input through PyAV: a camera, a network stream, or a file played at its own rate.

Pictures and sound come out in arrival order with their media times, on the clock the file analyses
use (0 = the video stream's start, else the audio's), so a session's results line up with ``annotate``
on a recording of the same stream. Every wait is bounded: opening and each read give up after their
timeouts, and a stop request is seen between packets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, MonoResampler, stream_start_s
from ..media import MediaError, _reason, frame_rgb

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "http", "https", "hls")


class StreamDropped(Exception):
    """The stream failed or went silent part-way; what came before it is kept."""


@dataclass(frozen=True)
class StreamInfo:
    source: str
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    codec: str = ""
    nominal_fps: float = 0.0  # what the stream declares (0 when it does not)
    audio_sample_rate: int = 0
    audio_channels: int = 0


@dataclass(frozen=True, eq=False)
class VideoIn:
    frame_index: int  # 0-based, in presentation order
    time_s: float
    duration_s: float  # how long the frame is shown (0 when unknown)
    rgb: np.ndarray
    arrived: float  # time.perf_counter() when it was decoded


@dataclass(frozen=True, eq=False)
class AudioIn:
    samples: np.ndarray  # 16 kHz mono float32, following the previous block without a gap
    arrived: float


def source_kind(source: str) -> str:
    """``device``, ``network`` or ``file``; a missing path is an error naming it."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme:
        if scheme == "file":
            return "file"
        if scheme not in NETWORK_SCHEMES:
            raise MediaError(f"{source}: unknown stream scheme {scheme!r}; use one of "
                             f"{', '.join(NETWORK_SCHEMES)}, a device such as /dev/video0, or a file")
        return "network"
    if source.startswith("/dev/"):
        return "device"
    path = Path(source)
    if not path.exists():
        raise MediaError(f"{source}: no such file or device")
    if path.is_dir():
        raise MediaError(f"{source}: is a folder, not a stream")
    return "file"


def check_source(source: str, realtime: bool) -> str:
    """The source's kind, after the checks that need no connection (before any model is loaded)."""
    kind = source_kind(source)
    if kind == "file" and not realtime:
        raise MediaError(f"{source}: is a file; add --realtime to play it at its own rate "
                         f"(or analyse it whole with `empathic annotate`)")
    return kind


class LiveSource:
    """Opens ``source`` and yields ``VideoIn`` and ``AudioIn`` as they are decoded.

    ``realtime`` paces the reading to the media clock (a file then plays like a camera); live inputs
    set their own pace. Iteration ends at the end of the stream, on ``stop``, or raises
    StreamDropped when a read fails or times out.
    """

    def __init__(self, source: str, video: bool = True, audio: bool = True, realtime: bool = False,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0,
                 stop: threading.Event | None = None):
        self.source = source
        self.kind = check_source(source, realtime)
        self.realtime = realtime
        self.read_timeout_s = read_timeout_s
        self.stop = stop or threading.Event()
        self._container = self._open(open_timeout_s, read_timeout_s)
        streams = self._container.streams
        self._video = streams.video[0] if video and streams.video else None
        self._audio = streams.audio[0] if audio and streams.audio else None
        if video and audio and self._video is None and self._audio is None:
            self.close()
            raise MediaError(f"{source}: has neither a video nor an audio stream")
        if video and not audio and self._video is None:
            self.close()
            raise MediaError(f"{source}: has no video stream, so there are no faces to analyse")
        if audio and not video and self._audio is None:
            self.close()
            raise MediaError(f"{source}: has no audio stream, so there is no voice to analyse")
        if self._video is not None:
            self._video.thread_type = "AUTO"
        clock_stream = streams.video[0] if streams.video else streams.audio[0]
        self.origin_s = stream_start_s(clock_stream)
        self.info = self._describe()
        self.media_s = 0.0  # media time received so far

    def _open(self, open_timeout_s: float, read_timeout_s: float):
        import av

        path = self.source[len("file://"):] if self.source.startswith("file://") else self.source
        options = {}
        form = None
        if self.kind == "device":
            form = "v4l2"
        if self.kind == "network" and self.source.startswith("udp://"):
            options["overrun_nonfatal"] = "1"  # a late reader loses packets, not the session
        try:
            return av.open(path, format=form, options=options, timeout=(open_timeout_s, read_timeout_s))
        except Exception as exc:
            raise MediaError(f"{self.source}: cannot open the stream ({_reason(exc)})") from None

    def _describe(self) -> StreamInfo:
        video, audio = self._video, self._audio
        info = {"source": self.source, "has_video": video is not None, "has_audio": audio is not None}
        if video is not None:
            context = video.codec_context
            rate = video.guessed_rate or video.average_rate
            info.update(width=int(context.width or 0), height=int(context.height or 0), codec=context.name,
                        nominal_fps=float(rate) if rate else 0.0)
        if audio is not None:
            info.update(audio_sample_rate=int(audio.codec_context.sample_rate or 0),
                        audio_channels=int(audio.codec_context.channels or 0))
        return StreamInfo(**info)

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()

    def __iter__(self) -> Iterator[VideoIn | AudioIn]:
        wanted = [s for s in (self._video, self._audio) if s is not None]
        mono = MonoResampler(self._audio, self.origin_s, SAMPLE_RATE) if self._audio is not None else None
        started_wall: float | None = None
        started_media = 0.0
        frames = 0
        audio_samples = 0
        try:
            for packet in self._container.demux(*wanted):
                if self.stop.is_set():
                    return
                for decoded in packet.decode():
                    if packet.stream is self._video:
                        if decoded.pts is None:
                            continue
                        time_s = float(decoded.pts * decoded.time_base) - self.origin_s
                        duration = float(decoded.duration * decoded.time_base) if decoded.duration else 0.0
                        started_wall, started_media = self._pace(time_s, started_wall, started_media)
                        self.media_s = max(self.media_s, time_s + duration)
                        yield VideoIn(frames, time_s, duration, frame_rgb(decoded), time.perf_counter())
                        frames += 1
                    else:
                        samples = mono.push(decoded)
                        if len(samples):
                            block_start = audio_samples / SAMPLE_RATE
                            started_wall, started_media = self._pace(block_start, started_wall, started_media)
                            audio_samples += len(samples)
                            self.media_s = max(self.media_s, audio_samples / SAMPLE_RATE)
                            yield AudioIn(samples, time.perf_counter())
            if mono is not None:
                tail = mono.flush()
                if len(tail):
                    audio_samples += len(tail)
                    yield AudioIn(tail, time.perf_counter())
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if self.stop.is_set():
                return
            raise StreamDropped(self._why(exc)) from None

    def _why(self, exc: Exception) -> str:
        text = _reason(exc)
        if isinstance(exc, TimeoutError) or "timed out" in text.lower() or "Immediate exit" in text:
            return f"no data for {self.read_timeout_s:g} s"
        return text

    def _pace(self, media_time_s: float, started_wall: float | None,
              started_media: float) -> tuple[float, float]:
        """With ``realtime``, waits until the wall clock reaches this media time (from the first item)."""
        now = time.perf_counter()
        if started_wall is None:
            return now, media_time_s
        if self.realtime:
            due = started_wall + (media_time_s - started_media)
            while now < due and not self.stop.is_set():
                self.stop.wait(min(due - now, 0.05))
                now = time.perf_counter()
        return started_wall, started_media
