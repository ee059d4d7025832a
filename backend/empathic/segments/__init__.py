"""Cutting a recording into the time segments that the voice models score.

Every segmenter has one method, ``segment(audio) -> list[Segment]``, and one small module:
``fixed`` (windows of 1/pps seconds), ``vad`` (silero-vad speech regions), ``diarization``
(pyannote speaker turns), ``scene`` (fixed windows inside the video's shots). The helpers here
apply the limits every mode shares: a minimum duration, and the 30 s that one Whisper window holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..audio import AudioClip

WHISPER_WINDOW_S = 30.0  # the encoder sees 30 s; longer segments are split, never cut


@dataclass(frozen=True, order=True)
class Segment:
    """A stretch of the recording in seconds from its start; ``speaker`` where a mode knows it."""

    start_s: float
    end_s: float
    speaker: str | None = None

    def __post_init__(self):
        if not self.end_s > self.start_s >= 0:
            raise ValueError(f"a segment needs 0 <= start < end, got {self.start_s}..{self.end_s}")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class Segmenter(Protocol):
    def segment(self, audio: AudioClip) -> list[Segment]: ...


def split_long(segment: Segment, max_duration_s: float) -> list[Segment]:
    """Equal windows no longer than ``max_duration_s`` (a 40 s turn becomes two of 20 s)."""
    if segment.duration_s <= max_duration_s:
        return [segment]
    count = math.ceil(segment.duration_s / max_duration_s - 1e-9)
    step = segment.duration_s / count
    edges = [segment.start_s + i * step for i in range(count)] + [segment.end_s]
    return [Segment(a, b, segment.speaker) for a, b in zip(edges, edges[1:])]


def finalize(segments: Iterable[Segment], min_duration_s: float, max_duration_s: float) -> list[Segment]:
    """Sorted segments with those shorter than ``min_duration_s`` dropped and long ones split."""
    kept = []
    for segment in sorted(segments):
        if segment.duration_s + 1e-9 < min_duration_s:
            continue
        kept.extend(split_long(segment, max_duration_s))
    return kept
