"""Reading the sound of an audio or video file as 16 kHz mono float32 samples.

As LAION's voice code (librosa) does: every channel averaged into one, resampled to 16 kHz, and no
gain normalisation (the Whisper log-mel features depend on the level). The samples start at the
audio stream's start time; the whole track is held in memory (an hour is 230 MB).
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
        channels = stream.codec_context.channels or 1
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sample_rate)
        chunks: list[np.ndarray] = []
        leading_gap_s = None
        try:
            for frame in container.decode(stream):
                if leading_gap_s is None:
                    leading_gap_s = _leading_gap(frame, stream)
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
    if leading_gap_s:
        # The first samples are later than the stream start: silence keeps times aligned.
        samples = np.concatenate([np.zeros(int(round(leading_gap_s * sample_rate)), np.float32), samples])
    return AudioClip(samples, sample_rate, str(path), channels, stream.codec_context.sample_rate or 0)


def _leading_gap(frame, stream) -> float:
    if frame.pts is None or stream.start_time is None or frame.time_base is None:
        return 0.0
    gap = float((frame.pts - stream.start_time) * frame.time_base)
    return gap if gap > 0 else 0.0
