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
        first = max(0, int(round(start_s * self.sample_rate)))
        last = min(len(self.samples), int(round(end_s * self.sample_rate)))
        return self.samples[first:max(first, last)]


def has_audio(path: str | Path) -> bool:
    container = _open(Path(path))
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


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
        origin_s = _start_s(container.streams.video[0] if container.streams.video else stream)
        channels = stream.codec_context.channels or 1
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sample_rate)
        chunks: list[np.ndarray] = []
        offset_s = None
        try:
            for frame in container.decode(stream):
                if offset_s is None:
                    offset_s = _frame_start_s(frame, stream) - origin_s
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: decoding the audio failed ({_reason(exc)})") from None
    finally:
        container.close()
    if not chunks:
        raise MediaError(f"{path}: the audio stream holds no samples")
    # Average of the channels, as librosa's to_mono; float64 sum keeps it exact to float32.
    samples = np.concatenate(chunks, axis=1).astype(np.float64).mean(axis=0).astype(np.float32)
    shift = int(round((offset_s or 0.0) * sample_rate))
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    return AudioClip(samples, sample_rate, str(path), channels, stream.codec_context.sample_rate or 0)


def _start_s(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _frame_start_s(frame, stream) -> float:
    """Presentation time of the first decoded audio frame (the stream start when unknown)."""
    if frame.pts is None or frame.time_base is None:
        return _start_s(stream)
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
