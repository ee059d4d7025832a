"""Reading the sound of an audio or video file as 16 kHz mono float32 samples.

As LAION's voice code (librosa) does: every channel averaged into one, resampled to 16 kHz, and no
gain normalisation (the Whisper log-mel features depend on the level). The whole track is held in
memory (an hour is 230 MB).

Time 0 of the samples is time 0 of the media's frame times: the video stream's start where there is
a video stream (so voice segments and face frames share one clock), else the audio stream's. Audio
that starts later is preceded by silence; audio that starts earlier is trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .media import MediaError, _open, _reason

SAMPLE_RATE = 16000  # Hz, what Whisper's feature extractor expects


@dataclass(frozen=True, eq=False)
class AudioClip:
    samples: np.ndarray  # float32 [n], mono
    sample_rate: int = SAMPLE_RATE
    source: str = ""  # the file it came from, for messages and outputs
    source_channels: int = 1
    source_sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def window(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples of [start_s, end_s), by the nearest sample boundaries."""
        return window_samples(self.samples, start_s, end_s, self.sample_rate)


def window_samples(samples: np.ndarray, start_s: float, end_s: float, sample_rate: int = SAMPLE_RATE,
                   origin_s: float = 0.0) -> np.ndarray:
    """The samples of [start_s, end_s) from a buffer whose first sample is at ``origin_s``, by the
    nearest sample boundaries: one rule for a whole recording, a live buffer and a window of it."""
    first = max(0, int(round(start_s * sample_rate)) - int(round(origin_s * sample_rate)))
    last = min(len(samples), int(round(end_s * sample_rate)) - int(round(origin_s * sample_rate)))
    return samples[first:max(first, last)]


def has_audio(path: str | Path) -> bool:
    container = _open(Path(path))
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


class MonoResampler:
    """Decoded audio frames in, 16 kHz mono float32 samples out, on the media's clock: the first
    samples are shifted by the stream's offset from ``origin_s`` (silence before audio that starts
    late, audio before the origin trimmed). Works as the frames arrive, so a live stream and a whole
    file give the same samples."""

    def __init__(self, stream, origin_s: float, sample_rate: int = SAMPLE_RATE):
        import av

        self.stream = stream
        self.origin_s = origin_s
        self.sample_rate = sample_rate
        self._resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sample_rate)
        self._to_trim: int | None = None  # samples still to drop; None until the first frame

    def _mono(self, outputs) -> np.ndarray:
        chunks = [out.to_ndarray() for out in outputs]
        if not chunks:
            return np.zeros(0, np.float32)
        # Average of the channels, as librosa's to_mono; float64 sum keeps it exact to float32.
        samples = np.concatenate(chunks, axis=1).astype(np.float64).mean(axis=0).astype(np.float32)
        if self._to_trim:
            dropped = min(self._to_trim, len(samples))
            samples = samples[dropped:]
            self._to_trim -= dropped
        return samples

    def push(self, frame) -> np.ndarray:
        lead = np.zeros(0, np.float32)
        if self._to_trim is None:
            shift = int(round((_frame_start_s(frame, self.stream) - self.origin_s) * self.sample_rate))
            self._to_trim = max(0, -shift)
            lead = np.zeros(max(0, shift), np.float32)
        samples = self._mono(self._resampler.resample(frame))
        return np.concatenate([lead, samples]) if len(lead) else samples

    def flush(self) -> np.ndarray:
        return self._mono(self._resampler.resample(None))

    @property
    def received(self) -> bool:
        """Whether any frame came in."""
        return self._to_trim is not None


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> AudioClip:
    import av

    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            kind = "video" if container.streams.video else "file"
            raise MediaError(f"{path}: has no audio stream (a {kind} without sound), so there is no "
                             f"voice to analyse")
        stream = container.streams.audio[0]
        origin_s = stream_start_s(container.streams.video[0] if container.streams.video else stream)
        channels = stream.codec_context.channels or 1
        mono = MonoResampler(stream, origin_s, sample_rate)
        pieces: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                pieces.append(mono.push(frame))
            pieces.append(mono.flush())
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: decoding the audio failed ({_reason(exc)})") from None
    finally:
        container.close()
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    if not mono.received or len(samples) == 0:
        raise MediaError(f"{path}: the audio stream holds no samples")
    return AudioClip(samples, sample_rate, str(path), channels, stream.codec_context.sample_rate or 0)


def stream_start_s(stream) -> float:
    """The stream's start on the media clock, in seconds (0 when the container does not say)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _frame_start_s(frame, stream) -> float:
    """Presentation time of the first decoded audio frame (the stream start when unknown)."""
    if frame.pts is None or frame.time_base is None:
        return stream_start_s(stream)
    return float(frame.pts * frame.time_base)


def media_extent(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, width, height of the first video stream; 0 without one), from the
    container's headers, without decoding."""
    container = _open(Path(path))
    try:
        duration = _container_duration_s(container)
        video = container.streams.video[0] if container.streams.video else None
        width, height = (int(video.codec_context.width or 0), int(video.codec_context.height or 0)) if video else (0, 0)
    finally:
        container.close()
    if video is not None and not (width and height):  # a picture: its header says its size
        from .media import image_size

        width, height = image_size(path)
    return duration, width, height


def media_duration_s(path: str | Path) -> float:
    """The container's duration without decoding (0 when the container does not say)."""
    container = _open(Path(path))
    try:
        return _container_duration_s(container)
    finally:
        container.close()


def _container_duration_s(container) -> float:
    if container.duration:
        return container.duration / 1_000_000  # microseconds (av.time_base)
    streams = [s for s in container.streams if s.duration and s.time_base]
    return max((float(s.duration * s.time_base) for s in streams), default=0.0)
