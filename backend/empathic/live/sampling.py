"""Deciding samples while a stream plays, with the rules the file analyses use on a whole file.

Faces: the sample for t = k / pps is the frame displayed at t, the last frame whose time is <= t
(``media.plan_samples``). While streaming, a frame is known to be that one only when the next frame
arrives later than t, so a sample is decided one frame after it was shown (33 ms at 30 fps).

Voice: a window closes at every multiple of the hop and reaches ``window_s`` back, plus one at the end
of the stream (``segments.sliding.window_ends``); the sound of the last seconds is kept in a ring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from ..media import TIME_TOLERANCE_S
from ..audio import window_samples
from ..segments.sliding import TIME_SLACK_S, SlidingOptions, window_bounds

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Sample(Generic[T]):
    sample_index: int  # 0-based, as in the file analysis: skipped samples keep their numbers
    frame_index: int
    time_s: float
    payload: T


class FrameSampler(Generic[T]):
    """Feed every frame in presentation order; get back the frames that are samples."""

    def __init__(self, pps: float):
        if not pps > 0:
            raise ValueError(f"pps must be > 0, got {pps}")
        self.pps = pps
        self._k = 0  # the next target is k / pps
        self._previous: tuple[int, float, T] | None = None
        self._last_taken = -1  # frame index of the last sample (a frame is a sample once)
        self._count = 0

    def _take(self, frame: tuple[int, float, T], out: list[Sample[T]]) -> None:
        index, time_s, payload = frame
        if index != self._last_taken:
            out.append(Sample(self._count, index, time_s, payload))
            self._count += 1
            self._last_taken = index

    def push(self, frame_index: int, time_s: float, payload: T) -> list[Sample[T]]:
        """The samples decided by this frame's arrival (the frame before it, or this one where the
        first targets lie before the first frame)."""
        out: list[Sample[T]] = []
        shown = self._previous or (frame_index, time_s, payload)  # before the first frame: the first
        while time_s > self._k / self.pps + TIME_TOLERANCE_S:
            self._take(shown, out)
            self._k += 1
        self._previous = (frame_index, time_s, payload)
        return out

    def finish(self, end_s: float) -> list[Sample[T]]:
        """The samples still due when the stream ends at ``end_s`` (the last frame's end)."""
        out: list[Sample[T]] = []
        if self._previous is None:
            return out
        while self._k == 0 or self._k / self.pps < end_s:
            self._take(self._previous, out)
            self._k += 1
        self._previous = None
        return out

    @property
    def decided(self) -> int:
        return self._count


@dataclass(frozen=True, eq=False)
class VoiceWindow:
    index: int  # 0-based over the windows that closed, scored or not
    start_s: float
    end_s: float
    samples: np.ndarray  # the window's 16 kHz mono samples


class AudioRing:
    """The last seconds of 16 kHz mono sound, and the windows that close as it grows."""

    def __init__(self, options: SlidingOptions, sample_rate: int = 16000):
        self.options = options
        self.sample_rate = sample_rate
        self._keep = int(np.ceil((options.window_s + 1.0) * sample_rate))
        self._buffer = np.zeros(0, np.float32)
        self._origin = 0  # sample number of the buffer's first sample
        self._total = 0  # samples received
        self._k = 1
        self._last_end = 0.0
        self._count = 0

    @property
    def duration_s(self) -> float:
        return self._total / self.sample_rate

    def _window(self, end_s: float) -> VoiceWindow:
        start_s, end_s = window_bounds(end_s, self.options)
        samples = window_samples(self._buffer, start_s, end_s, self.sample_rate,
                                 origin_s=self._origin / self.sample_rate).copy()
        window = VoiceWindow(self._count, start_s, end_s, samples)
        self._count += 1
        self._last_end = end_s
        return window

    def extend(self, samples: np.ndarray) -> list[VoiceWindow]:
        """Adds sound; returns the windows that it closed."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        self._total += len(samples)
        closed = []
        while self._k * self.options.hop_s <= self.duration_s + TIME_SLACK_S:
            closed.append(self._window(self._k * self.options.hop_s))
            self._k += 1
        if len(self._buffer) > self._keep:
            drop = len(self._buffer) - self._keep
            self._buffer = self._buffer[drop:]
            self._origin += drop
        return closed

    def finish(self) -> list[VoiceWindow]:
        """The window up to the end of the sound, where enough has come since the last one."""
        duration = self.duration_s
        if duration > 0 and duration - self._last_end >= max(self.options.min_speech_s, TIME_SLACK_S):
            return [self._window(duration)]
        return []

    @property
    def closed(self) -> int:
        return self._count
